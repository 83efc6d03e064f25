"""Tracing SDK: decorators and the per-case trace context."""

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
