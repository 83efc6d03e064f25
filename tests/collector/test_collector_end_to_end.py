"""Issue 16 as a new user tries it: ``fluxloop collector serve`` started as a subprocess, an
experiment run with ``--fluxloop-collector-url`` pointing at it and ``--fluxloop-otel``
exporting to the same collector's OTLP endpoint; everything read back through the API.

Real parts only: the collector is the CLI command in its own process, the run is a pytest
subprocess (pytester), the spans go through the OpenTelemetry SDK's OTLP/HTTP exporter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.collector_server import TOKEN, start_collector
from support.plugin_helpers import Project

pytest.importorskip("starlette")
pytest.importorskip("opentelemetry.sdk")

AGENT = """\
import fluxloop

@fluxloop.tool()
def lookup(text):
    return f"found {text}"

@fluxloop.agent()
def run(input_text, persona=None):
    return lookup(input_text)
"""
INPUTS = "generated_inputs:\n" + "".join(
    f"  - input: 'question {i}'\n    persona: p{i % 2}\n" for i in range(4)
)


@pytest.mark.slow
def test_a_run_reaches_the_collector_and_its_spans_too(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(pytester).setup(inputs=INPUTS, agent=AGENT, iterations=2)
    project.write("configs/project.yaml", "name: e2e\n")
    collector = start_collector(tmp_path, launcher="cli")
    try:
        monkeypatch.setenv("FLUXLOOP_COLLECTOR_TOKEN", TOKEN)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer {TOKEN}")
        result = pytester.runpytest_subprocess(
            "--fluxloop-config", project.config, "-p", "no:cacheprovider",
            "--fluxloop-collector-url", collector.url, "--fluxloop-otel",
        )  # fmt: skip
        result.assert_outcomes(passed=8)
        exp = project.only_experiment()
        summary = json.loads((exp / "summary.json").read_text())
        traces = project.jsonl(exp / "traces.jsonl")
        observations = project.jsonl(exp / "observations.jsonl")

        # Every trace and observation the files hold is in the collector, once.
        assert summary["collector"]["stored"] == len(traces) + len(observations)
        assert summary["collector"]["rejected"] == 0
        assert summary["collector"]["spooled_batches"] == 0
        stored = collector.all_traces(experiment="demo")
        assert sorted(t["trace_id"] for t in stored) == sorted(t["trace_id"] for t in traces)
        experiment = collector.experiment("demo")
        assert experiment is not None

        # One trace read back whole: its observations in order, and the OTel spans the run
        # exported for it (linked by gen_ai.conversation.id = the trace id).
        first = traces[0]
        reply = collector.get(f"/api/traces/{first['trace_id']}")
        assert reply.status == 200, reply.body
        detail = reply.json()
        mine = [o for o in observations if o["trace_id"] == first["trace_id"]]
        assert [o["name"] for o in detail["observations"]] == [o["name"] for o in mine]
        spans = detail["spans"]
        names = {s["name"] for s in spans}
        assert "invoke_agent run" in names
        assert "execute_tool lookup" in names
        root = next(s for s in spans if s["name"] == "invoke_agent run")
        assert not root["parent_span_id"]
        by_id = {s["span_id"]: s for s in spans}
        tool = next(s for s in spans if s["name"] == "execute_tool lookup")
        # The tool span hangs under the case's span (through the agent span).
        parent = by_id[tool["parent_span_id"]]
        while parent["parent_span_id"]:
            parent = by_id[parent["parent_span_id"]]
        assert parent is root
        assert summary["otel"]["traces"] == len(traces)
        assert summary["otel"]["spans"] >= 2 * len(traces)

        # The token is in no file the run wrote.
        for path in exp.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path
    finally:
        collector.stop()


SLOW_AGENT = """\
import time

def run(input_text, persona=None):
    time.sleep(0.25)
    return "answer to " + input_text
"""


@pytest.mark.slow
def test_a_collector_killed_mid_run_loses_nothing(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's fault case with the real service: the collector dies while the run is
    sending, the run still passes and spools what it could not send, the collector comes
    back on the same database, and ``fluxloop collector push`` stores every trace once."""
    from support.cli_helpers import describe, run_cli

    project = Project(pytester).setup(inputs=INPUTS, agent=SLOW_AGENT, iterations=3)
    collector = start_collector(tmp_path)
    monkeypatch.setenv("FLUXLOOP_COLLECTOR_TOKEN", TOKEN)
    outcome: dict[str, pytest.RunResult] = {}

    def run() -> None:
        outcome["result"] = pytester.runpytest_subprocess(
            "--fluxloop-config", project.config, "-p", "no:cacheprovider",
            "--fluxloop-collector-url", collector.url,
        )  # fmt: skip

    import threading
    import time

    runner = threading.Thread(target=run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not collector.all_traces(experiment="demo"):
            time.sleep(0.05)
        assert runner.is_alive(), "the run ended before the collector could be killed"
        collector.kill()  # mid-run: some traces stored, the rest still to come
    finally:
        runner.join(timeout=120)
    result = outcome["result"]
    result.assert_outcomes(passed=12)
    exp = project.only_experiment()
    traces = project.jsonl(exp / "traces.jsonl")
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["collector"]["spooled_batches"] > 0
    assert list((exp / "collector_spool").glob("*.json.gz"))

    restarted = start_collector(tmp_path, db=collector.db)
    try:
        before = {t["trace_id"] for t in restarted.all_traces(experiment="demo")}
        assert 0 < len(before) < len(traces)  # what arrived before the kill was kept
        push = run_cli(
            "collector", "push", exp, "--url", restarted.url,
            cwd=project.root, env={"FLUXLOOP_COLLECTOR_TOKEN": TOKEN},
        )  # fmt: skip
        assert push.returncode == 0, describe(push)
        stored = [t["trace_id"] for t in restarted.all_traces(experiment="demo")]
        assert sorted(stored) == sorted(t["trace_id"] for t in traces)  # each exactly once
        assert not list((exp / "collector_spool").glob("*.json.gz"))
    finally:
        restarted.stop()
