"""What a rule or a judge reads from a trace: ``pytest_fluxloop.evaluation.targets``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.eval_helpers import make_record
from support.sdk_helpers import fresh_sdk

import fluxloop
from pytest_fluxloop.evaluation.targets import (
    TARGETS,
    as_text,
    check_target,
    lookup_path,
    target_text,
    tool_calls,
    turn_count,
)
from pytest_fluxloop.records import Observation, TraceRecord


def conversation_record(**fields: Any) -> TraceRecord:
    """A two-turn conversation the supervisor closed with a goodbye."""
    turns = [
        {"role": "user", "content": "I want a refund"},
        {"role": "assistant", "content": "Sure, what is the order id?"},
        {"role": "user", "content": "A-17"},
        {"role": "assistant", "content": "Refund issued for A-17."},
        {"role": "user", "content": "Thanks, bye", "closing": True},
    ]
    return make_record(
        input="I want a refund",
        output="Refund issued for A-17.",
        multi_turn={"enabled": True, "turn_count": 2, "termination_reason": "goal_met"},
        conversation_state={"turns": turns},
        **fields,
    )


# --------------------------------------------------------------------------- target_text


def test_output_is_the_default_target() -> None:
    record = make_record()
    assert target_text(record, None) == "It ships tomorrow."
    assert target_text(record, "output") == "It ships tomorrow."


def test_a_structured_output_reads_as_its_compact_json_and_none_as_empty() -> None:
    assert target_text(make_record(output={"b": "é", "a": [1, 2]}), None) == '{"b":"é","a":[1,2]}'
    assert target_text(make_record(output=None), "output") == ""
    assert as_text(3.5) == "3.5"
    assert as_text("plain") == "plain"


def test_input_target() -> None:
    assert target_text(make_record(), "input") == "Where is my order?"


def test_single_turn_transcript_has_the_reply_only_when_the_agent_answered() -> None:
    assert target_text(make_record(), "transcript") == (
        "user: Where is my order?\nassistant: It ships tomorrow."
    )
    failed = make_record(success=False, status="error", output=None)
    assert target_text(failed, "transcript") == "user: Where is my order?"
    assert target_text(failed, "assistant") == ""


def test_multi_turn_transcript_and_its_alias() -> None:
    record = conversation_record()
    expected = (
        "user: I want a refund\n"
        "assistant: Sure, what is the order id?\n"
        "user: A-17\n"
        "assistant: Refund issued for A-17.\n"
        "user: Thanks, bye"
    )
    assert target_text(record, "transcript") == expected
    assert target_text(record, "conversation") == expected


def test_role_targets_of_a_conversation() -> None:
    record = conversation_record()
    assert target_text(record, "user") == "I want a refund\nA-17\nThanks, bye"
    assert (
        target_text(record, "assistant") == "Sure, what is the order id?\nRefund issued for A-17."
    )
    assert target_text(record, "agent") == target_text(record, "assistant")
    # The first user message is the case's input, not something the supervisor wrote.
    assert target_text(record, "supervisor") == "A-17\nThanks, bye"


def test_supervisor_target_of_a_single_turn_trace_is_empty() -> None:
    assert target_text(make_record(), "supervisor") == ""
    assert target_text(make_record(), "user") == "Where is my order?"


def test_metadata_target_reads_a_dotted_path() -> None:
    record = make_record(metadata={"expected": "ships", "deep": {"list": [1, {"v": "x"}]}})
    assert target_text(record, "metadata.expected") == "ships"
    assert target_text(record, "metadata.deep.list.1.v") == "x"
    assert target_text(record, "metadata.deep") == '{"list":[1,{"v":"x"}]}'
    assert target_text(record, "metadata.missing") == ""


@pytest.mark.parametrize("bad", ["outptu", "metadata", "metadata.", "nonsense"])
def test_target_text_rejects_an_unknown_target(bad: str) -> None:
    with pytest.raises(ValueError, match="target"):
        target_text(make_record(), bad)


# --------------------------------------------------------------------------- check_target


@pytest.mark.parametrize("name", [*TARGETS, "metadata.expected", "metadata.a.b.0"])
def test_valid_targets_have_no_problem(name: str) -> None:
    assert check_target(name) is None


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("outptu", "output"),
        ("transcrpt", "transcript"),
        ("Assistant", "assistant"),
        ("supervisr", "supervisor"),
    ],
)
def test_a_typo_gets_a_suggestion_and_the_valid_names(name: str, suggestion: str) -> None:
    message = check_target(name)
    assert message is not None
    assert message.startswith(f"unknown target {name!r} (did you mean {suggestion!r}?)")
    assert "valid: output, input, transcript" in message
    assert "metadata.<path>" in message


def test_metadata_without_a_key_is_explained() -> None:
    assert "did you mean 'metadata.<key>'" in (check_target("metdata") or "")
    for bad in ("metadata.", "metadata..expected", "metadata.a. "):
        message = check_target(bad)
        assert message is not None and "metadata.<key>" in message


def test_a_name_far_from_any_target_gets_no_suggestion() -> None:
    message = check_target("zzzzzz")
    assert message is not None
    assert "did you mean" not in message
    assert message.startswith("unknown target 'zzzzzz'; valid: ")


# --------------------------------------------------------------------------- lookup_path


def test_lookup_path_reads_the_record_then_its_metadata() -> None:
    record = make_record(
        persona=None,
        metadata={"expected": "soon", "expected_intent": "track_order", "input": "meta"},
    )
    assert lookup_path(record, "metadata.expected") == (True, "soon")
    assert lookup_path(record, "expected_intent") == (True, "track_order")
    # A record field wins over a metadata key of the same name.
    assert lookup_path(record, "input") == (True, "Where is my order?")
    assert lookup_path(record, "persona") == (True, None)
    assert lookup_path(record, "duration_ms") == (True, 120.0)


@pytest.mark.parametrize("path", ["", "missing", "metadata.nope", "a..b", ".x", "input.deeper"])
def test_lookup_path_not_found(path: str) -> None:
    assert lookup_path(make_record(metadata={"a": {"b": 1}}), path) == (False, None)


def test_lookup_path_walks_lists_and_nested_json() -> None:
    record = conversation_record(
        error={"kind": "agent", "type": "KeyError", "message": "boom"},
    )
    assert lookup_path(record, "conversation_state.turns.2.content") == (True, "A-17")
    assert lookup_path(record, "conversation_state.turns.9.content") == (False, None)
    assert lookup_path(record, "error.message") == (True, "boom")
    assert lookup_path(record, "multi_turn.turn_count") == (True, 2)


def test_lookup_path_falls_back_to_metadata_when_the_record_field_is_empty() -> None:
    record = make_record(metadata={"error": {"message": "from metadata"}})
    assert lookup_path(record, "error.message") == (True, "from metadata")


# --------------------------------------------------------------------------- turn_count


def test_turn_count() -> None:
    assert turn_count(conversation_record()) == 2
    assert turn_count(make_record()) == 1
    assert turn_count(make_record(success=False, status="timeout", output=None)) == 0
    disabled = make_record(multi_turn={"enabled": False, "turn_count": 5})
    assert turn_count(disabled) == 1


# --------------------------------------------------------------------------- tool_calls


def test_tool_calls_from_real_tool_spans(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fresh_sdk(monkeypatch, tmp_path)

    @fluxloop.tool()
    def lookup_order(order_id: str) -> str:
        return f"order {order_id}"

    @fluxloop.tool(name="issue_refund")
    def refund() -> bool:
        return True

    with fluxloop.instrument("job", type="chain") as run:
        lookup_order("A-1")
        refund()
        lookup_order("B-2")
    record = run.record()
    calls = tool_calls(record)
    # Each call has a span_start and a span_end; a call counts once.
    assert len([o for o in record.observations if o.kind == "tool"]) == 6
    assert [c.name for c in calls] == ["lookup_order", "issue_refund", "lookup_order"]
    assert [c.input for c in calls] == [{"order_id": "A-1"}, {}, {"order_id": "B-2"}]
    assert all(c.type == "span_start" for c in calls)


def _obs(**fields: Any) -> Observation:
    return Observation.model_validate({"trace_id": "t-1", **fields})


def test_tool_calls_count_older_tool_call_events_and_skip_other_roles() -> None:
    record = make_record(
        observations=[
            _obs(type="span_start", kind="tool", name="a", observation_id="1"),
            _obs(type="span_end", kind="tool", name="a", observation_id="1"),
            _obs(type="tool_call", name="legacy"),
            _obs(type="event", kind="tool", name="not_a_call"),
            _obs(type="span_start", kind="span", name="step"),
            _obs(type="span_start", kind="tool", name="sup", role="supervisor"),
            _obs(type="span_start", kind="tool", name="b", role="agent"),
        ]
    )
    assert [c.name for c in tool_calls(record)] == ["a", "legacy", "b"]
    assert tool_calls(make_record()) == []
