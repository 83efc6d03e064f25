"""The trace being recorded right now, per case, carried by a ContextVar.

A ContextVar (not a global or a thread-local) because cases run on worker threads and on
event loops: each case's context is copied into whatever runs it, so observations from
concurrent cases never mix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from ..records import OBSERVATION_KINDS, Observation

MAX_OBSERVATIONS = 10_000
"""Per trace by default; past the limit, observations are counted but dropped (memory stays
bounded) and the trace says how many (``observations_dropped``)."""

_SPAN_TYPES = frozenset({"span_start", "span_end"})
_KINDS = frozenset(OBSERVATION_KINDS)


@dataclass(frozen=True)
class CaptureSettings:
    """What a trace captures beyond the decorated spans (``capture:`` in simulation.yaml).

    Attributes:
        llm: record the ``openai``/``anthropic`` calls made while the trace is current.
        content: keep messages and outputs of captured calls (False: model, parameters,
            usage and timings only).
        langchain: attach the LangChain/LangGraph callback handler to runnables invoked
            while the trace is current.
        langchain_hidden: also record LangChain runs tagged hidden (``langsmith:hidden``).
        max_observations: per-trace limit (see :data:`MAX_OBSERVATIONS`).
    """

    llm: bool = True
    content: bool = True
    langchain: bool = True
    langchain_hidden: bool = False
    max_observations: int = MAX_OBSERVATIONS


DEFAULT_CAPTURE = CaptureSettings()

current_role: ContextVar[str] = ContextVar("fluxloop_role", default="agent")
"""Who is acting in this context: ``agent`` (the default), or the harness's ``supervisor``,
``judge`` or ``generator`` while their LLM calls run. Observations record it as ``role``."""


current_turn: ContextVar[int] = ContextVar("fluxloop_turn", default=0)
"""The conversation turn in progress: the agent's calls while it answers user message N and
the supervisor's calls deciding after reply N are turn N; 0 outside a conversation (a
single-turn case, the judges). LLM-call cassettes key their recordings by it."""


framework_generation: ContextVar[str | None] = ContextVar("fluxloop_framework_llm", default=None)
"""Truthy (the framework's name) while a framework integration (LangChain) has a model run
open in this context: it records the call itself, so the provider capture below it records
nothing (one call, one generation). Test it for truth, not for None: a value may turn false
once its run has ended, because an async framework may end the run from another task,
where the caller's context cannot be reset."""


@contextmanager
def acting_as(role: str) -> Iterator[None]:
    """Make ``role`` the :data:`current_role` for the block (the harness's LLM calls)."""
    token = current_role.set(role)
    try:
        yield
    finally:
        current_role.reset(token)


def kind_of(type: str, metadata: dict[str, Any] | None) -> str:
    """The ``kind`` of an observation: a span's ``metadata.kind`` when it is one of
    :data:`~pytest_fluxloop.records.OBSERVATION_KINDS` (other span kinds, such as the earlier
    SDK's ``trace`` and ``evaluation``, are ``span``); anything that is not a span is an
    ``event``."""
    if type in _SPAN_TYPES:
        kind = metadata.get("kind") if metadata else None
        return kind if kind in _KINDS else "span"
    return "event"


@dataclass
class TraceContext:
    """Collects the observations of one trace.

    ``experiment`` is True for a FluxLoop case's trace (the default) and False for the trace
    a standalone :func:`~pytest_fluxloop.sdk.instrument` block opens in ordinary code.
    Argument recording is off inside an experiment's trace (a case replaying recorded
    arguments would otherwise record its replays) and goes on inside a standalone one.
    """

    trace_id: str
    observations: list[Observation] = field(default_factory=list)
    dropped: int = 0
    experiment: bool = True
    capture: CaptureSettings = DEFAULT_CAPTURE
    open_spans: dict[str, Callable[[], None]] = field(default_factory=dict)
    span_kinds: dict[str, str] = field(default_factory=dict)
    """The kind of each open span by id: its ``span_end`` has the same kind."""
    """Spans that can outlive the code that opened them (a stream nobody finished reading),
    by id, each with the function that ends it as abandoned; see :meth:`close_open_spans`."""

    def add(
        self,
        type: str,
        name: str,
        *,
        kind: str | None = None,
        role: str | None = None,
        **fields: Any,
    ) -> Observation | None:
        """Append an observation; ``parent_id`` defaults to the innermost open span, ``kind``
        to :func:`kind_of` its type and metadata, ``role`` to :data:`current_role`."""
        if len(self.observations) >= self.capture.max_observations:
            self.dropped += 1
            return None
        fields.setdefault("parent_id", current_span_id.get())
        span_id = fields.get("observation_id")
        if kind is None and type == "span_end" and span_id is not None:
            kind = self.span_kinds.pop(span_id, None)
        kind = kind or kind_of(type, fields.get("metadata"))
        if type == "span_start" and span_id is not None:
            self.span_kinds[span_id] = kind
        obs = Observation(
            trace_id=self.trace_id,
            type=type,
            name=name,
            kind=kind,
            role=role or current_role.get(),
            **fields,
        )
        self.observations.append(obs)
        return obs

    def close_open_spans(self) -> int:
        """End every span still open as abandoned (the case is over); returns how many."""
        closing = list(self.open_spans.values())
        for end in closing:
            end()
        return len(closing)

    def new_span_id(self) -> str:
        """A fresh observation id."""
        return os.urandom(8).hex()  # 64 random bits, as uuid4().hex[:16] was, 5x cheaper


_current: ContextVar[TraceContext | None] = ContextVar("fluxloop_trace", default=None)

current_span_id: ContextVar[str | None] = ContextVar("fluxloop_span", default=None)
"""The innermost open span. A ContextVar, so concurrent asyncio tasks each see their own."""


def current_trace() -> TraceContext | None:
    """The trace being recorded in this context, or None outside a FluxLoop case."""
    return _current.get()


def enter_trace(ctx: TraceContext) -> tuple[Token[TraceContext | None], Token[str | None]]:
    """Make ``ctx`` current, with no open span; undo with :func:`exit_trace` (same context)."""
    return _current.set(ctx), current_span_id.set(None)


def exit_trace(tokens: tuple[Token[TraceContext | None], Token[str | None]]) -> None:
    """Restore the trace and the span that were current before :func:`enter_trace`."""
    trace_token, span_token = tokens
    current_span_id.reset(span_token)
    _current.reset(trace_token)


@contextmanager
def trace_context(
    trace_id: str, capture: CaptureSettings = DEFAULT_CAPTURE
) -> Iterator[TraceContext]:
    """Make a new TraceContext current for the duration of the block."""
    ctx = TraceContext(trace_id, capture=capture)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
