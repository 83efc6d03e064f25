"""``parallel_runs``: keep up to N cases in flight while items still report in order.

The pytest layer asks for the result of the case its current item runs and, at the same
time, schedules the next few items' cases ahead. Dispatchers are daemon threads (not a
ThreadPoolExecutor, whose threads the interpreter joins at exit): after Ctrl-C, SIGTERM or
``-x`` the pending cases are cancelled and nothing holds the process.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable, Iterable
from typing import cast

from ..plan.cases import Case
from .executor import CaseResult

_STOP = object()


class CaseScheduler:
    """Runs cases on ``parallel_runs`` dispatcher threads; results are claimed by case id."""

    def __init__(self, run: Callable[[Case], CaseResult], parallel_runs: int) -> None:
        self._run = run
        self.parallel_runs = max(1, parallel_runs)
        self._queue: queue.Queue[object] = queue.Queue()
        self._futures: dict[str, concurrent.futures.Future[CaseResult]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def _start(self) -> None:
        # Threads start on first use, so an experiment that never runs creates none.
        if self._threads:
            return
        for index in range(self.parallel_runs):
            thread = threading.Thread(
                target=self._dispatch, name=f"fluxloop-dispatch-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _dispatch(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            case, future = cast("tuple[Case, concurrent.futures.Future[CaseResult]]", job)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._run(case))
            except BaseException as exc:  # surfaced to the item that claims the result
                future.set_exception(exc)

    def schedule(self, cases: Iterable[Case]) -> None:
        """Queue cases that are not queued yet (in the given order)."""
        with self._lock:
            if self._closed:
                return
            self._start()
            for case in cases:
                if case.case_id not in self._futures:
                    future: concurrent.futures.Future[CaseResult] = concurrent.futures.Future()
                    self._futures[case.case_id] = future
                    self._queue.put((case, future))

    def result(self, case: Case, ahead: Iterable[Case] = ()) -> CaseResult:
        """Wait for ``case`` (scheduling it and the ``ahead`` cases first) and claim it."""
        if self.parallel_runs == 1:
            return self._run(case)  # no threads, no queue: the cheapest path
        self.schedule([case, *ahead])
        with self._lock:
            future = self._futures[case.case_id]
        try:
            return future.result()
        finally:
            with self._lock:
                self._futures.pop(case.case_id, None)

    def release(self, case: Case) -> bool:
        """Give up ``case`` if it has not started: True if it is not (any more) scheduled
        here, False if it is running or finished (its result is still claimed here).

        An xdist worker calls this before letting another worker steal the case's item, so a
        case scheduled ahead runs in one process only.
        """
        with self._lock:
            future = self._futures.get(case.case_id)
            if future is None:
                return True
            if not future.cancel():  # running or done: it stays this process's case
                return False
            del self._futures[case.case_id]
            return True

    def run_alone(self, case: Case) -> CaseResult:
        """Run ``case`` with nothing else in flight: wait for every scheduled case first.

        For a case suspected of killing its process: if it does so again, it is the only
        case that was running.
        """
        with self._lock:
            own = self._futures.pop(case.case_id, None)
            others = list(self._futures.values())
        if own is not None and not own.cancel():
            return own.result()  # already started: too late to isolate it
        concurrent.futures.wait(others)
        return self._run(case)

    @property
    def pending(self) -> int:
        """Cases scheduled and not yet claimed."""
        with self._lock:
            return len(self._futures)

    def cancel_pending(self) -> int:
        """Cancel every case not started yet and stop the dispatchers; returns how many."""
        with self._lock:
            self._closed = True
            cancelled = sum(future.cancel() for future in self._futures.values())
            self._futures.clear()
            for _ in self._threads:
                self._queue.put(_STOP)
        return cancelled
