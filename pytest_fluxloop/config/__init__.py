"""Configuration: pydantic models of every config file, the one loader, the overrides table.

The models and the loader import pydantic and PyYAML, so they load lazily on first use:
the CLI and the pytest plugin import ``config.overrides`` (the override table) at import
time, and ``import pytest_fluxloop.cli`` / an unused plugin must not pay for pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .overrides import OVERRIDES, OverrideSpec

if TYPE_CHECKING:
    from .loader import LoadedConfig, Overrides, load_config, project_root_for
    from .models import (
        EvaluationConfig,
        InputConfig,
        MultiTurnConfig,
        ProjectConfig,
        RunnerConfig,
        SimulationConfig,
        SupervisorConfig,
    )

# Public name -> submodule that defines it (imported on first access).
_LAZY = {
    "LoadedConfig": "loader",
    "Overrides": "loader",
    "load_config": "loader",
    "project_root_for": "loader",
    "EvaluationConfig": "models",
    "InputConfig": "models",
    "MultiTurnConfig": "models",
    "ProjectConfig": "models",
    "RunnerConfig": "models",
    "SimulationConfig": "models",
    "SupervisorConfig": "models",
}

__all__ = [
    "OVERRIDES",
    "EvaluationConfig",
    "InputConfig",
    "LoadedConfig",
    "MultiTurnConfig",
    "OverrideSpec",
    "Overrides",
    "ProjectConfig",
    "RunnerConfig",
    "SimulationConfig",
    "SupervisorConfig",
    "load_config",
    "project_root_for",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value
