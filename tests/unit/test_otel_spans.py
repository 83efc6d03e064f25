"""The OpenTelemetry export: hand-built records through the real SDK (InMemorySpanExporter)
and the sink's own OTLP provider against a real OTLP/HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import error_attributes as semconv_error
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as semconv
from opentelemetry.trace import SpanKind, StatusCode
from support.engine_helpers import isolated_imports
from support.experiment_helpers import make_project
from support.otlp_receiver import running_otlp_receiver

from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.records import (
    CaseEvaluation,
    ErrorInfo,
    EvaluatorResult,
    MultiTurnInfo,
    Observation,
    TraceRecord,
)
from pytest_fluxloop.redact import REDACTED, Redactor
from pytest_fluxloop.run import Experiment
from pytest_fluxloop.sdk.usage import token_usage_by_role
from pytest_fluxloop.sinks import RunEnd, RunStart, otel_export, otel_semconv
from pytest_fluxloop.sinks.base import ReportingSink
from pytest_fluxloop.sinks.otel import INSTALL_HINT, otel_sink_for
from pytest_fluxloop.sinks.otel_export import APPLICATION_PROVIDER, OtelSink
from pytest_fluxloop.sinks.otel_spans import (
    CAPTURE_CONTENT_ENV,
    agent_name,
    capture_content_from_env,
    case_span,
    count_spans,
)

TRACE = "0b9f5a79fb5e49d9b0d4b73517b87032"
BASE = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)
KEY = "sk-abcdefghijklmnopqrstuvwx0123"  # shaped like an OpenAI key: always redacted
MARK = "PINEAPPLE"  # in every piece of content of the records below


def at(ms: float) -> datetime:
    return BASE + timedelta(milliseconds=ms)


def ns(moment: datetime) -> int:
    return (
        int((moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1)) * 1000
    )


def obs(type: str, name: str, ms: float, **fields: Any) -> Observation:
    return Observation(trace_id=TRACE, type=type, name=name, timestamp=at(ms), **fields)


def generation(
    span_id: str,
    parent: str | None,
    start: float,
    end: float,
    *,
    role: str = "agent",
    model: str = "gpt-4o-mini",
    usage: dict[str, int | None] | None = None,
    error: str | None = None,
    provider: str = "openai",
) -> list[Observation]:
    """A generation as sdk/generation.py records it: span_start and span_end."""
    common = {"observation_id": span_id, "parent_id": parent, "kind": "generation", "role": role}
    return [
        obs(
            "span_start",
            f"{provider}.chat.completions",
            start,
            input={
                "messages": [
                    {"role": "system", "content": f"be nice {MARK}"},
                    {"role": "user", "content": f"hi {MARK} {KEY}"},
                ]
            },
            metadata={
                "kind": "generation",
                "provider": provider,
                "model": model,
                "operation": "/chat/completions",
                "parameters": {"temperature": 0.2, "max_tokens": 100, "stop": "END"},
                "stream": False,
            },
            **common,
        ),
        obs(
            "span_end",
            f"{provider}.chat.completions",
            end,
            output=None if error else f"hello {MARK}",
            error=error,
            duration_ms=end - start,
            metadata={
                "kind": "generation",
                "provider": provider,
                "model": f"{model}-2024-07-18",
                "finish_reason": None if error else "stop",
                "usage": usage,
                "usage_source": "response" if usage else "missing",
                "stream": False,
                "status": "error" if error else "ok",
            },
            **common,
        ),
    ]


def usage(inp: int, out: int) -> dict[str, int | None]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cached_tokens": 2,
        "reasoning_tokens": None,
        "total_tokens": inp + out,
    }


def record(observations: list[Observation], **fields: Any) -> TraceRecord:
    data: dict[str, Any] = {
        "trace_id": TRACE,
        "case_id": "in00-hi-novice-it0",
        "iteration": 0,
        "persona": "novice",
        "input": f"hi {MARK}",
        "output": f"hello {MARK}",
        "duration_ms": 30.0,
        "success": True,
        "status": "success",
        "started_at": at(0),
        "completed_at": at(30),
        "observations": observations,
        "token_usage": token_usage_by_role(observations),
        "seed": 7,
        "worker": "gw1",
        "test_outcome": "passed",
    }
    data.update(fields)
    return TraceRecord(**data)


def single_turn() -> TraceRecord:
    """@fluxloop.agent -> an LLM call, a tool, an event."""
    agent = {"observation_id": "a1", "parent_id": None, "kind": "agent", "role": "agent"}
    tool = {"observation_id": "t1", "parent_id": "a1", "kind": "tool", "role": "agent"}
    return record(
        [
            obs("span_start", "support_bot", 1, input={"input_text": f"hi {MARK}"}, **agent),
            *generation("g1", "a1", 2, 12, usage=usage(11, 3)),
            obs(
                "span_start",
                "search",
                13,
                input={"query": MARK, "api_key": "abcdefgh12345678"},
                metadata={"kind": "tool", "description": "Search the docs"},
                **tool,
            ),
            obs("span_end", "search", 15, output=[f"doc {MARK}"], duration_ms=2, **tool),
            obs("event", "thinking", 16, parent_id="a1", kind="event", metadata={"m": MARK}),
            obs("span_end", "support_bot", 20, output=f"hello {MARK}", duration_ms=19, **agent),
        ]
    )


def multi_turn() -> TraceRecord:
    """Two turns (each with two agent LLM calls) and a supervisor decision after each, whose
    LLM call has no parent (as the conversation driver records them)."""
    observations: list[Observation] = []
    for turn, t0 in ((1, 0.0), (2, 20.0)):
        turn_id = f"turn{turn}"
        observations += generation(f"g{turn}a", turn_id, t0 + 1, t0 + 4, usage=usage(4, 3))
        observations += generation(f"g{turn}b", turn_id, t0 + 5, t0 + 9, usage=usage(2, 3))
        observations.append(
            obs(
                "turn",
                f"turn {turn}",
                t0 + 10,
                observation_id=turn_id,
                kind="event",
                role="agent",
                input=f"question {turn} {MARK}",
                output=f"answer {turn} {MARK}",
                duration_ms=10,
                metadata={"turn": turn, "persona": "novice"},
            )
        )
        observations += generation(
            f"s{turn}",
            None,
            t0 + 12,
            t0 + 15,
            role="supervisor",
            model="sup-model",
            usage=usage(10, 5),
        )
        observations.append(
            obs(
                "supervisor_decision",
                "supervisor",
                t0 + 16,
                kind="event",
                role="supervisor",
                output={
                    "turn": turn,
                    "decision": "continue" if turn == 1 else "terminate",
                    "termination_reason": None if turn == 1 else "user_satisfied",
                    "next_user_message": f"next {MARK}" if turn == 1 else None,
                    "closing_user_message": None,
                },
                duration_ms=5,
                metadata={
                    "turn": turn,
                    "model": "sup-model",
                    "attempts": 1,
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                },
            )
        )
    return record(
        observations,
        completed_at=at(40),
        multi_turn=MultiTurnInfo(enabled=True, turn_count=2, termination_reason="user_satisfied"),
    )


def failed() -> TraceRecord:
    """The agent's tool raised, then the agent: a failed case."""
    agent = {"observation_id": "a1", "parent_id": None, "kind": "agent", "role": "agent"}
    tool = {"observation_id": "t1", "parent_id": "a1", "kind": "tool", "role": "agent"}
    return record(
        [
            obs("span_start", "support_bot", 1, **agent),
            obs("span_start", "lookup", 2, **tool),
            obs("span_end", "lookup", 3, error="KeyError: 'order'", duration_ms=1, **tool),
            *generation("g1", "a1", 4, 6, error=f"AuthenticationError: bad key {KEY}"),
            obs("span_end", "support_bot", 7, error="ValueError: boom", duration_ms=6, **agent),
        ],
        output=None,
        success=False,
        status="error",
        error=ErrorInfo(kind="agent", type="ValueError", message=f"boom with {KEY}"),
    )


def evaluated() -> TraceRecord:
    return record(
        single_turn().observations,
        evaluation=CaseEvaluation(
            verdict="failed",
            score=0.4,
            threshold=0.7,
            evaluators=[
                EvaluatorResult(
                    name="rules", type="rule_based", status="passed", score=1.0, reason="ok"
                ),
                EvaluatorResult(
                    name="helpfulness",
                    type="llm_judge",
                    status="failed",
                    score=0.2,
                    reason="The answer ignores the question",
                    model="judge-model",
                ),
                EvaluatorResult(
                    name="tone", type="llm_judge", status="unscored", unscored_reason="timeout"
                ),
            ],
        ),
    )


# --------------------------------------------------------------------------- helpers


def export(
    records: Sequence[TraceRecord],
    *,
    content: bool = False,
    target: str = "agent:run",
    redactor: Redactor | None = None,
    sampler: Any = None,
) -> tuple[list[ReadableSpan], OtelSink]:
    """``records`` through an OtelSink on a real SDK provider (with ``sampler``, if given)
    and an in-memory exporter."""
    memory = InMemorySpanExporter()
    provider = TracerProvider() if sampler is None else TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    sink = OtelSink(
        experiment="demo",
        target_spec=target,
        redactor=redactor or Redactor(),
        content=content,
        max_chars=100_000,
        provider_factory=lambda: provider,
    )
    sink.open(_start())
    for item in records:
        sink.append(item)
    sink.finish(RunEnd(status="complete", exit_code=0, total_cases=len(records)))
    return list(memory.get_finished_spans()), sink


def _start() -> RunStart:
    return RunStart("demo", "", 1, 7, {})


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = by_name(spans, name)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def parent_of(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next(s for s in spans if s.context.span_id == span.parent.span_id)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def all_values(spans: Sequence[ReadableSpan]) -> str:
    """Every name, attribute value, event and status text of ``spans`` as one string."""
    parts: list[str] = []
    for span in spans:
        parts.append(span.name)
        parts.append(span.status.description or "")
        parts.extend(str(v) for v in attrs(span).values())
        for event in span.events:
            parts.append(event.name)
            parts.extend(str(v) for v in (event.attributes or {}).values())
    return "\n".join(parts)


USAGE_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")


# --------------------------------------------------------------------------- single turn


def test_single_turn_case_is_an_invoke_agent_span_with_its_observations_as_children() -> None:
    item = single_turn()
    spans, _ = export([item])
    assert sorted(s.name for s in spans) == [
        "chat gpt-4o-mini",
        "execute_tool search",
        "invoke_agent support_bot",
        "support_bot",
    ]
    case = one(spans, "invoke_agent support_bot")
    agent = one(spans, "support_bot")
    chat = one(spans, "chat gpt-4o-mini")
    tool = one(spans, "execute_tool search")
    # One trace, the case at its root; the agent span under it, the call and tool under that.
    assert case.parent is None
    assert {s.context.trace_id for s in spans} == {case.context.trace_id}
    assert parent_of(agent, spans) is case
    assert parent_of(chat, spans) is agent
    assert parent_of(tool, spans) is agent
    # The recorded times, to the microsecond.
    assert (case.start_time, case.end_time) == (ns(item.started_at), ns(item.completed_at))
    assert (chat.start_time, chat.end_time) == (ns(at(2)), ns(at(12)))
    assert (tool.start_time, tool.end_time) == (ns(at(13)), ns(at(15)))
    assert (agent.start_time, agent.end_time) == (ns(at(1)), ns(at(20)))
    assert case.kind is SpanKind.INTERNAL and chat.kind is SpanKind.CLIENT
    assert tool.kind is SpanKind.INTERNAL

    expected = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "support_bot",
        "gen_ai.conversation.id": TRACE,
        "gen_ai.provider.name": "openai",
        "fluxloop.role": "agent",
        "fluxloop.experiment": "demo",
        "fluxloop.case_id": "in00-hi-novice-it0",
        "fluxloop.persona": "novice",
        "fluxloop.status": "success",
        "fluxloop.worker": "gw1",
        "fluxloop.usage.agent.input_tokens": 11,
        "fluxloop.usage.agent.output_tokens": 3,
        "fluxloop.usage.agent.calls": 1,
    }
    assert expected.items() <= attrs(case).items()
    assert attrs(chat) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.conversation.id": TRACE,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.stream": False,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 2,
        "fluxloop.generation.status": "ok",
        "fluxloop.role": "agent",
        "fluxloop.kind": "generation",
    }
    assert attrs(tool) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Search the docs",
        "fluxloop.role": "agent",
        "fluxloop.kind": "tool",
    }
    assert attrs(agent) == {"fluxloop.role": "agent", "fluxloop.kind": "agent"}
    # The point observation is an event of its parent span.
    (event,) = agent.events
    assert event.name == "thinking" and event.timestamp == ns(at(16))
    assert dict(event.attributes or {})["fluxloop.observation.type"] == "event"
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)


def test_token_usage_is_only_on_the_llm_call_spans() -> None:
    spans, _ = export([single_turn(), multi_turn()])
    for span in spans:
        has_usage = any(k.startswith("gen_ai.usage.") for k in attrs(span))
        assert has_usage == span.name.startswith("chat "), span.name
        if not span.name.startswith("invoke_agent"):
            assert not any(k.startswith("fluxloop.usage.agent") for k in attrs(span))


def test_the_agent_is_named_after_the_runner_target_without_an_agent_span() -> None:
    item = record(generation("g1", None, 1, 2, usage=usage(1, 1)))
    assert agent_name(item, "pkg.agents:answer") == "answer"
    assert agent_name(item, None) == "agent"
    assert agent_name(single_turn(), "pkg.agents:answer") == "support_bot"
    spans, _ = export([item], target="pkg.agents:answer")
    case = one(spans, "invoke_agent answer")
    assert attrs(case)["gen_ai.agent.name"] == "answer"
    assert parent_of(one(spans, "chat gpt-4o-mini"), spans) is case


# --------------------------------------------------------------------------- multi-turn


def test_multi_turn_has_a_span_per_turn_and_the_supervisor_calls_under_its_decisions() -> None:
    item = multi_turn()
    spans, _ = export([item])
    case = one(spans, "invoke_agent run")
    turns = sorted(by_name(spans, "turn 1") + by_name(spans, "turn 2"), key=lambda s: s.name)
    decisions = sorted(by_name(spans, "supervisor_decision"), key=lambda s: s.start_time or 0)
    assert len(turns) == 2 and len(decisions) == 2
    assert all(parent_of(s, spans) is case for s in [*turns, *decisions])
    for number, turn in enumerate(turns, start=1):
        assert attrs(turn)["fluxloop.turn"] == number
        assert attrs(turn)["fluxloop.role"] == "agent"
        # Recorded at its end with its duration: it starts duration_ms earlier.
        t0 = 0.0 if number == 1 else 20.0
        assert (turn.start_time, turn.end_time) == (ns(at(t0)), ns(at(t0 + 10)))
        calls = [s for s in spans if parent_of(s, spans) is turn]
        assert [s.name for s in calls] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
        assert all(attrs(s)["fluxloop.role"] == "agent" for s in calls)
        # The turn's total of its calls, never as gen_ai.usage.
        assert attrs(turn)["fluxloop.usage.input_tokens"] == 6
        assert attrs(turn)["fluxloop.usage.output_tokens"] == 6
    for decision in decisions:
        (call,) = [s for s in spans if parent_of(s, spans) is decision]
        assert call.name == "chat sup-model"
        assert attrs(call)["fluxloop.role"] == attrs(decision)["fluxloop.role"] == "supervisor"
        assert attrs(decision)["fluxloop.usage.input_tokens"] == 10
    assert attrs(decisions[0])["fluxloop.supervisor.decision"] == "continue"
    assert attrs(decisions[1])["fluxloop.supervisor.decision"] == "terminate"
    assert attrs(decisions[1])["fluxloop.multi_turn.termination_reason"] == "user_satisfied"
    assert attrs(case)["fluxloop.multi_turn.turn_count"] == 2
    assert attrs(case)["fluxloop.multi_turn.termination_reason"] == "user_satisfied"
    # Nothing counted twice: the calls' gen_ai.usage sum to the case's totals, role by role.
    assert item.token_usage is not None
    for role in ("agent", "supervisor"):
        for key in ("input_tokens", "output_tokens"):
            calls_sum = sum(
                int(attrs(s)[f"gen_ai.usage.{key}"])
                for s in spans
                if s.name.startswith("chat ") and attrs(s)["fluxloop.role"] == role
            )
            assert calls_sum == attrs(case)[f"fluxloop.usage.{role}.{key}"]
            assert calls_sum == item.token_usage[role][key]
    # Every span says who made it.
    assert all("fluxloop.role" in attrs(s) for s in spans)


# --------------------------------------------------------------------------- failures


def test_failures_set_error_type_and_status_error_redacted() -> None:
    spans, _ = export([failed()])
    case = one(spans, "invoke_agent support_bot")
    tool = one(spans, "execute_tool lookup")
    chat = one(spans, "chat gpt-4o-mini")
    agent = one(spans, "support_bot")
    assert attrs(case)["error.type"] == "ValueError"
    assert attrs(case)["fluxloop.error.kind"] == "agent"
    assert attrs(case)["fluxloop.status"] == "error"
    assert attrs(tool)["error.type"] == "KeyError"
    assert attrs(chat)["error.type"] == "AuthenticationError"
    assert attrs(chat)["fluxloop.generation.status"] == "error"
    assert "gen_ai.usage.input_tokens" not in attrs(chat)
    assert attrs(agent)["error.type"] == "ValueError"
    for span in (case, tool, chat, agent):
        assert span.status.status_code is StatusCode.ERROR
    assert case.status.description == f"ValueError: boom with {REDACTED}"
    assert KEY not in all_values(spans)


def test_a_timeout_without_error_info_is_its_status() -> None:
    item = record([], status="timeout", success=False, output=None)
    spans, _ = export([item])
    (case,) = spans
    assert attrs(case)["error.type"] == "timeout"
    assert case.status.status_code is StatusCode.ERROR


def test_a_span_whose_end_never_came_ends_with_the_case() -> None:
    start = {"observation_id": "x", "parent_id": None, "kind": "span", "role": "agent"}
    spans, _ = export([record([obs("span_start", "stream", 5, **start)])])
    span = one(spans, "stream")
    assert (span.start_time, span.end_time) == (ns(at(5)), ns(at(30)))
    assert attrs(span)["fluxloop.span.incomplete"] is True


def test_parent_cycles_and_deep_nesting_lose_no_span() -> None:
    # Two spans naming each other as parent (ids reused by a broken capture).
    cycle = [
        obs("span_start", "a", 1, observation_id="a", parent_id="b", kind="span"),
        obs("span_start", "b", 2, observation_id="b", parent_id="a", kind="span"),
        obs("span_end", "a", 3, observation_id="a", parent_id="b", kind="span"),
        obs("span_end", "b", 4, observation_id="b", parent_id="a", kind="span"),
    ]
    spans, _ = export([record(cycle)])
    assert sorted(s.name for s in spans) == ["a", "b", "invoke_agent run"]
    assert len({s.context.trace_id for s in spans}) == 1
    # Nesting far deeper than Python's recursion limit.
    depth = sys.getrecursionlimit() + 500
    deep = [
        obs("span_start", f"s{i}", 1, observation_id=f"s{i}", parent_id=f"s{i - 1}" if i else None)
        for i in range(depth)
    ]
    plan = case_span(record(deep), agent="run", experiment="demo")
    assert count_spans(plan) == depth + 1


# --------------------------------------------------------------------------- evaluation


def test_each_evaluator_is_a_gen_ai_evaluation_result_event_on_the_case_span() -> None:
    spans, _ = export([evaluated()])
    case = one(spans, "invoke_agent support_bot")
    events = {e.attributes["gen_ai.evaluation.name"]: dict(e.attributes or {}) for e in case.events}
    assert [e.name for e in case.events] == ["gen_ai.evaluation.result"] * 3
    assert events["rules"] == {
        "gen_ai.evaluation.name": "rules",
        "gen_ai.evaluation.score.value": 1.0,
        "gen_ai.evaluation.score.label": "passed",
        "gen_ai.evaluation.explanation": "ok",
        "fluxloop.evaluation.type": "rule_based",
        "fluxloop.role": "agent",
    }
    assert events["helpfulness"]["gen_ai.evaluation.score.value"] == 0.2
    assert events["helpfulness"]["gen_ai.evaluation.score.label"] == "failed"
    assert events["helpfulness"]["gen_ai.evaluation.explanation"] == (
        "The answer ignores the question"
    )
    assert events["helpfulness"]["fluxloop.evaluation.model"] == "judge-model"
    assert events["helpfulness"]["fluxloop.role"] == "judge"
    assert events["tone"]["gen_ai.evaluation.score.label"] == "unscored"
    assert events["tone"]["error.type"] == "timeout"
    assert "gen_ai.evaluation.score.value" not in events["tone"]
    assert all(e.timestamp == case.end_time for e in case.events)
    assert attrs(case)["fluxloop.evaluation.verdict"] == "failed"
    assert attrs(case)["fluxloop.evaluation.score"] == 0.4
    assert attrs(case)["fluxloop.evaluation.threshold"] == 0.7


# --------------------------------------------------------------------------- content


CONTENT_ATTRIBUTES = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "fluxloop.supervisor.message",
    "fluxloop.input",
    "fluxloop.output",
    "fluxloop.metadata",
)


def test_no_content_leaves_without_the_environment_variable() -> None:
    spans, sink = export([single_turn(), multi_turn(), failed()], content=False)
    assert MARK not in all_values(spans)
    for span in spans:
        assert not set(attrs(span)) & set(CONTENT_ATTRIBUTES), span.name
    assert sink.report()["content"] is False


def test_content_with_the_environment_variable_follows_the_message_schema_redacted() -> None:
    spans, sink = export([single_turn(), multi_turn()], content=True)
    assert sink.report()["content"] is True
    chat = by_name(spans, "chat gpt-4o-mini")[0]
    messages = json.loads(str(attrs(chat)["gen_ai.input.messages"]))
    assert messages == [
        {"role": "system", "parts": [{"type": "text", "content": f"be nice {MARK}"}]},
        {"role": "user", "parts": [{"type": "text", "content": f"hi {MARK} {REDACTED}"}]},
    ]
    assert json.loads(str(attrs(chat)["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": f"hello {MARK}"}],
            "finish_reason": "stop",
        }
    ]
    case = by_name(spans, "invoke_agent support_bot")[0]
    assert json.loads(str(attrs(case)["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": f"hi {MARK}"}]}
    ]
    tool = one(spans, "execute_tool search")
    assert json.loads(str(attrs(tool)["gen_ai.tool.call.arguments"])) == {
        "query": MARK,
        "api_key": REDACTED,
    }
    assert json.loads(str(attrs(tool)["gen_ai.tool.call.result"])) == [f"doc {MARK}"]
    turn = one(spans, "turn 1")
    assert MARK in str(attrs(turn)["gen_ai.input.messages"])
    decision = by_name(spans, "supervisor_decision")[0]
    assert attrs(decision)["fluxloop.supervisor.message"] == f"next {MARK}"
    # Usage stays where it was; the key never leaves, even inside content.
    assert KEY not in all_values(spans)
    assert "abcdefgh12345678" not in all_values(spans)


def test_content_texts_are_cut_with_the_json_kept_valid() -> None:
    item = record([], input="x" * 50)
    plan = case_span(item, agent="run", experiment="demo", content=True, max_chars=10)
    messages = json.loads(str(plan.attributes["gen_ai.input.messages"]))
    assert messages[0]["parts"][0]["content"] == "x" * 10


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (None, False),
        ("", False),
        ("false", False),
        ("no_content", False),
        ("event_only", False),
        ("true", True),
        ("TRUE", True),
        (" 1 ", True),
        ("span_only", True),
        ("SPAN_AND_EVENT", True),
    ],
)
def test_the_content_switch(value: str | None, on: bool) -> None:
    environ = {} if value is None else {CAPTURE_CONTENT_ENV: value}
    assert capture_content_from_env(environ) is on


# --------------------------------------------------------------------------- conventions


def test_the_names_are_the_semantic_conventions() -> None:
    """Every gen_ai.* name we use is one the installed semconv package defines."""
    known = {getattr(semconv, n) for n in dir(semconv) if n.startswith("GEN_AI_")}
    ours = {
        getattr(otel_semconv, n)
        for n in dir(otel_semconv)
        if n.startswith("GEN_AI_") and n != "GEN_AI_EVALUATION_RESULT"
    }
    assert ours <= known, ours - known
    assert otel_semconv.ERROR_TYPE == semconv_error.ERROR_TYPE
    assert semconv.GenAiOperationNameValues.INVOKE_AGENT.value == otel_semconv.INVOKE_AGENT
    assert semconv.GenAiOperationNameValues.EXECUTE_TOOL.value == otel_semconv.EXECUTE_TOOL
    assert (
        f"https://opentelemetry.io/schemas/{otel_semconv.SEMCONV_VERSION}"
        == otel_semconv.SCHEMA_URL
    )


def test_the_tracer_names_the_pinned_schema() -> None:
    spans, sink = export([single_turn()])
    scopes = {s.instrumentation_scope for s in spans}
    assert len(scopes) == 1
    (scope,) = scopes
    assert scope is not None
    assert (scope.name, scope.schema_url) == ("pytest_fluxloop", otel_semconv.SCHEMA_URL)
    report = sink.report()
    assert report == {
        "spans": 4,
        "traces": 1,
        "exporter": APPLICATION_PROVIDER,
        "semconv": otel_semconv.SEMCONV_VERSION,
        "content": False,
        "flushed": True,
        "errors": 0,
    }
    assert sink.lines() == [
        f"otel: 4 spans of 1 cases exported to {APPLICATION_PROVIDER} "
        f"(GenAI semconv {otel_semconv.SEMCONV_VERSION})"
    ]
    assert isinstance(sink, ReportingSink)


# --------------------------------------------------------------------------- the sink


@pytest.fixture
def isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def test_otel_sink_for_is_off_unless_enabled_and_needs_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: None
) -> None:
    path, _ = make_project(tmp_path / "off")
    assert otel_sink_for(Experiment.load(path)) is None
    path, _ = make_project(tmp_path / "on", otel={"enabled": True})
    experiment = Experiment.load(path)
    sink = otel_sink_for(experiment)
    assert isinstance(sink, OtelSink) and sink.target_spec is not None
    # The extra missing: a ConfigError naming where the export was asked for, and the fix.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError) as raised:
        otel_sink_for(experiment)
    assert INSTALL_HINT in str(raised.value)
    assert "otel.enabled" in str(raised.value)


def test_a_plain_python_run_with_parallel_cases_exports_each_case_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: None
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    # As if the application had set it globally (a process can set the global one once).
    monkeypatch.setattr(otel_export, "_application_provider", lambda: provider)
    path, _ = make_project(tmp_path, otel={"enabled": True}, parallel_runs=3)
    summary = Experiment.load(path).run()
    roots = [s for s in memory.get_finished_spans() if s.parent is None]
    case_ids = sorted(str(attrs(s)["fluxloop.case_id"]) for s in roots)
    assert len(case_ids) == summary.total_traces == 6
    assert len(set(case_ids)) == 6
    assert {s.name for s in roots} == {"invoke_agent run"}
    assert summary.otel is not None
    assert summary.otel["exporter"] == APPLICATION_PROVIDER
    assert summary.otel["traces"] == 6
    assert summary.otel["spans"] == len(memory.get_finished_spans())
    failed_cases = [s for s in roots if attrs(s)["fluxloop.status"] == "error"]
    assert len(failed_cases) == 2
    assert all(s.status.status_code is StatusCode.ERROR for s in failed_cases)


def _own_sink(monkeypatch: pytest.MonkeyPatch, **env: str) -> OtelSink:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # No application provider in this process: the sink makes its own.
    monkeypatch.setattr(otel_export, "_application_provider", lambda: None)
    return OtelSink(
        experiment="demo",
        target_spec="agent:run",
        redactor=Redactor(),
        content=False,
        max_chars=1000,
    )


def test_without_an_application_provider_spans_go_over_otlp_with_their_parents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_otlp_receiver() as receiver:
        sink = _own_sink(monkeypatch, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
        sink.open(_start())
        sink.append(multi_turn())
        sink.finish(RunEnd(status="complete", exit_code=0, total_cases=1))
        received = receiver.received()
    report = sink.report()
    assert report["exporter"] == f"OTLP {receiver.url}/v1/traces"
    assert (report["spans"], report["delivered"], report["failed"]) == (11, 11, 0)
    assert report["flushed"] is True
    assert len(received) == 11
    ids = {s.span_id: s for s in received}
    (root,) = [s for s in received if not s.parent_span_id]
    assert root.name == "invoke_agent run"
    assert all(s.parent_span_id in ids for s in received if s is not root)
    for span in received:
        if span.name == "chat sup-model":
            assert ids[span.parent_span_id].name == "supervisor_decision"
        elif span.name == "chat gpt-4o-mini":
            assert ids[span.parent_span_id].name.startswith("turn ")
    assert root.schema_url == otel_semconv.SCHEMA_URL
    assert root.resource["service.name"] == "fluxloop"
    assert root.resource["fluxloop.experiment"] == "demo"


def test_an_unreachable_collector_never_holds_the_run_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(otel_export, "FLUSH_TIMEOUT_S", 0.3)
    # The discard port: nothing answers; the exporter gives up on its own after 2 s.
    sink = _own_sink(
        monkeypatch,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_EXPORTER_OTLP_TIMEOUT="2",
    )
    sink.open(_start())
    sink.append(single_turn())
    t0 = time.monotonic()
    sink.finish(RunEnd(status="complete", exit_code=0, total_cases=1))
    assert time.monotonic() - t0 < 2.0
    assert sink.report()["flushed"] is False
    assert any("not flushed" in line for line in sink.lines())
    # The flush goes on in the background until the exporter's own deadline: let it end.
    for thread in threading.enumerate():
        if thread.name == "fluxloop-otel-flush":
            thread.join(timeout=10)
    assert sink.report()["failed"] == 4


def test_the_endpoint_is_reported_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = _own_sink(
        monkeypatch, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://user:s3cretpass@127.0.0.1:9/t"
    )
    sink.open(_start())
    sink.finish(RunEnd(status="complete", exit_code=0, total_cases=0))
    assert sink.report()["exporter"] == "OTLP http://127.0.0.1:9/t"


@pytest.mark.parametrize("protocol", ["grpc", "http/json"])
def test_an_otlp_protocol_without_its_exporter_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    sink = _own_sink(monkeypatch, OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        sink.open(_start())


def test_a_record_that_cannot_be_exported_is_counted_not_raised() -> None:
    class Broken(Redactor):
        def __call__(self, obj: Any) -> Any:
            raise RuntimeError(f"redactor bug {KEY}")

    spans, sink = export([single_turn()], redactor=Broken())
    assert sink.report()["errors"] == 1
    assert spans == []
    assert any("1 cases not exported" in line for line in sink.lines())


def test_spans_a_sampler_drops_are_not_counted() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    spans, sink = export([single_turn()], sampler=ALWAYS_OFF)
    assert (sink.report()["spans"], sink.report()["traces"]) == (0, 1)
    assert spans == []
