"""The engine: resolve the target, bind arguments, run cases. It never imports pytest."""

from __future__ import annotations

from .executor import CaseExecutor, CaseResult, RunSettings
from .target import Target, Workspace, resolve_target

__all__ = [
    "CaseExecutor",
    "CaseResult",
    "RunSettings",
    "Target",
    "Workspace",
    "resolve_target",
]
