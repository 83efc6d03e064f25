"""The engine: resolve the target, bind arguments, drive the agent through a case (single
turn or a conversation), under a deadline and retries, and build its record.

No pytest and no files here: the pytest adapter, ``Experiment.run`` and the run recorder
sit above it.
"""

from __future__ import annotations

from .drivers import Driver, DriverOutcome, SingleTurnDriver
from .executor import CaseExecutor, CaseResult, RunSettings
from .target import Target, TargetOptions, Workspace, resolve_target

__all__ = [
    "CaseExecutor",
    "CaseResult",
    "Driver",
    "DriverOutcome",
    "RunSettings",
    "SingleTurnDriver",
    "Target",
    "TargetOptions",
    "Workspace",
    "resolve_target",
]
