"""``import fluxloop``: the FluxLoop SDK names from the product documents, unchanged.

A thin facade so agents instrumented as the FluxLoop documents show (``@fluxloop.agent()``)
run under pytest-fluxloop without edits. It also provides every name of the earlier FluxLoop
SDK (the PyPI distribution ``fluxloop`` 0.1.x: ``prompt``, ``instrument``, ``configure``,
``get_config``, ``reset_config``, ``load_env``, ``record_call_args``, ...), so that SDK need
not be installed: it would overwrite this very file (see :mod:`pytest_fluxloop.distributions`).

Production code imports this module, so it loads only the SDK (:mod:`pytest_fluxloop.sdk`);
the harness names (``Experiment``, ``load_config``, ...) and the thread helpers
(``copy_context``, ``ContextExecutor``, ``submit_with_context``) are imported on first use.

PYTEST_DONT_REWRITE: the CLI imports this package before pytest starts, and the plugin
needs no assertion rewriting.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_fluxloop.sdk import (
    FluxLoopClient,
    Instrumentation,
    ObservationType,
    SDKConfig,
    agent,
    configure,
    current_trace,
    disable_recording,
    enable_recording,
    event,
    get_config,
    instrument,
    load_env,
    log_event,
    prompt,
    record_call_args,
    reset_config,
    set_recording_options,
    tool,
    trace,
)

if TYPE_CHECKING:
    from pytest_fluxloop.config import load_config
    from pytest_fluxloop.plan import Case
    from pytest_fluxloop.records import ExperimentSummary, Observation, TraceRecord
    from pytest_fluxloop.run import Experiment
    from pytest_fluxloop.sdk.propagation import (
        ContextExecutor,
        copy_context,
        submit_with_context,
    )

__pytest_fluxloop__ = True
"""Marks this ``fluxloop`` package as pytest-fluxloop's (another distribution's ``fluxloop``
has no such attribute; :func:`pytest_fluxloop.distributions.foreign_fluxloop_message`)."""

# Loaded lazily: name -> module that defines it. The harness names, and the SDK's thread
# helpers (they import concurrent.futures, which an agent that never uses them need not load).
_LAZY = {
    "Case": "pytest_fluxloop.plan",
    "ContextExecutor": "pytest_fluxloop.sdk.propagation",
    "Experiment": "pytest_fluxloop.run",
    "ExperimentSummary": "pytest_fluxloop.records",
    "Observation": "pytest_fluxloop.records",
    "TraceRecord": "pytest_fluxloop.records",
    "copy_context": "pytest_fluxloop.sdk.propagation",
    "load_config": "pytest_fluxloop.config",
    "submit_with_context": "pytest_fluxloop.sdk.propagation",
}

__all__ = [
    "Case",
    "ContextExecutor",
    "Experiment",
    "ExperimentSummary",
    "FluxLoopClient",
    "Instrumentation",
    "Observation",
    "ObservationType",
    "SDKConfig",
    "TraceRecord",
    "agent",
    "configure",
    "copy_context",
    "current_trace",
    "disable_recording",
    "enable_recording",
    "event",
    "get_config",
    "instrument",
    "load_config",
    "load_env",
    "log_event",
    "prompt",
    "record_call_args",
    "reset_config",
    "set_recording_options",
    "submit_with_context",
    "tool",
    "trace",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fluxloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
