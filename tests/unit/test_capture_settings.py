"""``capture:`` settings, token usage by role, dropped observations and open spans, through
a plain-Python experiment (``Experiment.run()``) and the SDK's trace context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.engine_helpers import unique, write_module
from support.experiment_helpers import read_jsonl

from pytest_fluxloop.config.loader import Overrides, load_config
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.records import Observation
from pytest_fluxloop.redact import REDACTED, Redactor
from pytest_fluxloop.run.experiment import Experiment
from pytest_fluxloop.sdk.context import CaptureSettings, acting_as, trace_context
from pytest_fluxloop.sdk.generation import Generation, token_counts
from pytest_fluxloop.sdk.usage import add_role_usage, token_usage_by_role


def _project(root: Path, agent: str, **simulation: Any) -> Path:
    module = unique("capture_agent")
    write_module(root, f"{module}.py", agent)
    config: dict[str, Any] = {
        "name": "capture",
        "iterations": 1,
        "runner": {"target": f"{module}:run", "timeout_seconds": 30, "max_retries": 0},
        "output_directory": "experiments",
        **simulation,
    }
    (root / "configs").mkdir(parents=True, exist_ok=True)
    path = root / "configs" / "simulation.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "inputs").mkdir(exist_ok=True)
    inputs = {"inputs": [{"input": "first question"}, {"input": "second one"}]}
    (root / "inputs" / "generated.yaml").write_text(yaml.safe_dump(inputs), encoding="utf-8")
    return path


# An agent recording generations by hand, through the same class every capture point uses.
GENERATING_AGENT = """
import fluxloop
from pytest_fluxloop.sdk.context import acting_as, current_trace
from pytest_fluxloop.sdk.generation import Generation, token_counts


def call(model, usage, role="agent"):
    with acting_as(role):
        gen = Generation(current_trace(), "fake.chat", provider="fake", model=model)
    gen.finish(output="ok", usage=usage)


@fluxloop.agent()
def run(input_text):
    call("m1", token_counts(input_tokens=10, output_tokens=5, cached_tokens=3))
    call("m2", token_counts(input_tokens=7, output_tokens=1, reasoning_tokens=4))
    call("m3", None)
    call("judge-model", token_counts(input_tokens=100, output_tokens=100), role="judge")
    for i in range(30):
        fluxloop.event("step", i=i)
    return "done"
"""


def test_trace_and_summary_sum_token_usage_by_role(tmp_path: Path) -> None:
    path = _project(tmp_path, GENERATING_AGENT)
    summary = Experiment.load(path).run()
    folder = next((tmp_path / "experiments").glob("exp_*"))
    traces = read_jsonl(folder / "traces.jsonl")
    for trace in traces:
        usage = trace["token_usage"]
        assert usage["agent"] == {
            "input_tokens": 17,
            "output_tokens": 6,
            "cached_tokens": 3,
            "reasoning_tokens": 4,
            "total_tokens": 23,
            "calls": 3,
            "calls_without_usage": 1,
        }
        # The judge's calls are its own, never the agent's.
        assert usage["judge"]["input_tokens"] == 100 and usage["judge"]["calls"] == 1
        ends = [o for o in trace["observations"] if o["type"] == "span_end"]
        kinds = {o["name"]: (o["kind"], o["role"]) for o in ends}
        assert kinds["run"] == ("agent", "agent")
        assert ("generation", "judge") in kinds.values()
        unknown = [o for o in ends if o["metadata"].get("model") == "m3"]
        assert unknown[0]["metadata"]["usage"] is None
        assert unknown[0]["metadata"]["usage_source"] == "missing"
    # The summary sums the run; the summary line carries each trace's usage too.
    assert summary.token_usage is not None
    assert summary.token_usage["agent"]["input_tokens"] == 34
    assert summary.token_usage["agent"]["calls_without_usage"] == 2
    lines = read_jsonl(folder / "trace_summary.jsonl")
    assert all(line["token_usage"]["agent"]["calls"] == 3 for line in lines)
    on_disk = json.loads((folder / "summary.json").read_text("utf-8"))
    assert on_disk["token_usage"]["judge"]["output_tokens"] == 200


def test_max_observations_drops_and_says_how_many(tmp_path: Path) -> None:
    path = _project(tmp_path, GENERATING_AGENT, capture={"max_observations": 12})
    Experiment.load(path).run()
    folder = next((tmp_path / "experiments").glob("exp_*"))
    for trace in read_jsonl(folder / "traces.jsonl"):
        assert len(trace["observations"]) == 12
        # 1 agent span pair + 4 generation pairs + 30 events = 40 observations.
        assert trace["observations_dropped"] == 40 - 12


def test_capture_llm_override_and_defaults(tmp_path: Path) -> None:
    path = _project(tmp_path, GENERATING_AGENT, capture={"content": False})
    cfg = load_config(path)
    assert cfg.simulation.capture.llm is True and cfg.simulation.capture.content is False
    off = load_config(path, Overrides(capture_llm=False))
    assert off.simulation.capture.llm is False
    settings = Experiment.load(path, Overrides(capture_llm=False)).settings().capture
    assert settings == CaptureSettings(llm=False, content=False)


def test_capture_config_errors_name_key_and_value(tmp_path: Path) -> None:
    path = _project(
        tmp_path,
        GENERATING_AGENT,
        capture={"llm": "sometimes", "redact_patterns": ["(unclosed"], "colour": "red"},
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "capture.llm" in text
    assert "(unclosed" in text and "not a regular expression" in text
    assert "capture.colour" in text  # an unknown key is never ignored


def test_content_off_keeps_usage_but_no_messages() -> None:
    with trace_context("t", CaptureSettings(content=False)) as ctx:
        gen = Generation(ctx, "x", provider="p", model="m", messages=[{"content": "secret"}])
        gen.finish(output="reply", usage=token_counts(input_tokens=1, output_tokens=2))
    start, end = ctx.observations
    assert start.input is None and end.output is None
    assert end.metadata["usage"]["total_tokens"] == 3


def test_generation_finishes_once_and_open_spans_end_abandoned() -> None:
    with trace_context("t") as ctx:
        done = Generation(ctx, "a", provider="p")
        assert done.finish(output="x") is True
        assert done.finish(output="again") is False
        with acting_as("supervisor"):
            left = Generation(ctx, "b", provider="p", stream=True)
        assert ctx.close_open_spans() == 1
        assert ctx.close_open_spans() == 0
    ends = [o for o in ctx.observations if o.type == "span_end"]
    assert [o.name for o in ends] == ["a", "b"]
    assert ends[1].metadata["status"] == "abandoned" and ends[1].role == "supervisor"
    assert left.finished


def _gen_end(role: str, usage: dict[str, Any] | None) -> Observation:
    return Observation(
        trace_id="t",
        type="span_end",
        name="g",
        kind="generation",
        role=role,
        metadata={"usage": usage},
    )


def test_usage_sums_keep_unknown_apart_from_zero() -> None:
    none_known = token_usage_by_role([_gen_end("agent", None)])
    assert none_known == {
        "agent": {
            "input_tokens": None,
            "output_tokens": None,
            "cached_tokens": None,
            "reasoning_tokens": None,
            "total_tokens": None,
            "calls": 1,
            "calls_without_usage": 1,
        }
    }
    assert token_usage_by_role([]) is None
    skipped = token_usage_by_role([_gen_end("supervisor", token_counts(1, 1))], ["supervisor"])
    assert skipped is None
    # An earlier shape (prompt/completion tokens) adds as input/output.
    total = add_role_usage(None, {"supervisor": {"prompt_tokens": 4, "completion_tokens": 2}})
    total = add_role_usage(total, none_known)
    assert total is not None
    assert total["supervisor"]["input_tokens"] == 4 and total["supervisor"]["calls"] == 1
    assert total["agent"]["calls_without_usage"] == 1


def test_redactor_takes_more_keys_and_patterns() -> None:
    redactor = Redactor(extra_keys=["Session-ID"], extra_patterns=[r"ACME-\d{6}"])
    data = {"session_id": "abc", "note": "ticket ACME-123456 open", "other": "fine"}
    assert redactor(data) == {
        "session_id": REDACTED,
        "note": f"ticket {REDACTED} open",
        "other": "fine",
    }


def test_redact_settings_reach_the_artifacts(tmp_path: Path) -> None:
    agent = """
import fluxloop


@fluxloop.agent()
def run(input_text, customer_ref="C-998877"):
    fluxloop.event("lookup", customer_ref="C-998877", ticket="ticket ACME-654321")
    return "ok"
"""
    path = _project(
        tmp_path,
        agent,
        capture={"redact_keys": ["customer_ref"], "redact_patterns": [r"ACME-\d{6}"]},
    )
    Experiment.load(path).run()
    folder = next((tmp_path / "experiments").glob("exp_*"))
    for name in ("traces.jsonl", "observations.jsonl"):
        text = (folder / name).read_text("utf-8")
        assert "C-998877" not in text and "ACME-654321" not in text
        assert REDACTED in text
