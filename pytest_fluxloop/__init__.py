"""pytest-fluxloop: simulate users talking to AI agents as pytest tests.

Public API (imported lazily, so loading the pytest plugin stays cheap)::

    from pytest_fluxloop import agent, trace, tool, event      # instrumentation SDK
    from pytest_fluxloop import Experiment, load_config        # run from plain Python

PYTEST_DONT_REWRITE: the CLI imports this package before pytest starts, and the plugin
needs no assertion rewriting.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import LoadedConfig, Overrides, load_config
    from .errors import ConfigError, FluxloopError, TargetError
    from .plan import Case, ExperimentPlan
    from .plugin.marker import FluxloopResult
    from .records import ExperimentSummary, Observation, TraceRecord
    from .run import Experiment
    from .sdk import agent, current_trace, event, tool, trace

_EXPORTS = {
    "agent": "sdk",
    "trace": "sdk",
    "tool": "sdk",
    "event": "sdk",
    "current_trace": "sdk",
    "Experiment": "run",
    "load_config": "config",
    "LoadedConfig": "config",
    "Overrides": "config",
    "Case": "plan",
    "ExperimentPlan": "plan",
    "TraceRecord": "records",
    "Observation": "records",
    "ExperimentSummary": "records",
    "FluxloopResult": "plugin.marker",
    "ConfigError": "errors",
    "TargetError": "errors",
    "FluxloopError": "errors",
}

__all__ = [
    "Case",
    "ConfigError",
    "Experiment",
    "ExperimentPlan",
    "ExperimentSummary",
    "FluxloopError",
    "FluxloopResult",
    "LoadedConfig",
    "Observation",
    "Overrides",
    "TargetError",
    "TraceRecord",
    "agent",
    "current_trace",
    "event",
    "load_config",
    "tool",
    "trace",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_fluxloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
