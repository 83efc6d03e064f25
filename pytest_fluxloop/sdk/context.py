"""The trace being recorded right now, per case, carried by a ContextVar.

A ContextVar (not a global or a thread-local) because cases run on worker threads and on
event loops: each case's context is copied into whatever runs it, so observations from
concurrent cases never mix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from ..records import Observation

MAX_OBSERVATIONS = 10_000
"""Per trace; past this, observations are counted but dropped (memory stays bounded)."""


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

    def add(self, type: str, name: str, **fields: Any) -> Observation | None:
        """Append an observation; ``parent_id`` defaults to the innermost open span."""
        if len(self.observations) >= MAX_OBSERVATIONS:
            self.dropped += 1
            return None
        fields.setdefault("parent_id", current_span_id.get())
        obs = Observation(trace_id=self.trace_id, type=type, name=name, **fields)
        self.observations.append(obs)
        return obs

    def new_span_id(self) -> str:
        """A fresh observation id."""
        return uuid.uuid4().hex[:16]


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
def trace_context(trace_id: str) -> Iterator[TraceContext]:
    """Make a new TraceContext current for the duration of the block."""
    ctx = TraceContext(trace_id)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
