"""pytest-fluxloop's own hooks. Implement them in a conftest.py or a plugin.

Added to pytest's plugin manager with ``pluginmanager.add_hookspecs`` (as pytest-xdist does),
so pytest validates implementations and ``--help`` stays clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..config.models import SupervisorConfig
    from ..plan.cases import Case
    from ..records import ExperimentSummary, TraceRecord


def pytest_fluxloop_modify_cases(config: pytest.Config, cases: list[Case]) -> None:
    """Filter or reorder the experiment's cases in place before items are made.

    Called in every process (controller and each xdist worker) with the same list, so keep
    it deterministic: all xdist workers must see the same cases in the same order.
    """


@pytest.hookspec(firstresult=True)
def pytest_fluxloop_supervisor(config: pytest.Config, settings: SupervisorConfig) -> Any:
    """Return a custom supervisor for multi-turn conversations, or None for the built-in one.

    ``settings`` is the validated ``multi_turn.supervisor`` block. The returned object must
    follow the supervisor protocol of :mod:`pytest_fluxloop.supervisors` (a ``decide``
    method); it is used for every case of the experiment. First non-None result wins.
    """


def pytest_fluxloop_record_written(
    config: pytest.Config, record: TraceRecord, experiment_dir: Path
) -> None:
    """Called on the controller after a trace record was appended to the artifacts."""


def pytest_fluxloop_experiment_finished(
    config: pytest.Config, summary: ExperimentSummary, experiment_dir: Path | None
) -> None:
    """Called on the controller at session finish with the final ``summary.json`` content."""
