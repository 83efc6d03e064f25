"""The SDK: production-safe instrumentation (``@agent``, ``@trace``, ``@tool``, ``event``)
and the per-case trace context they record into.

Production agents import it (through ``import fluxloop``), so it imports only the records
and the leaf helpers below it: outside a FluxLoop case every decorator calls straight through.
"""

from __future__ import annotations

from .context import TraceContext, current_trace, trace_context
from .decorators import agent, event, span, tool, trace

__all__ = [
    "TraceContext",
    "agent",
    "current_trace",
    "event",
    "span",
    "tool",
    "trace",
    "trace_context",
]
