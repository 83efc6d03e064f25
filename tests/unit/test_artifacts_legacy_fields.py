"""``trace_summary.jsonl`` lines carry the earlier FluxLoop ``conversation`` and
``termination_reason``, so tools built for the earlier format read them unchanged.

Multi-turn records come from the real conversation driver (through the real executor), so a
change in how the engine records a conversation shows here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support.conversation_helpers import Scripted, cont, stop
from support.engine_helpers import FakeSleep, isolated_imports, make_case, target_of

from pytest_fluxloop.artifacts import ExperimentWriter, load_schema
from pytest_fluxloop.config.models import MultiTurnConfig
from pytest_fluxloop.engine import CaseExecutor, RunSettings
from pytest_fluxloop.engine.drivers.conversation import MultiTurnConversation
from pytest_fluxloop.records import ErrorInfo, MultiTurnInfo, TraceRecord, conversation_entries

T0 = datetime(2024, 11, 1, 14, 30, 22, tzinfo=timezone.utc)
SECRET = "sk-proj-" + "Q" * 40


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def single(**overrides: Any) -> TraceRecord:
    data: dict[str, Any] = {
        "trace_id": "trace-1",
        "case_id": "in00-hi-novice_user-it0",
        "iteration": 0,
        "persona": "novice_user",
        "input": "How do I start?",
        "output": "Click New.",
        "duration_ms": 12.0,
        "success": True,
        "status": "success",
        "started_at": T0,
        "completed_at": T0,
    }
    data.update(overrides)
    return TraceRecord(**data)


def conversation(
    agent: Callable[..., Any], supervisor: Any, *, max_turns: int = 8, text: str = "Hi there"
) -> TraceRecord:
    settings = MultiTurnConfig(enabled=True, max_turns=max_turns)
    driver = MultiTurnConversation(settings, supervisor, "An online shop")
    executor = CaseExecutor(
        target_of(agent),
        RunSettings(timeout_seconds=10.0, max_retries=0),
        sleep=FakeSleep(),
        driver=driver,
    )
    case = make_case(text, persona="novice_user", persona_description="new here")
    return executor.run(case).record


def echo(input_text: str) -> str:
    return f"re: {input_text}"


def written(tmp_path: Path, *records: TraceRecord, max_chars: int = 100_000) -> list[Any]:
    """The trace_summary.jsonl lines the writer makes, each checked against the schema."""
    writer = ExperimentWriter.create(
        tmp_path,
        experiment_name="legacy_fields",
        description="",
        config_snapshot={},
        metadata={},
        seed=1,
        total_cases=len(records),
        now=T0,
        max_field_chars=max_chars,
    )
    for record in records:
        writer.append(record)
    writer.finish("complete")
    validator = Draft202012Validator(load_schema("trace_summary"))
    text = (writer.path / "trace_summary.jsonl").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        errors = [error.message for error in validator.iter_errors(line)]
        assert not errors, errors
    return lines


def shape(line: dict[str, Any]) -> list[tuple[int, str, str, bool]]:
    return [
        (turn["turn_index"], turn["role"], turn["source"], turn.get("closing", False))
        for turn in line["conversation"]
    ]


# --------------------------------------------------------------------------- single turn


def test_single_turn_is_the_input_and_the_output_as_two_turns(tmp_path: Path) -> None:
    (line,) = written(tmp_path, single())
    assert line["conversation"] == [
        {
            "turn_index": 1,
            "role": "user",
            "content": "How do I start?",
            "source": "input",
            "metadata": {"persona": "novice_user"},
        },
        {
            "turn_index": 1,
            "role": "assistant",
            "content": "Click New.",
            "source": "agent",
            "metadata": {},
        },
    ]
    assert line["termination_reason"] is None
    assert single().summary_line() == line


@pytest.mark.parametrize(
    ("output", "text"),
    [({"answer": 42, "steps": ["a"]}, '{"answer":42,"steps":["a"]}'), (None, ""), (7, "7")],
)
def test_single_turn_reply_is_text(tmp_path: Path, output: Any, text: str) -> None:
    (line,) = written(tmp_path, single(output=output))
    assert line["conversation"][1]["content"] == text
    assert line["output"] == output  # the output field itself is unchanged


def test_failed_single_turn_has_only_the_user_turn(tmp_path: Path) -> None:
    record = single(
        success=False,
        status="error",
        output=None,
        error=ErrorInfo(type="ValueError", message="boom"),
    )
    (line,) = written(tmp_path, record)
    assert shape(line) == [(1, "user", "input", False)]
    assert line["termination_reason"] is None


# --------------------------------------------------------------------------- multi-turn


def test_multi_turn_conversation_with_closing_message(tmp_path: Path) -> None:
    supervisor = Scripted(cont("Can it be faster?"), stop("user_satisfied", "Thanks, bye!"))
    record = conversation(echo, supervisor)
    (line,) = written(tmp_path, record)
    assert line["termination_reason"] == "user_satisfied"
    assert shape(line) == [
        (1, "user", "input", False),
        (1, "assistant", "agent", False),
        (2, "user", "supervisor", False),
        (2, "assistant", "agent", False),
        (3, "user", "supervisor", True),
    ]
    closing = line["conversation"][-1]
    assert closing["content"] == "Thanks, bye!"
    assert closing["metadata"] == {"persona": "novice_user", "closing": True}
    assert [t["content"] for t in line["conversation"][:4]] == [
        "Hi there",
        "re: Hi there",
        "Can it be faster?",
        "re: Can it be faster?",
    ]
    assert record.summary_line() == line


def test_terminate_without_closing_message_marks_nothing(tmp_path: Path) -> None:
    (line,) = written(tmp_path, conversation(echo, Scripted(stop("done"))))
    assert line["termination_reason"] == "done"
    assert shape(line) == [(1, "user", "input", False), (1, "assistant", "agent", False)]


def test_agent_failing_on_a_message_is_not_a_closing_message(tmp_path: Path) -> None:
    def agent(input_text: str) -> str:
        if "again" in input_text:
            raise RuntimeError("agent broke")
        return "ok"

    record = conversation(agent, Scripted(cont("again please")))
    assert record.status == "error"
    (line,) = written(tmp_path, record)
    assert line["termination_reason"] == "error"
    assert shape(line) == [
        (1, "user", "input", False),
        (1, "assistant", "agent", False),
        (2, "user", "supervisor", False),
    ]


def test_max_turns_reached(tmp_path: Path) -> None:
    supervisor = Scripted(cont("more"), cont("even more"))
    (line,) = written(tmp_path, conversation(echo, supervisor, max_turns=2))
    assert line["termination_reason"] == "max_turns_reached"
    assert [t["role"] for t in line["conversation"]] == ["user", "assistant"] * 2


def test_a_turn_the_engine_marks_closing_is_closing() -> None:
    """Marked by the conversation driver itself (``closing: true`` on the turn), the closing
    message needs no supervisor decision to be recognised."""
    state = {
        "turns": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye", "closing": True},
        ],
        "metadata": {},
    }
    data = {
        "input": "hi",
        "persona": None,
        "status": "success",
        "multi_turn": {"enabled": True, "turn_count": 1, "termination_reason": "done"},
        "conversation_state": state,
    }
    entries = conversation_entries(data)
    assert [e.get("closing", False) for e in entries] == [False, False, True]
    assert entries[0]["metadata"] == {}  # no persona, nothing to say


def test_multi_turn_record_without_a_transcript_falls_back_to_the_input() -> None:
    record = single(
        success=False,
        status="timeout",
        output=None,
        multi_turn=MultiTurnInfo(enabled=True, turn_count=0, termination_reason="timeout"),
    )
    line = record.summary_line()
    assert line["termination_reason"] == "timeout"
    assert [t["role"] for t in line["conversation"]] == ["user"]


def test_redacted_closing_message_is_still_marked(tmp_path: Path) -> None:
    closing = f"my key is {SECRET}, bye"
    record = conversation(echo, Scripted(stop("user_satisfied", closing)))
    (line,) = written(tmp_path, record)
    last = line["conversation"][-1]
    assert SECRET not in json.dumps(line)
    assert last["closing"] is True and last["content"] != closing


# --------------------------------------------------------------------------- truncation


def test_long_conversation_contents_are_cut_like_other_fields(tmp_path: Path) -> None:
    long_reply = "x" * 300

    def agent(input_text: str) -> str:
        return long_reply if "long" in input_text else "short"

    supervisor = Scripted(cont("long please"), stop("done", "y" * 250))
    record = conversation(agent, supervisor)
    (line,) = written(tmp_path, record, max_chars=100)
    entries = line["conversation"]
    digest = hashlib.sha256(long_reply.encode()).hexdigest()
    assert entries[3]["content"] == "x" * 100
    assert entries[3]["content_truncated"] == {"length": 300, "sha256": digest}
    assert entries[4]["content"] == "y" * 100 and entries[4]["closing"] is True
    assert entries[4]["content_truncated"]["length"] == 250
    # Short contents are left alone, with no truncation key.
    assert [("content_truncated" in e) for e in entries] == [False, False, False, True, True]
    # traces.jsonl keeps the full transcript.
    (trace,) = [
        json.loads(text)
        for text in next(tmp_path.glob("exp_*")).joinpath("traces.jsonl").read_text().splitlines()
    ]
    assert trace["conversation_state"]["turns"][3]["content"] == long_reply


def test_single_turn_reply_is_cut_with_the_output(tmp_path: Path) -> None:
    (line,) = written(tmp_path, single(output="z" * 500), max_chars=100)
    assert line["output"] == "z" * 100 and line["output_truncated"]["length"] == 500
    reply = line["conversation"][1]
    assert reply["content"] == "z" * 100 and reply["content_truncated"]["length"] == 500
