"""Running the configured experiment's cases for the items of this process.

Items run in pytest's order; with ``parallel_runs: N`` each item also schedules the cases of
the next N-1 items this process will run, so up to N are in flight while items still report
in order. The window comes from the collected item order or, in an xdist worker, from the
worker's own queue: only items it is sure to run, since a case scheduled ahead must not also
run in the worker that steals its item (see :mod:`.xdist`).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import TYPE_CHECKING

import pytest

from ..engine.scheduler import CaseScheduler
from .collection import FluxloopItem
from .xdist import CRASHED, SUSPECT, CrashLedger, WorkerQueue, is_worker, worker_id

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
        parallel = experiment.cfg.simulation.parallel_runs
        run: Callable[[Case], CaseResult] = experiment.case_function(executor.run)
        self.queue: WorkerQueue | None = None
        self.ledger: CrashLedger | None = None
        self.worker = worker_id(config)
        if is_worker(config) and parallel > 1 and self.worker is not None:
            # Only with cases run ahead can a crash be blamed on the wrong item.
            self.ledger = CrashLedger.for_worker(config)
            if self.ledger is not None:
                run = self.ledger.tracking(self.worker, run)
            self.queue = WorkerQueue.find(config)
        self.scheduler = CaseScheduler(run, parallel)
        self.items = items
        self.order = {
            item.nodeid: index for index, item in enumerate(items) if isinstance(item, FluxloopItem)
        }
        if self.queue is not None:
            self.queue.keep_claimed(self._release)

    def result(self, item: FluxloopItem) -> CaseResult:
        """Run (or claim the already running) case of ``item`` and return its result."""
        case = item.case
        if self.scheduler.parallel_runs == 1:
            return self.scheduler.result(case)
        verdicts = self.ledger.verdicts() if self.ledger is not None else {}
        verdict = verdicts.get(case.case_id)
        if verdict is not None and verdict[0] == CRASHED:
            return _crashed(case, verdict[1])
        if verdict is not None and verdict[0] == SUSPECT:
            return self.scheduler.run_alone(case)
        if self.queue is None:
            return self.scheduler.result(case, ahead=self.upcoming(item, skip=verdicts))
        # Scheduled with the worker's queue held, so no item is stolen in between.
        with self.queue.lock():
            self.scheduler.schedule([case, *self.upcoming(item, skip=verdicts)])
        return self.scheduler.result(case)

    def upcoming(self, item: FluxloopItem, skip: Container[str] = ()) -> list[Case]:
        """Cases of the next items this process will run (at most parallel_runs - 1), up to
        the first case id in ``skip`` (cases to run alone, or not at all)."""
        want = self.scheduler.parallel_runs - 1
        if want <= 0:
            return []
        indices: Iterable[int]
        if self.queue is not None:
            indices = self.queue.upcoming(limit=want * 4)
        elif is_worker(self.config):
            return []  # xdist's queue is out of reach: run nothing another worker may run
        else:
            start = self.order.get(item.nodeid, len(self.items)) + 1
            indices = range(start, len(self.items))  # lazy: only the window is read
        cases: list[Case] = []
        for index in indices:
            candidate = self.items[index] if index < len(self.items) else None
            if not isinstance(candidate, FluxloopItem):
                continue
            if candidate.case.case_id in skip:
                # Nothing runs ahead of a case that may kill the process: results of items
                # after it would die with it, unreported, and be run again elsewhere.
                break
            cases.append(candidate.case)
            if len(cases) == want:
                break
        return cases

    def _release(self, index: int) -> bool:
        """Let another worker steal item ``index`` unless its case started here."""
        candidate = self.items[index] if 0 <= index < len(self.items) else None
        if not isinstance(candidate, FluxloopItem):
            return True
        return self.scheduler.release(candidate.case)

    def cancel(self) -> None:
        """-x, Ctrl-C, SIGTERM: cases scheduled ahead and not started never start.

        Also called when the session finishes: an xdist worker answers a steal request it
        held back, before it says goodbye to the controller.
        """
        self.scheduler.cancel_pending()
        if self.queue is not None:
            self.queue.flush()


def _crashed(case: Case, worker: str) -> CaseResult:
    """The result of a case that alone was running when ``worker`` died: not run again."""
    from ..engine.executor import CaseResult
    from ..engine.record import crashed_record

    message = (
        f"worker {worker!r} crashed while this case was the only one running there "
        "(while another item was xdist's current one); not run again"
    )
    return CaseResult(crashed_record(case, message, worker))
