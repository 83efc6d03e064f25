"""One finished case as a tree of OpenTelemetry span plans (GenAI semantic conventions).

This module decides *what* is exported; :mod:`.otel_export` hands the plans to an
OpenTelemetry tracer. It imports nothing from OpenTelemetry, so the conversion is plain data
that tests can read, and a run without ``--fluxloop-otel`` never loads the SDK.

The tree of one case (a :class:`~pytest_fluxloop.records.TraceRecord`)::

    invoke_agent {agent}                  the case: started_at .. completed_at
    ├── turn 1                            a conversation turn (multi-turn cases)
    │   ├── {agent's own spans}           @fluxloop.agent / @fluxloop.trace ...: their name
    │   │   └── chat {model}              an LLM call (a generation observation)
    │   └── execute_tool {tool}           a tool call
    ├── supervisor_decision               the supervisor choosing the next user message
    │   └── chat {model}                  its LLM call (role supervisor)
    └── ...

Each ``span_start``/``span_end`` pair of observations is one span with their timestamps
(a span whose start was dropped starts ``duration_ms`` before its end; one whose end never
came ends with the case and says ``fluxloop.span.incomplete``). Point observations
(``event``, ``notice``, ``error`` ...) are span events of their parent. Every span has
``fluxloop.role`` (agent, supervisor, judge, generator). Token counts are only on the LLM-call
spans (``gen_ai.usage.*``); the case span has the case's totals by role under
``fluxloop.usage.<role>.*`` and a turn its calls' sums under ``fluxloop.usage.*``, so a
backend summing ``gen_ai.usage.*`` counts every token once. The case's evaluation is one
``gen_ai.evaluation.result`` event per evaluator on the case span.

Message content (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions``, tool arguments and results) is exported only when
:data:`CAPTURE_CONTENT_ENV` asks for it (:func:`capture_content_from_env`). The caller passes
a record that is already redacted (:func:`redacted_record`).

The attribute names are those of the GenAI semantic conventions :data:`SEMCONV_VERSION`
(the last release that holds them in the main semantic-conventions repository; later ones
point to the separate GenAI conventions repository).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeAlias

from ..artifacts.writer import artifact_record
from ..jsonsafe import to_jsonable
from ..records import TOKEN_COUNT_KEYS, Observation, TraceRecord
from ..redact import Redactor
from .otel_semconv import (
    CAPTURE_CONTENT_ENV,
    CHAT,
    EMBEDDINGS,
    ERROR_TYPE,
    ERROR_TYPE_OTHER,
    EXECUTE_TOOL,
    FLUXLOOP_ATTEMPTS,
    FLUXLOOP_CASE_ID,
    FLUXLOOP_ERROR_KIND,
    FLUXLOOP_ERROR_MESSAGE,
    FLUXLOOP_EVALUATION_MODEL,
    FLUXLOOP_EVALUATION_SCORE,
    FLUXLOOP_EVALUATION_THRESHOLD,
    FLUXLOOP_EVALUATION_TYPE,
    FLUXLOOP_EVALUATION_VERDICT,
    FLUXLOOP_EXPERIMENT,
    FLUXLOOP_GENERATION_STATUS,
    FLUXLOOP_INPUT,
    FLUXLOOP_ITERATION,
    FLUXLOOP_KIND,
    FLUXLOOP_METADATA,
    FLUXLOOP_OBSERVATION_TYPE,
    FLUXLOOP_OBSERVATIONS_DROPPED,
    FLUXLOOP_OUTPUT,
    FLUXLOOP_PERSONA,
    FLUXLOOP_ROLE,
    FLUXLOOP_SEED,
    FLUXLOOP_SPAN_INCOMPLETE,
    FLUXLOOP_STATUS,
    FLUXLOOP_SUPERVISOR_DECISION,
    FLUXLOOP_SUPERVISOR_MESSAGE,
    FLUXLOOP_SUPERVISOR_MODEL,
    FLUXLOOP_TERMINATION_REASON,
    FLUXLOOP_TEST_OUTCOME,
    FLUXLOOP_TRACE_ID,
    FLUXLOOP_TURN,
    FLUXLOOP_TURN_COUNT,
    FLUXLOOP_USAGE,
    FLUXLOOP_WORKER,
    GEN_AI_AGENT_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_RESULT,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_CHOICE_COUNT,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_K,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_DESCRIPTION,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    INVOKE_AGENT,
    SCHEMA_URL,
    SEMCONV_VERSION,
    SUPERVISOR_DECISION,
    TEXT_COMPLETION,
)

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "SCHEMA_URL",
    "SEMCONV_VERSION",
    "SpanEvent",
    "SpanPlan",
    "agent_name",
    "capture_content_from_env",
    "case_span",
    "count_spans",
    "redacted_record",
    "walk",
]

MAX_STATUS_CHARS = 500
"""A span status description (an error message) is cut to this many characters."""

# gen_ai.provider.name has well-known values; the names our capture points use (LangChain's
# ``ls_provider`` among them) that differ from them are mapped, the rest kept as they are.
_PROVIDERS = {
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "google_genai": "gcp.gen_ai",
    "google": "gcp.gen_ai",
    "vertexai": "gcp.vertex_ai",
    "google_vertexai": "gcp.vertex_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "ibm": "ibm.watsonx.ai",
}

_FLOAT_PARAMETERS = {
    "temperature": GEN_AI_REQUEST_TEMPERATURE,
    "top_p": GEN_AI_REQUEST_TOP_P,
    "frequency_penalty": GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": GEN_AI_REQUEST_PRESENCE_PENALTY,
}
_INT_PARAMETERS = {
    "top_k": GEN_AI_REQUEST_TOP_K,
    "max_tokens": GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": GEN_AI_REQUEST_MAX_TOKENS,
    "max_output_tokens": GEN_AI_REQUEST_MAX_TOKENS,
    "seed": GEN_AI_REQUEST_SEED,
}
_USAGE_ATTRIBUTES = {
    "input_tokens": GEN_AI_USAGE_INPUT_TOKENS,
    "output_tokens": GEN_AI_USAGE_OUTPUT_TOKENS,
    "cached_tokens": GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "reasoning_tokens": GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
}
_CONTENT_ON = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})
"""Values of :data:`CAPTURE_CONTENT_ENV` that turn content on (``true``; the GenAI
instrumentations' newer ``span_only`` and ``span_and_event``), case-insensitive."""

_ERROR_TYPE = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")

AttributeValue: TypeAlias = "str | bool | int | float | Sequence[str]"
Attributes: TypeAlias = "dict[str, AttributeValue]"


@dataclass
class SpanEvent:
    """A span event: a point observation, or an evaluator's verdict."""

    name: str
    time_ns: int
    attributes: Attributes = field(default_factory=dict)


@dataclass
class SpanPlan:
    """One span to export, with explicit times (ns since the epoch) and its children."""

    name: str
    start_ns: int
    end_ns: int
    attributes: Attributes = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    error: str | None = None
    """The status description of a failed span (status ERROR); None: the span succeeded."""
    client: bool = False
    """Span kind CLIENT (an LLM call to a provider); otherwise INTERNAL."""
    children: list[SpanPlan] = field(default_factory=list)


# --------------------------------------------------------------------------- entry points


def capture_content_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether :data:`CAPTURE_CONTENT_ENV` asks for message content."""
    value = (environ if environ is not None else os.environ).get(CAPTURE_CONTENT_ENV, "")
    return value.strip().lower() in _CONTENT_ON


def redacted_record(record: TraceRecord, redactor: Redactor) -> TraceRecord:
    """``record`` with every secret the run's ``redactor`` knows replaced (a copy).

    Records in memory are not redacted (the files sink redacts what it writes): whatever
    leaves the process goes through the same pass as the files and the collector
    (:func:`~pytest_fluxloop.artifacts.writer.artifact_record`) first.
    """
    return TraceRecord.model_validate(artifact_record(record, redactor))


def agent_name(record: TraceRecord, target_spec: str | None) -> str:
    """The agent's name: its ``@fluxloop.agent`` span's (the first agent span the agent
    made), else the runner target's attribute (``agent:run`` -> ``run``), else ``agent``."""
    for obs in record.observations:
        if obs.type == "span_start" and obs.kind == "agent" and (obs.role or "agent") == "agent":
            return obs.name
    if target_spec:
        attr = target_spec.rpartition(":")[2].strip()
        if attr:
            return attr
    return "agent"


def case_span(
    record: TraceRecord,
    *,
    agent: str,
    experiment: str,
    content: bool = False,
    max_chars: int = 100_000,
) -> SpanPlan:
    """The span tree of one finished case (``record``, already redacted).

    Args:
        agent: ``gen_ai.agent.name`` (see :func:`agent_name`).
        experiment: the experiment name (``fluxloop.experiment``).
        content: export message content (see :func:`capture_content_from_env`).
        max_chars: each text in exported content is cut to this many characters.
    """
    return _CaseBuilder(record, agent, experiment, content, max_chars).build()


def walk(plan: SpanPlan) -> list[SpanPlan]:
    """Every span of the tree under ``plan`` (itself first), parents before children."""
    found: list[SpanPlan] = []
    stack = [plan]
    while stack:  # iterative: an agent's spans may nest deeper than Python's recursion limit
        span = stack.pop()
        found.append(span)
        stack.extend(reversed(span.children))
    return found


def count_spans(plan: SpanPlan) -> int:
    """How many spans the tree under ``plan`` has (itself included)."""
    return len(walk(plan))


# --------------------------------------------------------------------------- the tree


@dataclass
class _Node:
    """A span being assembled from the observations of one case."""

    key: str
    kind: str
    start_obs: Observation | None = None
    end_obs: Observation | None = None
    parent: str | None = None
    plan: SpanPlan | None = None

    @property
    def first(self) -> Observation:
        obs = self.start_obs or self.end_obs
        assert obs is not None
        return obs

    @property
    def role(self) -> str:
        return self.first.role or "agent"


class _CaseBuilder:
    """Builds the :class:`SpanPlan` tree of one record (see :func:`case_span`)."""

    def __init__(
        self, record: TraceRecord, agent: str, experiment: str, content: bool, max_chars: int
    ) -> None:
        self.record = record
        self.agent = agent
        self.experiment = experiment
        self.content = content
        self.max_chars = max_chars
        self.nodes: dict[str, _Node] = {}
        self.points: list[Observation] = []
        self.case_end = _ns(record.completed_at)

    def build(self) -> SpanPlan:
        root = self._case()
        self._collect()
        for node in self.nodes.values():
            node.plan = self._span(node)
        self._link(root)
        for obs in self.points:
            parent = self.nodes.get(obs.parent_id or "")
            target = parent.plan if parent is not None and parent.plan is not None else root
            target.events.append(self._event(obs))
        for node in self.nodes.values():
            if node.kind == "turn" and node.plan is not None:
                _put_usage_sums(node.plan)
        root.events.extend(self._evaluation_events())
        return root

    # ---------------------------------------------------------------- observations

    def _collect(self) -> None:
        """Group the observations into nodes (spans) and points (events).

        A supervisor's LLM calls are made outside the agent's spans (no parent); the ones
        started since the previous decision belong to the next ``supervisor_decision``,
        which is recorded once they are done.
        """
        adoptable: list[_Node] = []
        for index, obs in enumerate(self.record.observations):
            kind = obs.type
            if kind in ("span_start", "span_end") and obs.observation_id:
                node = self.nodes.get(obs.observation_id)
                if node is None:
                    node = _Node(
                        key=obs.observation_id,
                        kind=obs.kind or str(obs.metadata.get("kind") or "span"),
                        parent=obs.parent_id,
                    )
                    self.nodes[node.key] = node
                    if obs.role == "supervisor" and obs.parent_id is None:
                        adoptable.append(node)
                if kind == "span_start" and node.start_obs is None:
                    node.start_obs = obs
                elif kind == "span_end" and node.end_obs is None:
                    node.end_obs = obs
            elif kind == "turn":
                key = obs.observation_id or f"turn-{index}"
                self.nodes[key] = _Node(key, "turn", end_obs=obs, parent=obs.parent_id)
            elif kind == SUPERVISOR_DECISION:
                key = f"{SUPERVISOR_DECISION}-{index}"
                self.nodes[key] = _Node(key, SUPERVISOR_DECISION, end_obs=obs)
                for node in adoptable:
                    node.parent = key
                adoptable.clear()
            else:
                self.points.append(obs)

    def _link(self, root: SpanPlan) -> None:
        """Attach every node's span to its parent's (the case span when the parent is
        unknown); a parent cycle (ids reused by a broken capture) is cut at the case."""
        children: dict[str | None, list[_Node]] = {}
        for node in self.nodes.values():  # in the order of their first observation
            if node.parent not in self.nodes or node.parent == node.key:
                node.parent = None
            children.setdefault(node.parent, []).append(node)
        reached: set[str] = set()

        def attach(top: list[_Node], plan: SpanPlan) -> None:
            stack = [(node, plan) for node in reversed(top)]
            while stack:  # iterative, like walk()
                node, parent_plan = stack.pop()
                if node.key in reached:
                    continue
                reached.add(node.key)
                assert node.plan is not None
                parent_plan.children.append(node.plan)
                kids = children.get(node.key, [])
                stack.extend((kid, node.plan) for kid in reversed(kids))

        attach(children.get(None, []), root)
        for node in self.nodes.values():
            if node.key not in reached:  # part of a cycle: hang it under the case
                attach([node], root)
        for plan in walk(root):
            plan.children.sort(key=lambda p: p.start_ns)  # stable: ties keep their order

    # ---------------------------------------------------------------- spans

    def _case(self) -> SpanPlan:
        record = self.record
        attrs: Attributes = {}
        _put(attrs, GEN_AI_OPERATION_NAME, INVOKE_AGENT)
        _put(attrs, GEN_AI_AGENT_NAME, self.agent)
        _put(attrs, GEN_AI_CONVERSATION_ID, record.trace_id)
        _put(attrs, GEN_AI_PROVIDER_NAME, self._agent_provider())
        _put(attrs, FLUXLOOP_ROLE, "agent")
        _put(attrs, FLUXLOOP_KIND, "case")
        _put(attrs, FLUXLOOP_EXPERIMENT, self.experiment)
        _put(attrs, FLUXLOOP_TRACE_ID, record.trace_id)
        _put(attrs, FLUXLOOP_CASE_ID, record.case_id)
        _put(attrs, FLUXLOOP_ITERATION, record.iteration)
        _put(attrs, FLUXLOOP_PERSONA, record.persona)
        _put(attrs, FLUXLOOP_STATUS, record.status)
        _put(attrs, FLUXLOOP_ATTEMPTS, record.attempts)
        _put(attrs, FLUXLOOP_SEED, record.seed)
        _put(attrs, FLUXLOOP_WORKER, record.worker)
        _put(attrs, FLUXLOOP_TEST_OUTCOME, record.test_outcome)
        if record.observations_dropped:
            _put(attrs, FLUXLOOP_OBSERVATIONS_DROPPED, record.observations_dropped)
        multi_turn = record.multi_turn
        if multi_turn is not None and multi_turn.enabled:
            _put(attrs, FLUXLOOP_TURN_COUNT, multi_turn.turn_count)
            _put(attrs, FLUXLOOP_TERMINATION_REASON, multi_turn.termination_reason)
        for role, counts in (record.token_usage or {}).items():
            if isinstance(counts, Mapping):
                for key in (*TOKEN_COUNT_KEYS, "calls", "calls_without_usage"):
                    _put(attrs, f"{FLUXLOOP_USAGE}.{role}.{key}", _int(counts.get(key)))
        evaluation = record.evaluation
        if evaluation is not None:
            _put(attrs, FLUXLOOP_EVALUATION_VERDICT, evaluation.verdict)
            _put(attrs, FLUXLOOP_EVALUATION_SCORE, _float(evaluation.score))
            _put(attrs, FLUXLOOP_EVALUATION_THRESHOLD, _float(evaluation.threshold))
        error = None
        if record.status != "success":
            info = record.error
            _put(attrs, ERROR_TYPE, info.type if info is not None else record.status)
            if info is not None:
                _put(attrs, FLUXLOOP_ERROR_KIND, info.kind)
            error = f"{info.type}: {info.message}" if info is not None else record.status
            error = _clip(error, MAX_STATUS_CHARS)
        if self.content:
            _put(attrs, GEN_AI_INPUT_MESSAGES, self._json([_message("user", record.input)]))
            if record.output is not None:
                reply = _message("assistant", record.output, finish_reason="stop")
                _put(attrs, GEN_AI_OUTPUT_MESSAGES, self._json([reply]))
        start = _ns(record.started_at)
        return SpanPlan(
            name=f"{INVOKE_AGENT} {self.agent}",
            start_ns=start,
            end_ns=max(start, self.case_end),
            attributes=attrs,
            error=error,
        )

    def _agent_provider(self) -> str | None:
        """The provider of the agent's LLM calls when they all have the same one."""
        providers = {
            _provider(obs.metadata.get("provider"))
            for obs in self.record.observations
            if obs.type == "span_start" and obs.kind == "generation" and obs.role == "agent"
        }
        providers.discard(None)
        return providers.pop() if len(providers) == 1 else None

    def _span(self, node: _Node) -> SpanPlan:
        start, end, incomplete = self._times(node)
        attrs: Attributes = {FLUXLOOP_ROLE: node.role, FLUXLOOP_KIND: node.kind}
        if incomplete:
            attrs[FLUXLOOP_SPAN_INCOMPLETE] = True
        plan = SpanPlan(name=node.first.name, start_ns=start, end_ns=end, attributes=attrs)
        if node.kind == "generation":
            self._generation(node, plan)
        elif node.kind == "tool":
            self._tool(node, plan)
        elif node.kind == "turn":
            self._turn(node, plan)
        elif node.kind == SUPERVISOR_DECISION:
            self._decision(node, plan)
        error = node.end_obs.error if node.end_obs is not None else None
        if error:
            plan.attributes[ERROR_TYPE] = _error_type(error)
            plan.error = _clip(error, MAX_STATUS_CHARS)
        return plan

    def _times(self, node: _Node) -> tuple[int, int, bool]:
        """Start and end (ns) of a node's span, and whether its end is missing."""
        end_obs = node.end_obs
        end = _ns(end_obs.timestamp) if end_obs is not None else self.case_end
        if node.start_obs is not None:
            start = _ns(node.start_obs.timestamp)
        elif end_obs is not None and end_obs.duration_ms:
            # Recorded when done (turns, decisions) or its start was dropped.
            start = end - int(end_obs.duration_ms * 1_000_000)
        else:
            start = end
        return start, max(start, end), end_obs is None

    def _generation(self, node: _Node, plan: SpanPlan) -> None:
        start = node.start_obs.metadata if node.start_obs is not None else {}
        end = node.end_obs.metadata if node.end_obs is not None else {}
        operation = _operation(start.get("operation") or end.get("operation"))
        request_model = _text(start.get("model")) or _text(end.get("model"))
        attrs = plan.attributes
        plan.name = f"{operation} {request_model}" if request_model else operation
        plan.client = True
        _put(attrs, GEN_AI_OPERATION_NAME, operation)
        _put(attrs, GEN_AI_PROVIDER_NAME, _provider(start.get("provider") or end.get("provider")))
        _put(attrs, GEN_AI_REQUEST_MODEL, request_model)
        _put(attrs, GEN_AI_RESPONSE_MODEL, _text(end.get("model")))
        _put(attrs, GEN_AI_CONVERSATION_ID, self.record.trace_id)
        parameters = start.get("parameters")
        if isinstance(parameters, Mapping):
            _put_parameters(attrs, parameters)
        stream = start.get("stream", end.get("stream"))
        if isinstance(stream, bool):
            _put(attrs, GEN_AI_REQUEST_STREAM, stream)
        reasons = _finish_reasons(end.get("finish_reason"))
        if reasons:
            _put(attrs, GEN_AI_RESPONSE_FINISH_REASONS, reasons)
        ttft = _float(end.get("ttft_ms"))
        if ttft is not None:
            _put(attrs, GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttft / 1000)
        # The only place token counts go (see FLUXLOOP_USAGE): the call's own usage, as the
        # record's token_usage counts it (span_end metadata.usage of a generation).
        usage = end.get("usage")
        if isinstance(usage, Mapping):
            for key, name in _USAGE_ATTRIBUTES.items():
                _put(attrs, name, _int(usage.get(key)))
        _put(attrs, FLUXLOOP_GENERATION_STATUS, _text(end.get("status")))
        if self.content:
            self._generation_content(node, attrs, reasons)

    def _generation_content(self, node: _Node, attrs: Attributes, reasons: list[str]) -> None:
        request = node.start_obs.input if node.start_obs is not None else None
        if isinstance(request, Mapping):
            messages = _input_messages(request)
            if messages:
                _put(attrs, GEN_AI_INPUT_MESSAGES, self._json(messages))
            system = request.get("system", request.get("instructions"))
            if system is not None and system != "":
                _put(attrs, GEN_AI_SYSTEM_INSTRUCTIONS, self._json(_parts(system)))
        elif request is not None:
            _put(attrs, GEN_AI_INPUT_MESSAGES, self._json([_message("user", request)]))
        output = node.end_obs.output if node.end_obs is not None else None
        if output is not None:
            reply = _message("assistant", output, finish_reason=reasons[0] if reasons else None)
            _put(attrs, GEN_AI_OUTPUT_MESSAGES, self._json([reply]))

    def _tool(self, node: _Node, plan: SpanPlan) -> None:
        attrs = plan.attributes
        name = node.first.name
        plan.name = f"{EXECUTE_TOOL} {name}"
        _put(attrs, GEN_AI_OPERATION_NAME, EXECUTE_TOOL)
        _put(attrs, GEN_AI_TOOL_NAME, name)
        _put(attrs, GEN_AI_TOOL_TYPE, "function")
        start = node.start_obs.metadata if node.start_obs is not None else {}
        _put(attrs, GEN_AI_TOOL_DESCRIPTION, _text(start.get("description")))
        if self.content:
            arguments = node.start_obs.input if node.start_obs is not None else None
            if arguments is not None:
                _put(attrs, GEN_AI_TOOL_CALL_ARGUMENTS, self._json(arguments))
            result = node.end_obs.output if node.end_obs is not None else None
            if result is not None:
                _put(attrs, GEN_AI_TOOL_CALL_RESULT, self._json(result))

    def _turn(self, node: _Node, plan: SpanPlan) -> None:
        obs = node.first
        attrs = plan.attributes
        _put(attrs, FLUXLOOP_TURN, _int(obs.metadata.get("turn")))
        _put(attrs, GEN_AI_CONVERSATION_ID, self.record.trace_id)
        if self.content:
            if obs.input is not None:
                _put(attrs, GEN_AI_INPUT_MESSAGES, self._json([_message("user", obs.input)]))
            if obs.output is not None:
                reply = _message("assistant", obs.output, finish_reason="stop")
                _put(attrs, GEN_AI_OUTPUT_MESSAGES, self._json([reply]))

    def _decision(self, node: _Node, plan: SpanPlan) -> None:
        obs = node.first
        attrs = plan.attributes
        plan.name = SUPERVISOR_DECISION
        meta = obs.metadata
        _put(attrs, FLUXLOOP_TURN, _int(meta.get("turn")))
        _put(attrs, FLUXLOOP_SUPERVISOR_MODEL, _text(meta.get("model")))
        output = obs.output if isinstance(obs.output, Mapping) else {}
        _put(attrs, FLUXLOOP_SUPERVISOR_DECISION, _text(output.get("decision")))
        _put(attrs, FLUXLOOP_TERMINATION_REASON, _text(output.get("termination_reason")))
        usage = meta.get("usage")
        if isinstance(usage, Mapping):
            # The supervisor's own tally of its calls (there are none to sum with LLM capture
            # off): a parent total, under fluxloop.usage.
            sums = {
                "input_tokens": _int(usage.get("input_tokens", usage.get("prompt_tokens"))),
                "output_tokens": _int(usage.get("output_tokens", usage.get("completion_tokens"))),
                "total_tokens": _int(usage.get("total_tokens")),
            }
            for key, value in sums.items():
                _put(attrs, f"{FLUXLOOP_USAGE}.{key}", value)
        if self.content:
            message = output.get("next_user_message") or output.get("closing_user_message")
            _put(attrs, FLUXLOOP_SUPERVISOR_MESSAGE, self._clip_text(_text(message)))

    # ---------------------------------------------------------------- events

    def _event(self, obs: Observation) -> SpanEvent:
        attrs: Attributes = {
            FLUXLOOP_OBSERVATION_TYPE: obs.type,
            FLUXLOOP_ROLE: obs.role or "agent",
            FLUXLOOP_KIND: obs.kind or "event",
        }
        if obs.error:
            attrs[ERROR_TYPE] = _error_type(obs.error)
            attrs[FLUXLOOP_ERROR_MESSAGE] = _clip(obs.error, MAX_STATUS_CHARS)
        if self.content:
            for name, value in (
                (FLUXLOOP_INPUT, obs.input),
                (FLUXLOOP_OUTPUT, obs.output),
                (FLUXLOOP_METADATA, obs.metadata or None),
            ):
                if value is not None:
                    attrs[name] = self._json(value)
        return SpanEvent(obs.name, _ns(obs.timestamp), attrs)

    def _evaluation_events(self) -> list[SpanEvent]:
        evaluation = self.record.evaluation
        if evaluation is None:
            return []
        events = []
        for result in evaluation.evaluators:
            attrs: Attributes = {}
            _put(attrs, GEN_AI_EVALUATION_NAME, result.name)
            _put(attrs, GEN_AI_EVALUATION_SCORE_VALUE, _float(result.score))
            _put(attrs, GEN_AI_EVALUATION_SCORE_LABEL, result.status)
            if result.reason:
                _put(attrs, GEN_AI_EVALUATION_EXPLANATION, _clip(result.reason, self.max_chars))
            if result.status == "unscored":
                _put(attrs, ERROR_TYPE, result.unscored_reason or ERROR_TYPE_OTHER)
            _put(attrs, FLUXLOOP_EVALUATION_TYPE, result.type)
            _put(attrs, FLUXLOOP_EVALUATION_MODEL, result.model)
            _put(attrs, FLUXLOOP_ROLE, "judge" if result.type == "llm_judge" else "agent")
            events.append(SpanEvent(GEN_AI_EVALUATION_RESULT, self.case_end, attrs))
        return events

    # ---------------------------------------------------------------- content

    def _json(self, value: Any) -> str:
        """Content as a JSON string (the conventions' form on spans), texts cut."""
        return json.dumps(_cut_texts(to_jsonable(value), self.max_chars), ensure_ascii=False)

    def _clip_text(self, text: str | None) -> str | None:
        return _clip(text, self.max_chars) if text is not None else None


# --------------------------------------------------------------------------- helpers


def _ns(moment: datetime) -> int:
    """``moment`` as ns since the epoch (exact: no float rounding)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _put(attrs: Attributes, name: str, value: Any) -> None:
    """Set ``name`` unless ``value`` is None (OpenTelemetry attributes have no null)."""
    if value is None:
        return
    attrs[name] = value


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def _error_type(error: str) -> str:
    """The class of an error recorded as ``"Type: message"`` (``_OTHER`` if none shows)."""
    match = _ERROR_TYPE.match(error.strip())
    return match.group(1) if match else ERROR_TYPE_OTHER


def _provider(value: Any) -> str | None:
    name = _text(value)
    if name is None:
        return None
    return _PROVIDERS.get(name.lower(), name)


def _operation(value: Any) -> str:
    """``gen_ai.operation.name`` of a generation from its ``metadata.operation`` (a request
    path such as ``/v1/chat/completions``, or LangChain's ``chat`` / ``completion``)."""
    text = (_text(value) or "").lower().rstrip("/")
    if text.endswith("embeddings"):
        return EMBEDDINGS
    if text in ("completion", "llm") or (text.endswith("completions") and "chat" not in text):
        return TEXT_COMPLETION
    return CHAT


def _finish_reasons(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return []


def _put_parameters(attrs: Attributes, parameters: Mapping[str, Any]) -> None:
    """The request settings the conventions name (temperature, max_tokens ...)."""
    for key, name in _FLOAT_PARAMETERS.items():
        _put(attrs, name, _float(parameters.get(key)))
    for key, name in _INT_PARAMETERS.items():
        if name not in attrs:
            _put(attrs, name, _int(parameters.get(key)))
    stop = parameters.get("stop", parameters.get("stop_sequences"))
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and stop:
        _put(attrs, GEN_AI_REQUEST_STOP_SEQUENCES, [str(s) for s in stop])
    choices = _int(parameters.get("n"))
    if choices is not None and choices != 1:
        _put(attrs, GEN_AI_REQUEST_CHOICE_COUNT, choices)


def _put_usage_sums(turn: SpanPlan) -> None:
    """A turn's totals of its LLM calls (``fluxloop.usage.*``; never ``gen_ai.usage.*``)."""
    sums: dict[str, int] = {}
    for span in walk(turn)[1:]:
        for key in ("input_tokens", "output_tokens"):
            value = span.attributes.get(_USAGE_ATTRIBUTES[key])
            if isinstance(value, int) and _is_llm_call(span):
                sums[key] = sums.get(key, 0) + value
    for key, value in sums.items():
        turn.attributes[f"{FLUXLOOP_USAGE}.{key}"] = value


def _is_llm_call(span: SpanPlan) -> bool:
    return span.attributes.get(FLUXLOOP_KIND) == "generation"


# --- message content (the conventions' input/output message JSON schemas) -----------------


def _input_messages(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chat history of a request body's content keys (``messages``, ``input``,
    ``prompt``, ``prompts``), in the conventions' message form."""
    messages = request.get("messages")
    if isinstance(messages, list):
        return [_chat_message(m) for m in messages]
    given = request.get("input", request.get("prompt"))
    if isinstance(given, list) and all(isinstance(m, Mapping) and "role" in m for m in given):
        return [_chat_message(m) for m in given]
    if given is not None:
        return [_message("user", given)]
    prompts = request.get("prompts")
    if isinstance(prompts, list):
        return [_message("user", p) for p in prompts]
    return []


def _chat_message(message: Any) -> dict[str, Any]:
    """One provider message (``{role, content, tool_calls ...}``) in the conventions' form."""
    if not isinstance(message, Mapping):
        return _message("user", message)
    role = str(message.get("role") or "user")
    if role == "tool":
        part = {
            "type": "tool_call_response",
            "id": message.get("tool_call_id"),
            "response": message.get("content"),
        }
        return {"role": "tool", "parts": [part]}
    out = _message(role, message.get("content"))
    for call in message.get("tool_calls") or []:
        if isinstance(call, Mapping):
            function = call.get("function")
            if not isinstance(function, Mapping):
                function = {}
            out["parts"].append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
    return out


def _message(role: str, content: Any, *, finish_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": _parts(content)}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return message


def _parts(content: Any) -> list[dict[str, Any]]:
    """Message parts of a text, a list of content blocks, or any other value."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        return [_part(block) for block in content]
    return [_part(content)]


def _part(block: Any) -> dict[str, Any]:
    if isinstance(block, str):
        return {"type": "text", "content": block}
    if isinstance(block, Mapping):
        kind = str(block.get("type") or "")
        if kind in ("text", "input_text", "output_text") and isinstance(block.get("text"), str):
            return {"type": "text", "content": block["text"]}
        if kind in ("tool_use", "function_call"):
            return {
                "type": "tool_call",
                "id": block.get("id") or block.get("call_id"),
                "name": block.get("name"),
                "arguments": block.get("input", block.get("arguments")),
            }
        if kind == "tool_result":
            return {
                "type": "tool_call_response",
                "id": block.get("tool_use_id"),
                "response": block.get("content"),
            }
        return {**block, "type": kind or "generic"}
    return {"type": "generic", "content": block}


def _cut_texts(value: Any, limit: int) -> Any:
    """``value`` (JSON data) with every string longer than ``limit`` cut: the JSON stays
    valid, as the conventions ask of truncated content."""
    if isinstance(value, str):
        return _clip(value, limit)
    if isinstance(value, list):
        return [_cut_texts(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: _cut_texts(v, limit) for k, v in value.items()}
    return value
