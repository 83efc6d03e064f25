"""Configuration: pydantic models of every config file, and the one loader."""

from __future__ import annotations

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

__all__ = [
    "EvaluationConfig",
    "InputConfig",
    "LoadedConfig",
    "MultiTurnConfig",
    "Overrides",
    "ProjectConfig",
    "RunnerConfig",
    "SimulationConfig",
    "SupervisorConfig",
    "load_config",
    "project_root_for",
]
