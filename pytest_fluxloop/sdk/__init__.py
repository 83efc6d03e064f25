"""The SDK: production-safe instrumentation (``@agent``, ``@trace``, ``@tool``, ``@prompt``,
``event``, ``instrument``), its settings (``configure`` ...), argument recording, and the
per-case trace context they record into.

Production agents import it (through ``import fluxloop``), so it imports only the records
and the leaf helpers below it: outside a FluxLoop case every decorator calls straight
through. The names of the earlier FluxLoop SDK (PyPI ``fluxloop`` 0.1.x) are all here, so
agents written for it run unchanged.
"""

from __future__ import annotations

from .context import TraceContext, current_trace, trace_context
from .decorators import (
    OBSERVATION_TYPES,
    ObservationType,
    agent,
    event,
    prompt,
    span,
    tool,
    trace,
)
from .instrument import Instrumentation, instrument
from .recording import (
    active_recording_file,
    disable_recording,
    enable_recording,
    record_call_args,
    set_recording_options,
    write_call_record,
)
from .settings import SDKConfig, configure, get_config, load_env, reset_config

__all__ = [
    "OBSERVATION_TYPES",
    "Instrumentation",
    "ObservationType",
    "SDKConfig",
    "TraceContext",
    "active_recording_file",
    "agent",
    "configure",
    "current_trace",
    "disable_recording",
    "enable_recording",
    "event",
    "get_config",
    "instrument",
    "load_env",
    "prompt",
    "record_call_args",
    "reset_config",
    "set_recording_options",
    "span",
    "tool",
    "trace",
    "trace_context",
    "write_call_record",
]
