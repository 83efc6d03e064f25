"""Running the configured experiment's cases for the items of this process.

Items run in pytest's order; with ``parallel_runs: N`` each item also schedules the cases of
the next N-1 items this process will run, so up to N are in flight while items still report
in order. The window comes from the collected item order (or, in an xdist worker, from the
worker's own queue).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

from ..engine.scheduler import CaseScheduler
from .collection import FluxloopItem
from .xdist import is_worker, queued_indices

if TYPE_CHECKING:
    from ..engine.executor import CaseResult
    from ..plan import Case
    from ..run import Experiment


class CaseRunner:
    """The scheduler of one experiment plus the item order it schedules ahead from."""

    def __init__(
        self, config: pytest.Config, experiment: Experiment, items: list[pytest.Item]
    ) -> None:
        """Resolve the target (TargetError etc. propagate) and remember the run order."""
        self.config = config
        executor = experiment.prepare()
        self.scheduler = CaseScheduler(executor.run, experiment.cfg.simulation.parallel_runs)
        self.items = items
        self.order = {
            item.nodeid: index for index, item in enumerate(items) if isinstance(item, FluxloopItem)
        }

    def result(self, item: FluxloopItem) -> CaseResult:
        """Run (or claim the already running) case of ``item`` and return its result."""
        return self.scheduler.result(item.case, ahead=self.upcoming(item))

    def upcoming(self, item: FluxloopItem) -> list[Case]:
        """Cases of the next items this process will run (at most parallel_runs - 1)."""
        want = self.scheduler.parallel_runs - 1
        if want <= 0:
            return []
        indices: Iterable[int]
        if is_worker(self.config):
            indices = queued_indices(self.config, limit=want * 4)
        else:
            start = self.order.get(item.nodeid, len(self.items)) + 1
            indices = range(start, len(self.items))  # lazy: only the window is read
        cases: list[Case] = []
        for index in indices:
            candidate = self.items[index] if index < len(self.items) else None
            if isinstance(candidate, FluxloopItem):
                cases.append(candidate.case)
                if len(cases) == want:
                    break
        return cases

    def cancel(self) -> None:
        """-x, Ctrl-C, SIGTERM: cases scheduled ahead and not started never start."""
        self.scheduler.cancel_pending()
