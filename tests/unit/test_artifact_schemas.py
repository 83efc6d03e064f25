"""Shipped JSON Schemas match the models, and real artifacts validate against them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pytest_fluxloop.artifacts import ExperimentWriter, generate_schemas, load_schema
from pytest_fluxloop.artifacts import schemas as schemas_mod
from pytest_fluxloop.records import (
    SUMMARY_DERIVED_KEYS,
    SUMMARY_KEYS,
    TRUNCATION_KEYS,
    ErrorInfo,
    MultiTurnInfo,
    Observation,
    TraceRecord,
)

T0 = datetime(2024, 11, 1, 14, 30, 22, tzinfo=timezone.utc)

UNICODE_INPUTS = [
    "line one\nline two\r\nline three",
    "paragraph\u2028separator\u2029and NEL\x85",
    "emoji 😀🎉👩‍💻 and CJK 日本語 and RTL مرحبا",
    'quotes " and \\ backslashes and \t tabs and \x00 NUL',
]


def _record(i: int, **overrides: Any) -> TraceRecord:
    data: dict[str, Any] = {
        "trace_id": f"trace-{i}",
        "case_id": f"case-{i}",
        "iteration": i,
        "persona": "expert_user",
        "persona_description": "knows the product",
        "input": f"input {i}",
        "output": f"output {i}",
        "duration_ms": 12.5,
        "success": True,
        "status": "success",
        "started_at": T0,
        "completed_at": T0,
        "observations": [
            Observation(
                trace_id=f"trace-{i}",
                type="llm_call",
                name="chat",
                timestamp=T0,
                input={"messages": [{"role": "user", "content": "hi"}]},
                output="hello",
                duration_ms=3.0,
                metadata={"model": "gpt-4o-mini"},
            )
        ],
    }
    data.update(overrides)
    return TraceRecord(**data)


def _weird_output() -> Any:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    return {
        "bytes": b"\xff\xfe binary",
        "text_bytes": "ok 😀".encode(),
        "nan": float("nan"),
        "inf": float("-inf"),
        "cycle": loop,
        "set": {"b", "a"},
        "object": object(),
        "text": "multi\nline 😀 \u2028",
    }


@pytest.fixture
def experiment(tmp_path: Path) -> ExperimentWriter:
    writer = ExperimentWriter.create(
        tmp_path,
        experiment_name="schema check",
        description="all shapes",
        config_snapshot={"name": "schema check", "iterations": 1, "ratio": float("nan")},
        metadata={"team": "qa"},
        seed=3,
        total_cases=4 + len(UNICODE_INPUTS),
        now=T0,
    )
    writer.append(_record(0))
    writer.append(
        _record(
            1,
            success=False,
            status="error",
            output=None,
            error=ErrorInfo(
                type="ValueError",
                message="bad value",
                traceback=(
                    'Traceback (most recent call last):\n  File "agent.py"\nValueError: bad value\n'
                ),
            ),
        )
    )
    writer.append(_record(2, output=_weird_output(), attempts=3, token_usage={"total_tokens": 9}))
    writer.append(
        _record(
            3,
            multi_turn=MultiTurnInfo(enabled=True, turn_count=2, termination_reason="max_turns"),
            conversation_state={"turns": [{"role": "user", "content": "hi"}], "metadata": {}},
            status="timeout",
            success=False,
            error=ErrorInfo(kind="timeout", type="TimeoutError", message="slow"),
        )
    )
    for n, text in enumerate(UNICODE_INPUTS, start=10):
        writer.append(_record(n, input=text, output=text))
    writer.finish("complete", exit_code=0, extra={"notes": "extra key"})
    return writer


# -- the committed files cannot drift -----------------------------------------------------


@pytest.mark.parametrize("name", schemas_mod.SCHEMA_NAMES)
def test_committed_schema_matches_models(name: str) -> None:
    generated = generate_schemas()[name]
    assert load_schema(name) == generated
    assert schemas_mod.schema_path(name).read_text(encoding="utf-8") == schemas_mod.render(
        generated
    ), "run `python -m pytest_fluxloop.artifacts.schemas` to regenerate"


def test_check_mode_reports_no_drift(capsys: pytest.CaptureFixture[str]) -> None:
    assert schemas_mod.main(["--check"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("name", schemas_mod.SCHEMA_NAMES)
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_unknown_schema_name() -> None:
    with pytest.raises(KeyError, match="trace_summary"):
        load_schema("nope")


def test_trace_summary_model_matches_summary_line() -> None:
    line = _record(0, error=ErrorInfo(type="E", message="m")).summary_line()
    # <field>_truncated keys appear only on a line whose field was cut.
    fields = [f for f in schemas_mod.TraceSummaryLine.model_fields if f not in TRUNCATION_KEYS]
    assert list(line) == fields
    assert set(SUMMARY_KEYS) | set(SUMMARY_DERIVED_KEYS) == set(line)


# -- real artifacts validate --------------------------------------------------------------


def _validate_lines(path: Path, schema_name: str) -> list[dict[str, Any]]:
    validator = Draft202012Validator(load_schema(schema_name))
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line:
            continue
        data = json.loads(line)
        errors = sorted(validator.iter_errors(data), key=str)
        assert not errors, f"{path.name}:{number}: {errors[0].message}"
        records.append(data)
    return records


def test_artifacts_validate_line_by_line(experiment: ExperimentWriter) -> None:
    n = 4 + len(UNICODE_INPUTS)
    assert len(_validate_lines(experiment.path / "trace_summary.jsonl", "trace_summary")) == n
    traces = _validate_lines(experiment.path / "traces.jsonl", "trace")
    assert len(traces) == n
    assert len(_validate_lines(experiment.path / "observations.jsonl", "observation")) == n
    summary = json.loads((experiment.path / "summary.json").read_text(encoding="utf-8"))
    Draft202012Validator(load_schema("summary")).validate(summary)
    assert summary["failed"] == 2

    failure = traces[1]
    assert failure["error"]["traceback"].endswith("ValueError: bad value\n")
    weird = traces[2]["output"]
    assert weird["bytes"] == {"__bytes__": "//4gYmluYXJ5"}
    assert weird["text_bytes"] == "ok 😀"
    assert (weird["nan"], weird["inf"]) == (None, None)
    assert weird["cycle"] == {"name": "loop", "self": "<cycle>"}
    assert weird["set"] == ["a", "b"]
    assert weird["object"].startswith("<object object")


def test_schema_rejects_a_broken_line() -> None:
    validator = Draft202012Validator(load_schema("trace_summary"))
    good = _record(0).summary_line()
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "status": "exploded"})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "trace_id"})


# -- fault 34: one record per line, exact round trip --------------------------------------


def test_unicode_and_newlines_round_trip_one_line_per_record(
    experiment: ExperimentWriter,
) -> None:
    for name in ("trace_summary.jsonl", "traces.jsonl"):
        raw = (experiment.path / name).read_bytes()
        # Exactly one b"\n" per record, and no other line separator anywhere.
        assert raw.count(b"\n") == 4 + len(UNICODE_INPUTS)
        text = raw.decode("utf-8")
        assert len(text.splitlines()) == 4 + len(UNICODE_INPUTS)
        records = [json.loads(line) for line in text.splitlines()]
        by_iteration = {r["iteration"]: r for r in records}
        for n, original in enumerate(UNICODE_INPUTS, start=10):
            assert by_iteration[n]["input"] == original
            assert by_iteration[n]["output"] == original
