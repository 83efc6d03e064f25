"""Typed records that flow from the engine to the sinks.

``TraceRecord`` is one finished case (one line of ``traces.jsonl``); ``Observation`` is one
event inside it (one line of ``observations.jsonl``); ``ExperimentSummary`` is
``summary.json``. Field names are the ones FluxLoop users' tools already read (``trace_id``,
``iteration``, ``persona``, ``multi_turn``, ``conversation_state`` ...); extra fields
(``status``, ``error``, ``attempts`` ...) are additions, never renames.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

TraceStatus = Literal["success", "error", "timeout", "crashed", "supervisor_error"]
"""How a case ended. Only ``success`` counts as successful."""

ErrorKind = Literal["agent", "timeout", "infrastructure", "supervisor"]
"""Who is to blame: the agent under test, the clock, the harness/host, or the simulator."""

SummaryStatus = Literal["running", "complete", "incomplete", "interrupted", "failed"]

OBSERVATION_KINDS = ("agent", "span", "tool", "generation", "event", "chain", "retriever")
"""What an observation is about (``Observation.kind``): an agent entry point, any other span,
a tool call, an LLM call, a point event, a framework step (a LangChain chain, a LangGraph
node) or a retrieval."""

ROLES = ("agent", "supervisor", "judge", "generator")
"""Who made an observation (``Observation.role``): the agent under test, or one of the
harness's own LLM roles, whose calls are never counted as the agent's."""

TOKEN_COUNT_KEYS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
)
"""The token counts of one LLM call (``metadata.usage`` of a generation's ``span_end``) and of
each role in ``TraceRecord.token_usage``. A count the provider did not send is ``null``."""


def utcnow() -> datetime:
    """Timezone-aware current UTC time (all artifact timestamps are UTC)."""
    return datetime.now(timezone.utc)


_Model = TypeVar("_Model", bound=BaseModel)


def unvalidated(
    model: type[_Model], values: dict[str, Any], fields_set: set[str] | None = None
) -> _Model:
    """An instance of ``model`` holding ``values`` (every one of its fields), not validated.

    What ``model.model_construct(_fields_set, **values)`` makes, without its loop over the
    model's fields looking for defaults: for the models made once per case from values that
    are typed by construction (the planned cases, the executor's records), where that loop
    or a validation cost more than everything else that builds them. ``fields_set`` may be
    shared by many instances (frozen models never change it); default: ``set(values)``.
    """
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(
        instance, "__pydantic_fields_set__", set(values) if fields_set is None else fields_set
    )
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def new_trace_id() -> str:
    """A new trace id: a random version-4 UUID as 32 hex digits, as ``uuid.uuid4().hex``
    gives, without building a UUID object (a third of the cost; made for every case)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


class ErrorInfo(BaseModel):
    """A failure captured in a trace: what was raised, where, and who is to blame."""

    model_config = ConfigDict(extra="forbid")

    kind: ErrorKind = "agent"
    type: str
    message: str
    traceback: str | None = None


class TruncationInfo(BaseModel):
    """What a field cut to ``artifact_field_max_chars`` held in full (``<field>_truncated``).

    For a text value, its length and the sha256 of its UTF-8 bytes; for any other value, the
    same of its compact JSON text (which is also what the cut field then holds a prefix of).
    ``traces.jsonl`` keeps the record's full ``input`` and ``output``.
    """

    model_config = ConfigDict(extra="forbid")

    length: int = Field(description="Characters in the full value (as text).")
    sha256: str = Field(description="Hex sha256 of the full value's UTF-8 text.")


class Observation(BaseModel):
    """One event inside a trace (span start/end, LLM call, tool call, custom event).

    In the artifact files, ``input``, ``output`` and ``error`` longer than the run's
    ``artifact_field_max_chars`` are cut, with ``<field>_truncated`` next to them.
    """

    model_config = ConfigDict(extra="forbid")

    trace_id: str
    type: str = Field(description="span_start | span_end | event | error | llm_call | tool_call")
    timestamp: datetime = Field(default_factory=utcnow)
    name: str
    observation_id: str | None = None
    parent_id: str | None = None
    input: Any = None
    output: Any = None
    error: str | None = None
    duration_ms: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    kind: str | None = Field(
        default=None,
        description="agent | span | tool | generation | event | chain | retriever "
        "(null on lines written before kinds existed).",
    )
    role: str | None = Field(
        default=None,
        description="Who made it: agent | supervisor | judge | generator.",
    )
    input_truncated: TruncationInfo | None = None
    output_truncated: TruncationInfo | None = None
    error_truncated: TruncationInfo | None = None


class MultiTurnInfo(BaseModel):
    """The ``multi_turn`` block of a trace: a conversation or not, how long, why it ended."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool
    turn_count: int = 0
    termination_reason: str | None = None


EvaluationStatus = Literal["passed", "failed", "unscored", "skipped"]
"""An evaluator's or a case's evaluation outcome. ``unscored``: no verdict could be given (a
judge's answer could not be parsed, was refused or cut off, timed out, the budget ran out);
never a failure of the agent. ``skipped``: not evaluated (not sampled, filtered out, the agent
did not answer)."""

EVALUATOR_TYPES = ("rule_based", "llm_judge")


class RuleResult(BaseModel):
    """One rule of a ``rule_based`` evaluator, checked on one trace."""

    check: str
    passed: bool | None = Field(
        description="None: the rule does not apply to this trace (no expected value, no "
        "token counts reported): left out of the evaluator's score, never counted as 0."
    )
    score: float | None = Field(default=None, description="0..1 (similarity: the ratio).")
    reason: str = ""
    weight: float = 1.0


class EvaluatorResult(BaseModel):
    """What one evaluator said about one trace."""

    name: str
    type: str = Field(description="rule_based | llm_judge")
    status: EvaluationStatus
    score: float | None = Field(default=None, description="0..1; null unless scored.")
    raw_score: float | None = Field(
        default=None, description="A judge's score on its own scale (1..max_score)."
    )
    max_score: float | None = None
    weight: float = 1.0
    reason: str = ""
    unscored_reason: str | None = Field(
        default=None,
        description="Why there is no score: invalid_output, truncated, refused, timeout, "
        "rate_limited, server_error, connection, budget, error ...",
    )
    evidence: list[dict[str, Any]] = Field(
        default_factory=list, description="A judge's cited turns: [{turn, quote}]."
    )
    rules: list[RuleResult] = Field(default_factory=list)
    model: str | None = None
    cached: bool = Field(default=False, description="A judge verdict served from the cache.")
    llm_calls: int = 0


class CaseEvaluation(BaseModel):
    """The evaluation of one trace: every evaluator and the aggregated verdict."""

    verdict: EvaluationStatus
    score: float | None = None
    threshold: float | None = None
    method: str | None = None
    reason: str = ""
    evaluators: list[EvaluatorResult] = Field(default_factory=list)


class CassetteUse(BaseModel):
    """What one case did with its LLM-call cassette (``cassettes:``): calls replayed from
    it, recorded into it and missed (no recording matched), and the recorded interactions
    this run never asked for (``role/turn/index`` each; the agent changed)."""

    mode: str
    replayed: int = 0
    recorded: int = 0
    missed: int = 0
    unused: list[str] = Field(default_factory=list)
    unused_keys: list[str] = Field(
        default_factory=list,
        description="The match keys of the unused recordings, in the order of `unused` "
        "(what `fluxloop cassettes prune` removes).",
    )
    written: bool = False
    """The case's cassette file was (re)written at the end of the case."""


class TraceRecord(BaseModel):
    """One finished case: the complete record written to ``traces.jsonl``.

    ``success`` is true only when the agent returned normally; failed cases are records too
    (``success: false`` with ``status`` and ``error``).
    """

    model_config = ConfigDict(extra="forbid")

    trace_id: str
    case_id: str
    iteration: int
    persona: str | None = None
    persona_description: str | None = None
    input: str
    input_index: int = 0
    output: Any = None
    duration_ms: float
    success: bool
    status: TraceStatus
    error: ErrorInfo | None = None
    attempts: int = 1
    seed: int | None = None
    started_at: datetime
    completed_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    multi_turn: MultiTurnInfo | None = None
    conversation_state: dict[str, Any] | None = None
    token_usage: dict[str, Any] | None = Field(
        default=None,
        description="Token counts by role ({agent: {...}, supervisor: {...}}), each with "
        "input_tokens, output_tokens, cached_tokens, reasoning_tokens, total_tokens (null "
        "when no call of that role reported it), calls and calls_without_usage.",
    )
    observations: list[Observation] = Field(default_factory=list)
    observations_dropped: int = Field(
        default=0,
        description="Observations not kept because the trace reached its limit "
        "(capture.max_observations).",
    )
    test_outcome: Literal["passed", "failed", "skipped"] | None = Field(
        default=None, description="Outcome of the pytest item that ran this case."
    )
    worker: str | None = Field(default=None, description="xdist worker id, if any.")
    evaluation: CaseEvaluation | None = Field(
        default=None,
        description="evaluation.yaml's verdict on this trace (null when nothing evaluates).",
    )
    cassette: CassetteUse | None = Field(
        default=None,
        description="LLM-call cassette use of this case (null when cassettes are off).",
    )

    def summary_line(self) -> dict[str, Any]:
        """The ``trace_summary.jsonl`` projection of this record."""
        return summary_projection_json(
            self.model_dump(mode="json", include={*SUMMARY_KEYS, *SUMMARY_SOURCES})
        )


SUMMARY_KEYS = (
    "trace_id",
    "case_id",
    "iteration",
    "persona",
    "input",
    "output",
    "duration_ms",
    "success",
    "status",
    "attempts",
    "token_usage",
)
"""Keys of a trace copied into ``trace_summary.jsonl`` (plus :data:`SUMMARY_DERIVED_KEYS`)."""

SUMMARY_DERIVED_KEYS = (
    "error",
    "error_kind",
    "error_type",
    "conversation",
    "termination_reason",
    "evaluation",
)
"""Keys of a ``trace_summary.jsonl`` line computed from the trace, after :data:`SUMMARY_KEYS`:
the error's message and kind, the transcript in the earlier FluxLoop ``conversation`` shape
(:func:`conversation_entries`) and the multi-turn termination reason."""

SUMMARY_SOURCES = ("error", "multi_turn", "conversation_state", "evaluation")
"""Trace fields the derived keys are computed from (besides :data:`SUMMARY_KEYS`)."""


def summary_projection_json(data: dict[str, Any]) -> dict[str, Any]:
    """``trace_summary.jsonl`` line from a trace already in JSON form."""
    error = data.get("error")
    line = {key: data.get(key) for key in SUMMARY_KEYS}
    line["error"] = error.get("message") if isinstance(error, dict) else None
    line["error_kind"] = error.get("kind") if isinstance(error, dict) else None
    line["error_type"] = error.get("type") if isinstance(error, dict) else None
    line["conversation"] = conversation_entries(data)
    multi_turn = data.get("multi_turn")
    reason = multi_turn.get("termination_reason") if isinstance(multi_turn, dict) else None
    line["termination_reason"] = reason
    line["evaluation"] = compact_evaluation(data.get("evaluation"))
    return line


def compact_evaluation(evaluation: Any) -> dict[str, Any] | None:
    """The short form of a trace's ``evaluation`` (JSON form) on its ``trace_summary.jsonl``
    line: the verdict, the score and each evaluator's status and score; None without one."""
    if not isinstance(evaluation, dict):
        return None
    evaluators = evaluation.get("evaluators")
    return {
        "verdict": evaluation.get("verdict"),
        "score": evaluation.get("score"),
        "evaluators": {
            str(e.get("name")): _compact_evaluator(e)
            for e in evaluators or []
            if isinstance(e, dict)
        },
    }


def _compact_evaluator(result: dict[str, Any]) -> dict[str, Any]:
    # Why it is unscored and whether it came from the cache, only when so: a resumed run
    # counts them from these lines.
    short = {"status": result.get("status"), "score": result.get("score")}
    if result.get("unscored_reason"):
        short["unscored_reason"] = result["unscored_reason"]
    if result.get("cached"):
        short["cached"] = True
    return short


def conversation_entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The transcript of a trace (in JSON form) as the earlier FluxLoop ``conversation`` list.

    Each entry is ``{turn_index, role, content, source, metadata}`` (the earlier format; its
    report tools read ``turn_index``, ``metadata.persona`` and ``metadata.closing``); the
    supervisor's closing message also carries ``closing: true`` at the top. One
    ``turn_index`` is one user message and the agent's reply to it; the closing message,
    which the agent never sees, gets the next index.

    A multi-turn trace is read from ``conversation_state.turns``. A single-turn trace is its
    input and, when the agent answered (``status: success``), its output as text (JSON for a
    structured output, ``""`` for None).
    """
    persona = data.get("persona")
    multi_turn = data.get("multi_turn")
    state = data.get("conversation_state")
    turns = state.get("turns") if isinstance(state, dict) else None
    if (
        isinstance(multi_turn, dict)
        and multi_turn.get("enabled")
        and isinstance(state, dict)
        and isinstance(turns, list)
    ):
        closing_at = _closing_position(state, turns)
        entries: list[dict[str, Any]] = []
        index = 1
        seen_user = False
        for position, turn in enumerate(turns):
            if not isinstance(turn, dict):
                continue
            role = str(turn.get("role") or "user")
            if role == "user":
                source = "supervisor" if seen_user else "input"
                seen_user = True
            else:
                source = "agent"
            content = turn.get("content")
            entries.append(
                _entry(
                    index,
                    role,
                    "" if content is None else _as_text(content),
                    source,
                    persona,
                    closing=position == closing_at,
                )
            )
            if role != "user":
                index += 1
        return entries
    single = [_entry(1, "user", str(data.get("input") or ""), "input", persona)]
    if data.get("status") == "success":
        output = data.get("output")
        text = "" if output is None else _as_text(output)
        single.append(_entry(1, "assistant", text, "agent", persona))
    return single


def _entry(
    index: int, role: str, content: str, source: str, persona: Any, *, closing: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if role == "user" and persona is not None:
        metadata["persona"] = persona
    entry: dict[str, Any] = {
        "turn_index": index,
        "role": role,
        "content": content,
        "source": source,
    }
    if closing:
        # Top level (what a reader of the turns expects) and in metadata (where the
        # earlier FluxLoop report tools look for it).
        entry["closing"] = True
        metadata["closing"] = True
    entry["metadata"] = metadata
    return entry


def _closing_position(state: dict[str, Any], turns: list[Any]) -> int | None:
    """Index in ``turns`` of the supervisor's closing message, if the conversation has one.

    It is the last turn: a user message, marked ``closing: true`` by the conversation
    driver, or (as recorded today) equal to the ``closing_user_message`` of a last
    supervisor decision that terminated. A trailing user message without that decision is
    one the agent failed on, not a closing message.
    """
    if not turns or not isinstance(turns[-1], dict) or turns[-1].get("role") != "user":
        return None
    last = turns[-1]
    if last.get("closing") is True:
        return len(turns) - 1
    metadata = state.get("metadata")
    supervisor = metadata.get("supervisor") if isinstance(metadata, dict) else None
    decisions = supervisor.get("decisions") if isinstance(supervisor, dict) else None
    if not isinstance(decisions, list) or not decisions or not isinstance(decisions[-1], dict):
        return None
    decision = decisions[-1]
    closing = decision.get("closing_user_message")
    if decision.get("decision") == "terminate" and closing and closing == last.get("content"):
        return len(turns) - 1
    return None


TRUNCATED_FIELDS = ("input", "output", "error")
"""Fields of a ``trace_summary.jsonl`` line or an observation that are cut when too long."""

TRUNCATION_KEYS = tuple(f"{name}_truncated" for name in TRUNCATED_FIELDS)
"""Where a cut field's :class:`TruncationInfo` goes (absent when nothing was cut)."""


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def truncate_fields(data: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """``data`` (one JSON line's object, in JSON form) with each of :data:`TRUNCATED_FIELDS`
    longer than ``max_chars`` cut to its first ``max_chars`` characters (a non-text value
    becomes a prefix of its JSON text) and ``<field>_truncated: {length, sha256}`` added.
    The ``content`` of each entry of a ``conversation`` list (a ``trace_summary.jsonl`` line)
    is cut the same way, with ``content_truncated`` in that entry.

    Returns ``data`` itself when nothing is cut, else a shallow copy.
    """
    out = data
    for name in TRUNCATED_FIELDS:
        value = data.get(name)
        if value is None or (isinstance(value, str) and len(value) <= max_chars):
            continue
        text = _as_text(value)
        if len(text) <= max_chars:
            continue
        if out is data:
            out = dict(data)
        out[name] = text[:max_chars]
        out[f"{name}_truncated"] = _truncation(text)
    conversation = data.get("conversation")
    if isinstance(conversation, list):
        turns = [_cut_content(turn, max_chars) for turn in conversation]
        if any(new is not old for new, old in zip(turns, conversation, strict=True)):
            if out is data:
                out = dict(data)
            out["conversation"] = turns
    return out


def _truncation(text: str) -> dict[str, Any]:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return {"length": len(text), "sha256": digest}


def _cut_content(turn: Any, max_chars: int) -> Any:
    """A ``conversation`` entry with its ``content`` cut like a field (``content_truncated``)."""
    if not isinstance(turn, dict):
        return turn
    content = turn.get("content")
    if not isinstance(content, str) or len(content) <= max_chars:
        return turn
    return {**turn, "content": content[:max_chars], "content_truncated": _truncation(content)}


def summary_projection(data: dict[str, Any], error: ErrorInfo | None) -> dict[str, Any]:
    """``trace_summary.jsonl`` line from a trace's JSON data and its error."""
    return summary_projection_json(
        {**data, "error": error.model_dump(mode="json") if error else None}
    )


class ExperimentSummary(BaseModel):
    """``summary.json``: aggregate statistics of one experiment run."""

    model_config = ConfigDict(extra="forbid")

    experiment_name: str
    description: str = ""
    run_id: str
    status: SummaryStatus
    total_cases: int = Field(description="Cases selected to run in this session.")
    total_traces: int
    successful: int
    failed: int
    by_status: dict[str, int] = Field(default_factory=dict)
    by_error_kind: dict[str, int] = Field(default_factory=dict)
    avg_duration_ms: float
    started_at: datetime
    completed_at: datetime | None = None
    seed: int | None = None
    exit_code: int | None = None
    leaked_threads: int = Field(
        default=0,
        description="Agents still running after their timeout (threads or tasks left behind).",
    )
    pid: int | None = Field(
        default=None,
        description="Process id of the run that wrote this summary. A 'running' summary whose "
        "process is gone on this host is a run that died; finish it with --resume.",
    )
    host: str | None = Field(default=None, description="Host name of that process.")
    missing_cases: int = Field(
        default=0,
        description="Cases whose item reported a result in this session but whose record was "
        "never written (status 'incomplete' unless the run was already interrupted or "
        "failed). --resume runs them again.",
    )
    missing_case_ids: list[str] = Field(
        default_factory=list,
        description="The first of those case ids (sorted; at most 100, see missing_cases).",
    )
    token_usage: dict[str, Any] | None = Field(
        default=None,
        description="The run's token counts by role, summed over its traces (same shape as "
        "a trace's token_usage); null when no trace reported any.",
    )
    evaluation: dict[str, Any] | None = Field(
        default=None,
        description="Verdict counts, scores by evaluator and persona, reliability (pass@k, "
        "pass^k, Wilson interval, flaky cases) and gate results; null when the run had no "
        "traces.",
    )
    cassettes: dict[str, Any] | None = Field(
        default=None,
        description="LLM-call cassettes: mode, calls replayed / recorded / missed, cassette "
        "files written, and the recorded interactions never used (case id -> role/turn/index); "
        "null when cassettes are off.",
    )
    collector: dict[str, Any] | None = Field(
        default=None,
        description="Traces sent to the collector: batches and items sent, stored, "
        "duplicate, rejected and spooled (with the spool folder); null without a collector.",
    )
    otel: dict[str, Any] | None = Field(
        default=None,
        description="OpenTelemetry export: spans and traces exported and where to; null "
        "when the export is off.",
    )
    config_snapshot: dict[str, Any] = Field(default_factory=dict)
