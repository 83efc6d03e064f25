"""The collector sink in pytest runs: with ``--fluxloop-collector-url`` (or project.yaml's
``collector_url``) every trace and observation also reaches the collector, as the files
hold them; a collector that is down changes nothing about the run, its batches wait in the
experiment folder for ``fluxloop collector push``; under xdist each trace arrives once; a
bad setting stops the run before any case (exit 4). The collector is a real HTTP server on
127.0.0.1 (support.collector_stub)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from support.cli_helpers import describe, run_cli
from support.collector_stub import CollectorStub, free_port
from support.plugin_helpers import Project

from pytest_fluxloop.shipping.spool import read_spooled, spooled_files

TOKEN = "plugin-collector-token-8888"

INPUTS = "generated_inputs:\n" + "".join(
    f"  - input: 'question {i}'\n    persona: {'crash' if i == 3 else 'p'}{i % 2}\n"
    for i in range(6)
)
AGENT = """\
import fluxloop

@fluxloop.tool()
def lookup(text):
    return f"found {text}"

@fluxloop.agent()
def run(input_text, persona=None):
    if persona.startswith("crash"):
        raise ValueError("boom")
    return lookup(input_text)
"""


def _project_yaml(project: Project, **keys: object) -> None:
    project.write(
        "configs/project.yaml", "".join(f"{key}: {value}\n" for key, value in keys.items())
    )


def _files_with(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` holding ``secret`` (gzip files decompressed first), but
    the config that gives it (``configs/project.yaml``)."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or path == root / "configs" / "project.yaml":
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        if secret.encode() in data:
            found.append(path)
    return found


def test_every_trace_and_observation_reaches_the_collector(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLUXLOOP_COLLECTOR_TOKEN", raising=False)
    project.setup()
    _project_yaml(project, collector_api_key=TOKEN)
    with CollectorStub(token=TOKEN) as stub:
        result = project.pytester.runpytest(
            "--fluxloop-config", project.config, "-p", "no:cacheprovider",
            "--fluxloop-collector-url", stub.url,
        )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)
    exp = project.only_experiment()
    traces = project.jsonl(exp / "traces.jsonl")
    observations = project.jsonl(exp / "observations.jsonl")
    assert len(traces) == 3 and observations
    for trace in traces:
        trace_id = trace["trace_id"]
        own = trace.pop("observations")
        # What the collector has is what the files have: the same redacted JSON.
        assert stub.stored[("trace", trace_id)] == trace
        for n, obs in enumerate(own):
            assert stub.stored[("observation", f"{trace_id}/{n}")] == obs
    assert stub.count("trace") == 3
    assert stub.count("observation") == len(observations)
    for post in stub.posts():
        batch = post.batch
        assert batch is not None
        assert batch["source"]["experiment"] == "demo"
        assert batch["source"]["run_id"] == exp.name
    block = project.summary(exp)["collector"]
    assert block["url"] == stub.url
    assert (block["traces_sent"], block["duplicate"], block["rejected"]) == (3, 0, 0)
    assert block["stored"] == block["items_sent"] == 3 + len(observations)
    assert (block["spooled_batches"], block["rejected_examples"], block["error"]) == (0, [], None)
    result.stdout.fnmatch_lines(
        [
            f"collector {stub.url}: 3 traces sent ({block['stored']} stored, 0 duplicate, "
            f"0 rejected of {block['items_sent']} items)"
        ]
    )
    assert _files_with(project.root, TOKEN) == []
    assert TOKEN not in result.stdout.str() + result.stderr.str()


def test_a_collector_that_is_down_loses_nothing(project: Project) -> None:
    """The run goes as it would without a collector; its batches wait in the experiment
    folder, and ``fluxloop collector push`` (a real CLI process) sends them once it is up:
    the URL is the one the run recorded, the token comes from the environment."""
    port = free_port()
    project.setup()
    _project_yaml(project, collector_url=f"http://127.0.0.1:{port}", collector_api_key=TOKEN)
    result = project.pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=1)
    exp = project.only_experiment()
    summary = project.summary(exp)
    assert summary["status"] == "complete"
    block = summary["collector"]
    assert block["traces_sent"] == 0
    assert block["spooled_traces"] == 3
    assert block["spool_folder"] == str(exp / "collector_spool")
    assert "127.0.0.1" in block["error"]
    files = spooled_files(exp)
    assert len(files) == block["spooled_batches"] >= 1
    spooled = [item for path in files for item in read_spooled(path)[1]["items"]]  # type: ignore[union-attr]
    assert len(spooled) == block["spooled_items"]
    result.stdout.fnmatch_lines(
        [
            f"collector http://127.0.0.1:{port}: 0 traces sent *; {len(files)} batches (3 traces) "
            f"spooled in {exp / 'collector_spool'} — send them with "
            f"`fluxloop collector push {exp}`"
        ]
    )
    assert _files_with(project.root, TOKEN) == []

    with CollectorStub(token=TOKEN, port=port) as stub:
        env = {"FLUXLOOP_COLLECTOR_TOKEN": TOKEN}
        proc = run_cli("collector", "push", exp, cwd=project.root, env=env)
        assert proc.returncode == 0, describe(proc)
        assert stub.count("trace") == 3
        assert stub.count() == len(spooled)
        again = run_cli("collector", "push", exp, cwd=project.root, env=env)
        assert again.returncode == 0, describe(again)
        assert len(stub.posts()) == len(files)  # nothing sent twice
    assert (
        f"Sent {len(files)} batch(es), {len(spooled)} items: {len(spooled)} stored" in proc.stdout
    )
    assert "0 batch(es) left" in proc.stdout
    assert "Nothing to push" in again.stdout
    assert TOKEN not in proc.stdout + proc.stderr
    assert not (exp / "collector_spool").exists()


@pytest.mark.slow
def test_xdist_workers_send_each_trace_once(project: Project) -> None:
    pytest.importorskip("xdist")
    project.setup(inputs=INPUTS, agent=AGENT, iterations=2)
    _project_yaml(project, collector_api_key=TOKEN)
    with CollectorStub(token=TOKEN) as stub:
        result = project.pytester.runpytest_subprocess(
            "--fluxloop-config", project.config, "-p", "no:cacheprovider", "-n", "2",
            "--fluxloop-collector-url", stub.url,
        )  # fmt: skip
        result.assert_outcomes(passed=10, failed=2)
        sent = [
            (item["kind"], item["id"])
            for post in stub.posts()
            for item in (post.batch or {}).get("items", [])
        ]
    exp = project.only_experiment()
    traces = project.jsonl(exp / "traces.jsonl")
    assert {t["worker"] for t in traces} == {"gw0", "gw1"}
    # The controller alone sends: each trace and observation once, none twice.
    assert len(sent) == len(set(sent))
    assert stub.ids("trace") == {t["trace_id"] for t in traces}
    assert stub.count("observation") == len(project.jsonl(exp / "observations.jsonl"))
    block = project.summary(exp)["collector"]
    assert (block["traces_sent"], block["duplicate"], block["spooled_batches"]) == (12, 0, 0)


def test_no_collector_sends_nothing(project: Project) -> None:
    project.setup()
    with CollectorStub() as stub:
        _project_yaml(project, collector_url=stub.url)
        result = project.pytester.runpytest(
            "--fluxloop-config", project.config, "-p", "no:cacheprovider",
            "--fluxloop-no-collector",
        )  # fmt: skip
        result.assert_outcomes(passed=2, failed=1)
        assert stub.requests == []
    assert project.summary(project.only_experiment())["collector"] is None
    assert "collector http" not in result.stdout.str()


@pytest.mark.parametrize(
    ("options", "project_yaml", "expected"),
    [
        (
            ["--fluxloop-collector-url", "ftp://collector.example.com"],
            {},
            "*pytest-fluxloop: --fluxloop-collector-url must be an http:// or https:// URL*",
        ),
        (
            [],
            {"collector_url": "http://collector.example.com:8000"},
            "*project.yaml: collector_url 'http://collector.example.com:8000' is plain http://*"
            "collector_allow_insecure_http: true in *project.yaml*",
        ),
    ],
)
def test_a_bad_collector_setting_stops_the_run_before_any_case(
    project: Project, options: list[str], project_yaml: dict[str, str], expected: str
) -> None:
    project.setup()
    _project_yaml(project, collector_api_key=TOKEN, **project_yaml)
    result = project.pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", *options
    )
    assert result.ret == 4
    result.stderr.fnmatch_lines([expected])
    assert project.experiments() == []
    assert TOKEN not in result.stderr.str()


def test_plain_http_to_another_host_runs_when_allowed(project: Project) -> None:
    """``collector_allow_insecure_http: true``: the run starts; the (unreachable) host's
    batches are spooled."""
    project.setup()
    _project_yaml(
        project,
        collector_url="http://collector.invalid:8000",
        collector_allow_insecure_http="true",
    )
    result = project.pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=1)
    block = project.summary(project.only_experiment())["collector"]
    assert block["spooled_traces"] == 3
    assert json.dumps(block)
