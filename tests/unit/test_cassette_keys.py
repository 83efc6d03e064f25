"""The match key of an LLM call: what the request normalisation keeps and drops, what the key
hashes, and the diff a miss shows (``pytest_fluxloop.cassettes.keys``)."""

from __future__ import annotations

import re
from typing import Any

import anthropic
import openai
import pytest

from pytest_fluxloop.cassettes.keys import (
    MAX_DIFF_LINES,
    canonical,
    match_key,
    normalise_request,
    request_diff,
)

# --------------------------------------------------------------------------- normalise_request


def test_sdk_sentinels_are_dropped_everything_else_kept() -> None:
    body = {
        "model": "gpt-test",
        "temperature": openai.NOT_GIVEN,
        "top_p": openai.omit,
        "max_tokens": anthropic.NOT_GIVEN,
        "stream": False,
        "seed": 7,
        "response_format": {"type": "json_object"},
    }
    assert normalise_request(body) == {
        "model": "gpt-test",
        "stream": False,
        "seed": 7,
        "response_format": {"type": "json_object"},
    }


def test_a_sentinel_changes_nothing_in_the_key() -> None:
    with_sentinel = normalise_request({"model": "m", "temperature": openai.NOT_GIVEN})
    without = normalise_request({"model": "m"})
    assert canonical(with_sentinel) == canonical(without)


def test_ids_inside_conversation_content_are_removed() -> None:
    messages = [
        {"role": "user", "content": "hi", "id": "msg_1"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "42"},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
        },
    ]
    responses_input = [
        {"type": "function_call", "call_id": "fc_1", "id": "item_1", "name": "f"},
        {"type": "function_call_output", "call_id": "fc_1", "output": "done"},
    ]
    out = normalise_request({"model": "m", "messages": messages, "input": responses_input})
    assert out["messages"] == [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "42"},
        {"role": "user", "content": [{"type": "tool_result", "content": "ok"}]},
    ]
    assert out["input"] == [
        {"type": "function_call", "name": "f"},
        {"type": "function_call_output", "output": "done"},
    ]


def test_two_runs_with_different_provider_ids_normalise_alike() -> None:
    def conversation(call_id: str) -> dict[str, Any]:
        return {
            "model": "m",
            "messages": [
                {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function"}]},
                {"role": "tool", "tool_call_id": call_id, "content": "x"},
            ],
        }

    assert normalise_request(conversation("call_A")) == normalise_request(conversation("call_B"))


def test_ids_outside_conversation_content_are_kept() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"id": "order-7", "call_id": "c"},
        "previous_response_id": "resp_1",
        "tools": [{"name": "t", "id": "tool-id"}],
    }
    out = normalise_request(body)
    assert out["metadata"] == {"id": "order-7", "call_id": "c"}
    assert out["previous_response_id"] == "resp_1"
    assert out["tools"] == [{"name": "t", "id": "tool-id"}]


def test_system_instructions_and_prompt_lose_ids_too() -> None:
    out = normalise_request(
        {
            "system": [{"type": "text", "text": "be kind", "id": "s1"}],
            "instructions": [{"id": "i1", "text": "x"}],
            "prompt": {"id": "pmpt_1", "version": "2"},
        }
    )
    assert out == {
        "system": [{"type": "text", "text": "be kind"}],
        "instructions": [{"text": "x"}],
        "prompt": {"version": "2"},
    }


def test_tools_are_sorted_by_name_in_both_shapes() -> None:
    openai_tools = [
        {"type": "function", "function": {"name": "zeta", "parameters": {}}},
        {"type": "function", "function": {"name": "alpha", "parameters": {}}},
        {"type": "function", "function": {"name": "mid", "parameters": {}}},
    ]
    anthropic_tools = [
        {"name": "b_tool", "input_schema": {}},
        {"name": "a_tool", "input_schema": {}},
    ]
    out = normalise_request({"tools": openai_tools})
    assert [t["function"]["name"] for t in out["tools"]] == ["alpha", "mid", "zeta"]
    out = normalise_request({"tools": anthropic_tools})
    assert [t["name"] for t in out["tools"]] == ["a_tool", "b_tool"]
    # The caller's list is not reordered in place.
    assert [t["name"] for t in anthropic_tools] == ["b_tool", "a_tool"]


def test_tool_order_does_not_change_the_key() -> None:
    a = {"type": "function", "function": {"name": "a"}}
    b = {"type": "function", "function": {"name": "b"}}
    assert _key(request=normalise_request({"tools": [a, b]})) == _key(
        request=normalise_request({"tools": [b, a]})
    )


def test_message_order_does_change_the_key() -> None:
    first = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    second = list(reversed(first))
    assert _key(request=normalise_request({"messages": first})) != _key(
        request=normalise_request({"messages": second})
    )


def test_sdk_models_become_plain_json() -> None:
    message = openai.types.chat.ChatCompletionMessage(role="assistant", content="hello")
    out = normalise_request({"messages": [message]})
    assert out["messages"][0]["role"] == "assistant"
    assert out["messages"][0]["content"] == "hello"
    canonical(out)  # serialisable


# --------------------------------------------------------------------------- match_key

BASE: dict[str, Any] = {
    "provider": "openai",
    "endpoint": "/chat/completions",
    "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "role": "agent",
    "case_id": "in00-hello-it0",
    "turn": 1,
    "iteration": 0,
}


def _key(**changes: Any) -> str:
    return match_key(**{**BASE, **changes})


def test_key_is_a_stable_sha256() -> None:
    key = _key()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == _key()
    # Key order inside the request does not matter (canonical JSON).
    reordered = {"messages": BASE["request"]["messages"], "model": "m"}
    assert _key(request=reordered) == key


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("provider", "anthropic"),
        ("endpoint", "/responses"),
        ("request", {"model": "m2", "messages": [{"role": "user", "content": "hi"}]}),
        ("request", {"model": "m", "messages": [{"role": "user", "content": "hi!"}]}),
        ("request", {**BASE["request"], "temperature": 0.1}),
        ("role", "supervisor"),
        ("case_id", "in01-other-it0"),
        ("turn", 2),
        ("iteration", 1),
    ],
)
def test_key_changes_with_each_part(field: str, value: Any) -> None:
    assert _key(**{field: value}) != _key()


def test_turn_and_iteration_are_not_confused() -> None:
    assert _key(turn=1, iteration=0) != _key(turn=0, iteration=1)


# --------------------------------------------------------------------------- request_diff


def test_diff_shows_the_changed_line_and_the_position() -> None:
    recorded = {"model": "m", "messages": [{"role": "user", "content": "old question"}]}
    actual = {"model": "m", "messages": [{"role": "user", "content": "new question"}]}
    diff = request_diff(recorded, actual, "agent/1/0")
    lines = diff.splitlines()
    assert lines[0] == "--- recorded (agent/1/0)"
    assert lines[1] == "+++ actual request"
    assert '-      "content": "old question",' in lines
    assert '+      "content": "new question",' in lines
    # Unchanged far-away lines are not part of a 2-line-context diff.
    assert not any("model" in line for line in lines)


def test_identical_requests_say_so() -> None:
    body = {"model": "m"}
    assert "identical" in request_diff(body, dict(body), "agent/0/0")


def test_diff_is_bounded() -> None:
    recorded = {"messages": [{"content": f"old {n}"} for n in range(400)]}
    actual = {"messages": [{"content": f"new {n}"} for n in range(400)]}
    diff = request_diff(recorded, actual, "agent/0/0")
    lines = diff.splitlines()
    assert len(lines) == MAX_DIFF_LINES + 1
    match = re.fullmatch(r"\.\.\. \((\d+) more diff lines\)", lines[-1])
    assert match is not None
    assert int(match.group(1)) > 400  # 800 changed lines, and headers, were left out


def test_diff_just_under_the_bound_is_whole() -> None:
    recorded = {"a": "x"}
    actual = {"a": "y"}
    lines = request_diff(recorded, actual, "w").splitlines()
    assert len(lines) < MAX_DIFF_LINES
    assert not lines[-1].startswith("...")
