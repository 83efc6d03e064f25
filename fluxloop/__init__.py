"""``import fluxloop``: the FluxLoop SDK names from the product documents, unchanged.

A thin facade so agents instrumented as the FluxLoop documents show (``@fluxloop.agent()``)
run under pytest-fluxloop without edits. Production code imports this module, so it loads
only the SDK (:mod:`pytest_fluxloop.sdk`); the harness names (``Experiment``,
``load_config``, ...) are imported on first use.

PYTEST_DONT_REWRITE: the CLI imports this package before pytest starts, and the plugin
needs no assertion rewriting.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_fluxloop.sdk import agent, current_trace, event, tool, trace

if TYPE_CHECKING:
    from pytest_fluxloop.config import load_config
    from pytest_fluxloop.plan import Case
    from pytest_fluxloop.records import ExperimentSummary, Observation, TraceRecord
    from pytest_fluxloop.run import Experiment

# Harness names, loaded lazily: name -> module that defines it.
_LAZY = {
    "Case": "pytest_fluxloop.plan",
    "Experiment": "pytest_fluxloop.run",
    "ExperimentSummary": "pytest_fluxloop.records",
    "Observation": "pytest_fluxloop.records",
    "TraceRecord": "pytest_fluxloop.records",
    "load_config": "pytest_fluxloop.config",
}

__all__ = [
    "Case",
    "Experiment",
    "ExperimentSummary",
    "Observation",
    "TraceRecord",
    "agent",
    "current_trace",
    "event",
    "load_config",
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
