"""The SDK: production-safe instrumentation (``@agent``, ``@trace``, ``@tool``, ``@prompt``,
``log_event``/``event``, ``instrument``), its settings (``configure`` ...), argument
recording, the per-case trace context they record into, the helpers that carry that context
into threads (``copy_context``, ``ContextExecutor``, ``submit_with_context``) and
``FluxLoopClient`` (traces of a running application, into files).

Production agents import it (through ``import fluxloop``), so it imports only the records
and the leaf helpers below it: outside a FluxLoop case every decorator calls straight
through. The names of the earlier FluxLoop SDK (PyPI ``fluxloop`` 0.1.x) are all here, so
agents written for it run unchanged.

The thread helpers (:mod:`~pytest_fluxloop.sdk.propagation`) are imported on first use: they
need :mod:`concurrent.futures`, which production agents that never use them should not load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import FluxLoopClient
from .context import TraceContext, current_trace, trace_context
from .decorators import (
    OBSERVATION_TYPES,
    ObservationType,
    agent,
    event,
    log_event,
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

if TYPE_CHECKING:
    from .propagation import ContextExecutor, copy_context, submit_with_context

_PROPAGATION = frozenset({"ContextExecutor", "copy_context", "submit_with_context"})

__all__ = [
    "OBSERVATION_TYPES",
    "ContextExecutor",
    "FluxLoopClient",
    "Instrumentation",
    "ObservationType",
    "SDKConfig",
    "TraceContext",
    "active_recording_file",
    "agent",
    "configure",
    "copy_context",
    "current_trace",
    "disable_recording",
    "enable_recording",
    "event",
    "get_config",
    "instrument",
    "load_env",
    "log_event",
    "prompt",
    "record_call_args",
    "reset_config",
    "set_recording_options",
    "span",
    "submit_with_context",
    "tool",
    "trace",
    "trace_context",
    "write_call_record",
]


def __getattr__(name: str) -> Any:
    if name not in _PROPAGATION:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import propagation

    value = getattr(propagation, name)
    globals()[name] = value
    return value
