"""Run pytest in-process for ``fluxloop run experiment`` and catch the experiment's result.

This is the only CLI module that imports pytest; ``run.py`` imports it lazily so that
``fluxloop --help`` and ``fluxloop init`` stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..records import ExperimentSummary

API_KEY_ENV = "FLUXLOOP_SUPERVISOR_API_KEY"


class ExperimentResult:
    """pytest plugin object: remembers what ``pytest_fluxloop_experiment_finished`` reported.

    Printing happens after ``pytest.main`` returns, so the summary comes after pytest's
    own output instead of in the middle of it.
    """

    def __init__(self) -> None:
        self.summary: ExperimentSummary | None = None
        self.experiment_dir: Path | None = None
        self.finished = False

    # optionalhook: with `-- -p no:fluxloop` the hookspec is absent; that must not crash.
    @pytest.hookimpl(optionalhook=True)
    def pytest_fluxloop_experiment_finished(
        self, config: Any, summary: ExperimentSummary, experiment_dir: Path | None
    ) -> None:
        """Store the final summary and where the artifacts were written."""
        self.summary = summary
        self.experiment_dir = Path(experiment_dir) if experiment_dir is not None else None
        self.finished = True


@contextmanager
def _env_var(name: str, value: str | None) -> Iterator[None]:
    """Set ``name`` for the duration of the block (if ``value``), then restore it."""
    if value is None:
        yield
        return
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def run_pytest(args: list[str], api_key: str | None = None) -> tuple[int, ExperimentResult]:
    """Run ``pytest.main(args)`` in this process; return its exit code and the result.

    ``api_key`` is handed over in ``FLUXLOOP_SUPERVISOR_API_KEY`` (inherited by xdist
    workers), never in ``args``.
    """
    result = ExperimentResult()
    with _env_var(API_KEY_ENV, api_key):
        code = pytest.main(args, plugins=[result])
    return int(code), result
