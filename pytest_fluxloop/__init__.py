"""pytest-fluxloop: simulate users talking to AI agents as pytest tests.

Public API (imported lazily, so loading the pytest plugin stays cheap)::

    from pytest_fluxloop import agent, trace, tool, prompt, log_event, instrument  # SDK
    from pytest_fluxloop import copy_context, ContextExecutor, FluxLoopClient     # SDK
    from pytest_fluxloop import configure, load_env, record_call_args             # settings
    from pytest_fluxloop import Experiment, load_config                           # run from Python

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
    from .plugin.legacy_run import FluxloopRunResult
    from .plugin.marker import FluxloopResult, assert_eval
    from .records import CaseEvaluation, ExperimentSummary, Observation, TraceRecord
    from .run import Experiment
    from .sdk import (
        ContextExecutor,
        FluxLoopClient,
        Instrumentation,
        ObservationType,
        SDKConfig,
        agent,
        configure,
        copy_context,
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
        submit_with_context,
        tool,
        trace,
    )

_EXPORTS = {
    "agent": "sdk",
    "trace": "sdk",
    "tool": "sdk",
    "event": "sdk",
    "log_event": "sdk",
    "copy_context": "sdk",
    "submit_with_context": "sdk",
    "ContextExecutor": "sdk",
    "FluxLoopClient": "sdk",
    "current_trace": "sdk",
    "prompt": "sdk",
    "instrument": "sdk",
    "Instrumentation": "sdk",
    "ObservationType": "sdk",
    "SDKConfig": "sdk",
    "configure": "sdk",
    "get_config": "sdk",
    "reset_config": "sdk",
    "load_env": "sdk",
    "record_call_args": "sdk",
    "enable_recording": "sdk",
    "disable_recording": "sdk",
    "set_recording_options": "sdk",
    "Experiment": "run",
    "assert_eval": "plugin.marker",
    "load_config": "config",
    "LoadedConfig": "config",
    "Overrides": "config",
    "Case": "plan",
    "ExperimentPlan": "plan",
    "TraceRecord": "records",
    "Observation": "records",
    "CaseEvaluation": "records",
    "ExperimentSummary": "records",
    "FluxloopResult": "plugin.marker",
    "FluxloopRunResult": "plugin.legacy_run",
    "ConfigError": "errors",
    "TargetError": "errors",
    "FluxloopError": "errors",
}

__all__ = [
    "Case",
    "CaseEvaluation",
    "ConfigError",
    "ContextExecutor",
    "Experiment",
    "ExperimentPlan",
    "ExperimentSummary",
    "FluxLoopClient",
    "FluxloopError",
    "FluxloopResult",
    "FluxloopRunResult",
    "Instrumentation",
    "LoadedConfig",
    "Observation",
    "ObservationType",
    "Overrides",
    "SDKConfig",
    "TargetError",
    "TraceRecord",
    "agent",
    "assert_eval",
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
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_fluxloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
