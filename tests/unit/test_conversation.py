"""MultiTurnConversation: the turn loop, the live state, failures, observations.

Supervisors here are tiny scripted objects following the supervisor protocol (a custom
supervisor is a supported feature via the ``pytest_fluxloop_supervisor`` hook); the engine
runs them through the real CaseExecutor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.conversation_helpers import Scripted, cont, contents, stop
from support.engine_helpers import (
    FakeSleep,
    isolated_imports,
    make_case,
    target_of,
)

from pytest_fluxloop.config.models import MultiTurnConfig
from pytest_fluxloop.engine import CaseExecutor, RunSettings
from pytest_fluxloop.engine.drivers.conversation import MultiTurnConversation
from pytest_fluxloop.records import TraceRecord
from pytest_fluxloop.supervisors import (
    SupervisorDecision,
    SupervisorError,
    SupervisorReply,
    TokenUsage,
)

SERVICE = "Support for an online store."
HANG_GUARD_S = 10.0  # generous: only stops a broken test from hanging


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def run_conversation(
    agent: Callable[..., Any],
    supervisor: Any,
    *,
    max_turns: int = 8,
    persona_override: str | None = None,
    override_description: str | None = None,
    auto_approve: bool = True,
) -> TraceRecord:
    settings = MultiTurnConfig(enabled=True, max_turns=max_turns, persona_override=persona_override)
    conversation = MultiTurnConversation(
        settings, supervisor, SERVICE, override_description=override_description
    )
    executor = CaseExecutor(
        target_of(agent),
        RunSettings(
            timeout_seconds=HANG_GUARD_S,
            max_retries=0,
            auto_approve_tools=auto_approve,
            service_context=SERVICE,
        ),
        sleep=FakeSleep(),
        driver=conversation,
    )
    fields = {
        "persona": "novice_user",
        "persona_description": "new to the shop",
        "metadata": {"persona": "novice_user", "strategy": "rephrase"},
    }
    return executor.run(make_case("Hi, I need a refund", **fields)).record


def echo(input_text: str) -> str:
    return f"re: {input_text}"


# --------------------------------------------------------------------------- the loop


def test_continue_then_terminate_records_the_whole_conversation() -> None:
    seen: list[str] = []

    def agent(input_text: str) -> str:
        seen.append(input_text)
        return f"re: {input_text}"

    sup = Scripted(cont("Can I get it faster?"), cont("And shipping?"), stop("user_satisfied"))
    record = run_conversation(agent, sup)
    assert record.status == "success" and record.success
    assert seen == ["Hi, I need a refund", "Can I get it faster?", "And shipping?"]
    assert record.output == "re: And shipping?"  # the agent's last reply
    assert record.multi_turn is not None
    assert record.multi_turn.model_dump() == {
        "enabled": True,
        "turn_count": 3,
        "termination_reason": "user_satisfied",
    }
    assert contents(record) == [
        ("user", "Hi, I need a refund"),
        ("assistant", "re: Hi, I need a refund"),
        ("user", "Can I get it faster?"),
        ("assistant", "re: Can I get it faster?"),
        ("user", "And shipping?"),
        ("assistant", "re: And shipping?"),
    ]
    state = record.conversation_state
    assert state is not None and set(state) == {"turns", "metadata", "context"}
    assert state["context"] == {"persona": "novice_user", "service_context": SERVICE}
    assert state["metadata"]["strategy"] == "rephrase"  # the input's metadata stays
    decisions = state["metadata"]["supervisor"]["decisions"]
    assert [d["decision"] for d in decisions] == ["continue", "continue", "terminate"]
    assert decisions[-1]["termination_reason"] == "user_satisfied"
    assert state["metadata"]["supervisor"]["model"] == "scripted-1"
    assert state["metadata"]["supervisor"]["attempts"] == 3


def test_supervisor_requests_carry_the_transcript_and_context() -> None:
    sup = Scripted(cont("second"), stop())
    run_conversation(echo, sup, max_turns=5)
    first, second = sup.requests
    assert first.case_id and first.turn_count == 1 and first.max_turns == 5
    assert first.turns == [
        {"role": "user", "content": "Hi, I need a refund"},
        {"role": "assistant", "content": "re: Hi, I need a refund"},
    ]
    assert len(second.turns) == 4 and second.turn_count == 2
    assert (first.persona, first.persona_description) == ("novice_user", "new to the shop")
    assert first.service_context == SERVICE
    assert first.metadata["strategy"] == "rephrase"


def test_closing_message_is_recorded_but_not_sent_to_the_agent() -> None:
    seen: list[str] = []

    def agent(input_text: str) -> str:
        seen.append(input_text)
        return "done"

    record = run_conversation(agent, Scripted(stop("resolved", closing="Thanks, bye!")))
    assert seen == ["Hi, I need a refund"]
    assert contents(record)[-1] == ("user", "Thanks, bye!")
    assert record.multi_turn is not None and record.multi_turn.turn_count == 1
    assert record.output == "done"


def test_max_turns_ends_the_conversation_without_asking_again() -> None:
    sup = Scripted(*(cont(f"q{i}") for i in range(10)))
    record = run_conversation(echo, sup, max_turns=3)
    assert record.success
    assert record.multi_turn is not None
    assert record.multi_turn.turn_count == 3
    assert record.multi_turn.termination_reason == "max_turns_reached"
    assert len(sup.requests) == 2  # no decision is needed after the last allowed turn
    assert len(contents(record)) == 6


def test_structured_replies_become_json_text_in_the_transcript() -> None:
    def agent(input_text: str) -> dict[str, Any]:
        return {"answer": "ok", "refund": True}

    record = run_conversation(agent, Scripted(stop()))
    assert record.output == {"answer": "ok", "refund": True}
    assert json.loads(contents(record)[1][1]) == {"answer": "ok", "refund": True}


# --------------------------------------------------------------------------- agent arguments


def test_agent_gets_a_live_copy_of_the_state_it_cannot_corrupt() -> None:
    snapshots: list[dict[str, Any]] = []

    def agent(input_text: str, conversation_state: dict[str, Any] | None = None) -> str:
        assert conversation_state is not None
        snapshots.append(json.loads(json.dumps(conversation_state)))
        # Vandalise everything the agent can reach.
        conversation_state["turns"].append({"role": "user", "content": "INJECTED"})
        conversation_state["turns"][0]["content"] = "CHANGED"
        conversation_state["metadata"].clear()
        conversation_state["context"]["persona"] = "hacker"
        return f"re: {input_text}"

    record = run_conversation(agent, Scripted(cont("second"), stop()))
    assert [len(s["turns"]) for s in snapshots] == [1, 3]
    assert snapshots[1]["turns"][-1] == {"role": "user", "content": "second"}
    assert snapshots[1]["turns"][0]["content"] == "Hi, I need a refund"
    assert snapshots[1]["context"] == {"persona": "novice_user", "service_context": SERVICE}
    assert "INJECTED" not in json.dumps(record.conversation_state)
    assert contents(record)[0] == ("user", "Hi, I need a refund")
    assert record.conversation_state is not None
    assert record.conversation_state["context"]["persona"] == "novice_user"
    assert record.conversation_state["metadata"]["strategy"] == "rephrase"


@pytest.mark.parametrize("auto_approve", [True, False])
def test_auto_approve_reaches_the_agent_on_every_turn(auto_approve: bool) -> None:
    seen: list[bool] = []

    def agent(input_text: str, auto_approve: bool = not auto_approve) -> str:
        seen.append(auto_approve)
        return "ok"

    run_conversation(agent, Scripted(cont("two"), stop()), auto_approve=auto_approve)
    assert seen == [auto_approve, auto_approve]


def test_persona_override_reaches_agent_supervisor_and_state() -> None:
    personas: list[str | None] = []

    def agent(
        input_text: str,
        persona: str | None = None,
        conversation_state: dict[str, Any] | None = None,
    ) -> str:
        personas.append(persona)
        assert conversation_state is not None
        personas.append(conversation_state["context"]["persona"])
        return "ok"

    sup = Scripted(cont("two"), stop())
    record = run_conversation(
        agent, sup, persona_override="expert_user", override_description="knows it all"
    )
    assert personas == ["expert_user"] * 4
    assert {(r.persona, r.persona_description) for r in sup.requests} == {
        ("expert_user", "knows it all")
    }
    assert record.conversation_state is not None
    assert record.conversation_state["context"]["persona"] == "expert_user"


def test_persona_override_equal_to_the_case_persona_keeps_its_description() -> None:
    sup = Scripted(stop())
    run_conversation(echo, sup, persona_override="novice_user")
    assert sup.requests[0].persona_description == "new to the shop"


# --------------------------------------------------------------------------- failures


def test_agent_error_mid_conversation_keeps_the_partial_transcript() -> None:
    def agent(input_text: str) -> str:
        if input_text == "second":
            raise ValueError("agent broke on turn 2")
        return "first answer"

    record = run_conversation(agent, Scripted(cont("second"), stop()))
    assert record.status == "error" and not record.success
    assert record.error is not None and record.error.kind == "agent"
    assert record.error.type == "ValueError" and "turn 2" in record.error.message
    assert record.multi_turn is not None
    assert (record.multi_turn.turn_count, record.multi_turn.termination_reason) == (1, "error")
    assert contents(record) == [
        ("user", "Hi, I need a refund"),
        ("assistant", "first answer"),
        ("user", "second"),
    ]
    failed = [o for o in record.observations if o.type == "turn" and o.error]
    assert len(failed) == 1 and "ValueError" in (failed[0].error or "")


def test_supervisor_error_is_not_an_agent_failure() -> None:
    err = SupervisorError(
        "openai supervisor: output is not valid JSON", code="invalid_output", attempts=3
    )
    record = run_conversation(echo, Scripted(cont("second"), err))
    assert record.status == "supervisor_error" and not record.success
    assert record.error is not None
    assert record.error.kind == "supervisor"
    assert record.error.type == "SupervisorError.invalid_output"
    assert "not valid JSON" in record.error.message
    assert record.output == "re: second"  # the transcript up to the failure is kept
    assert record.multi_turn is not None and record.multi_turn.termination_reason == "error"
    assert len(contents(record)) == 4
    assert record.conversation_state is not None
    meta = record.conversation_state["metadata"]["supervisor"]
    assert meta["error"]["type"] == "SupervisorError.invalid_output"
    assert meta["attempts"] == 1 + 3  # the failed call's attempts count too


@pytest.mark.parametrize(
    ("step", "expected_type"),
    [
        (RuntimeError("custom supervisor bug"), "RuntimeError"),
        ({"decision": "continue"}, "SupervisorError.invalid_decision"),
        (
            SupervisorReply.model_construct(
                decision=SupervisorDecision.model_construct(decision="continue"),
            ),
            "SupervisorError.invalid_decision",
        ),
    ],
)
def test_broken_custom_supervisor_is_a_supervisor_error(step: Any, expected_type: str) -> None:
    record = run_conversation(echo, Scripted(step))
    assert record.status == "supervisor_error"
    assert record.error is not None
    assert (record.error.kind, record.error.type) == ("supervisor", expected_type)


def test_fatal_supervisor_error_marks_the_result_fatal() -> None:
    err = SupervisorError("openai supervisor: 401 invalid key", code="auth", fatal=True)
    settings = MultiTurnConfig(enabled=True)
    executor = CaseExecutor(
        target_of(echo),
        RunSettings(timeout_seconds=10, max_retries=3),
        sleep=FakeSleep(),
        driver=MultiTurnConversation(settings, Scripted(err), None),
    )
    result = executor.run(make_case("hi"))
    assert result.fatal
    assert result.record.status == "supervisor_error"
    assert result.record.attempts == 1  # supervisor errors are never retried by the executor


def test_supervisor_token_usage_is_summed_apart_from_the_agent() -> None:
    usage = TokenUsage(prompt_tokens=100, completion_tokens=20, total_tokens=120)
    record = run_conversation(echo, Scripted(cont("a"), cont("b"), stop(), usage=usage))
    assert record.token_usage == {
        "supervisor": {
            "input_tokens": 300,
            "output_tokens": 60,
            "cached_tokens": None,
            "reasoning_tokens": None,
            "total_tokens": 360,
            "calls": 3,
            "calls_without_usage": 0,
        }
    }


def test_mock_style_supervisor_without_usage_records_no_token_usage() -> None:
    record = run_conversation(echo, Scripted(stop()))
    assert record.token_usage is None


# --------------------------------------------------------------------------- observations


def test_turns_and_decisions_are_observations() -> None:
    import fluxloop

    @fluxloop.agent()
    def agent(input_text: str) -> str:
        return f"re: {input_text}"

    record = run_conversation(agent, Scripted(cont("second"), stop("resolved", closing="bye")))
    turns = [o for o in record.observations if o.type == "turn"]
    decisions = [o for o in record.observations if o.type == "supervisor_decision"]
    assert [(t.input, t.output) for t in turns] == [
        ("Hi, I need a refund", "re: Hi, I need a refund"),
        ("second", "re: second"),
    ]
    assert [t.metadata["turn"] for t in turns] == [1, 2]
    assert [d.output["decision"] for d in decisions] == ["continue", "terminate"]
    assert decisions[-1].output["closing_user_message"] == "bye"
    assert decisions[0].metadata["model"] == "scripted-1"
    # The agent's own spans nest under the turn that called it.
    spans = [o for o in record.observations if o.type == "span_start"]
    assert [s.parent_id for s in spans] == [t.observation_id for t in turns]
