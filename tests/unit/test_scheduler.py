"""CaseScheduler (``parallel_runs``): in-process, with fake runs gated by events.

Concurrency is measured with a counter under a lock and events, never with timing; the
timeouts below are hang guards only.
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_fluxloop.engine.scheduler import CaseScheduler
from pytest_fluxloop.plan.cases import Case

GUARD = 5.0  # seconds: only ever reached when something hangs
DISPATCH_PREFIX = "fluxloop-dispatch-"


def make_cases(count: int, prefix: str = "c") -> list[Case]:
    return [
        Case(case_id=f"in{i:02d}-{prefix}{i}-default-it0", input_index=i, input=f"input {i}")
        for i in range(count)
    ]


def dispatch_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(DISPATCH_PREFIX)}


def wait_until_waiting_on_a_future(thread: threading.Thread) -> None:
    """Wait until ``thread`` is inside ``Future.result`` (it has claimed its future)."""
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or -1)
        while frame is not None:
            code = frame.f_code
            if code.co_name == "result" and code.co_filename.endswith(
                ("concurrent/futures/_base.py", "concurrent\\futures\\_base.py")
            ):
                return
            frame = frame.f_back
        time.sleep(0.001)
    raise AssertionError(f"{thread.name} never waited on its future (hang guard)")


class GatedRuns:
    """A fake ``run``: counts what is in flight and holds each case until it is released."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: list[str] = []
        self.finished: list[str] = []
        self.threads: dict[str, threading.Thread] = {}
        self._gates: dict[str, threading.Event] = {}
        self._release_all = False

    def gate(self, case_id: str) -> threading.Event:
        with self.cond:
            return self._gates.setdefault(case_id, threading.Event())

    def release(self, case_id: str) -> None:
        self.gate(case_id).set()

    def release_all(self) -> None:
        with self.cond:
            self._release_all = True
            for gate in self._gates.values():
                gate.set()

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, GUARD), "condition not reached (hang guard)"

    def __call__(self, case: Case) -> Any:
        gate = self.gate(case.case_id)
        with self.cond:
            if self._release_all:
                gate.set()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.started.append(case.case_id)
            self.threads[case.case_id] = threading.current_thread()
            self.cond.notify_all()
        try:
            assert gate.wait(GUARD), f"{case.case_id} was never released (hang guard)"
            return f"result of {case.case_id}"
        finally:
            with self.cond:
                self.in_flight -= 1
                self.finished.append(case.case_id)
                self.cond.notify_all()


@pytest.fixture
def runs() -> Iterator[GatedRuns]:
    fake = GatedRuns()
    yield fake
    fake.release_all()  # never leave a dispatcher blocked on a gate


def test_parallel_one_runs_inline_without_threads() -> None:
    before = dispatch_threads()
    seen: list[threading.Thread] = []

    def run(case: Case) -> Any:
        seen.append(threading.current_thread())
        return case.case_id

    scheduler = CaseScheduler(run, parallel_runs=1)
    cases = make_cases(3)
    assert [scheduler.result(case, ahead=cases[i + 1 :]) for i, case in enumerate(cases)] == [
        case.case_id for case in cases
    ]
    assert seen == [threading.current_thread()] * 3
    assert scheduler.pending == 0
    assert dispatch_threads() - before == set()
    assert scheduler.cancel_pending() == 0


@pytest.mark.parametrize("requested", [0, -3])
def test_parallel_runs_below_one_means_one(requested: int) -> None:
    scheduler = CaseScheduler(lambda case: case.case_id, parallel_runs=requested)
    assert scheduler.parallel_runs == 1
    assert scheduler.result(make_cases(1)[0]) == make_cases(1)[0].case_id


def test_parallel_one_exception_is_raised_to_the_caller() -> None:
    boom = ValueError("agent exploded")

    def run(case: Case) -> Any:
        raise boom

    with pytest.raises(ValueError) as info:
        CaseScheduler(run, parallel_runs=1).result(make_cases(1)[0])
    assert info.value is boom


def test_no_thread_starts_before_first_use(runs: GatedRuns) -> None:
    before = dispatch_threads()
    scheduler = CaseScheduler(runs, parallel_runs=3)
    assert dispatch_threads() == before
    assert scheduler.pending == 0
    runs.release_all()
    case = make_cases(1)[0]
    assert scheduler.result(case) == f"result of {case.case_id}"
    new = dispatch_threads() - before
    assert sorted(t.name for t in new) == [f"{DISPATCH_PREFIX}{i}" for i in range(3)]
    assert all(t.daemon for t in new)
    assert runs.threads[case.case_id] in new
    scheduler.cancel_pending()


def test_keeps_n_cases_in_flight_and_never_more(runs: GatedRuns) -> None:
    scheduler = CaseScheduler(runs, parallel_runs=3)
    cases = make_cases(10)
    scheduler.schedule(cases)
    assert scheduler.pending == 10
    # Three start at once (each is held by its gate) ...
    runs.wait_for(lambda: runs.in_flight == 3)
    assert sorted(runs.started) == sorted(c.case_id for c in cases[:3])  # queued order
    # ... and each release lets exactly one more in.
    for index, case in enumerate(cases):
        runs.release(case.case_id)
        runs.wait_for(lambda index=index: len(runs.finished) == index + 1)
        expected = min(3, len(cases) - index - 1)
        runs.wait_for(lambda expected=expected: runs.in_flight == expected)
        assert len(runs.started) == index + 1 + expected
    assert runs.max_in_flight == 3
    assert [scheduler.result(case) for case in cases] == [
        f"result of {case.case_id}" for case in cases
    ]
    assert len({runs.threads[c.case_id] for c in cases}) <= 3
    assert scheduler.pending == 0
    scheduler.cancel_pending()


def test_result_schedules_the_cases_ahead(runs: GatedRuns) -> None:
    scheduler = CaseScheduler(runs, parallel_runs=2)
    first, second, third = make_cases(3)
    claimed: list[Any] = []
    claimer = threading.Thread(
        target=lambda: claimed.append(scheduler.result(first, ahead=[second, third]))
    )
    claimer.start()
    runs.wait_for(lambda: runs.in_flight == 2)
    assert sorted(runs.started) == sorted([first.case_id, second.case_id])
    runs.release(first.case_id)
    claimer.join(GUARD)
    assert claimed == [f"result of {first.case_id}"]
    runs.wait_for(lambda: third.case_id in runs.started)  # the slot freed by ``first``
    runs.release_all()
    assert scheduler.result(third) == f"result of {third.case_id}"
    assert scheduler.result(second) == f"result of {second.case_id}"
    scheduler.cancel_pending()


def test_results_are_claimed_by_case_id_in_any_order(runs: GatedRuns) -> None:
    scheduler = CaseScheduler(runs, parallel_runs=2)
    cases = make_cases(6)
    scheduler.schedule(cases)
    runs.release_all()
    for case in [cases[4], cases[0], cases[5], cases[2], cases[1], cases[3]]:
        assert scheduler.result(case) == f"result of {case.case_id}"
    assert scheduler.pending == 0
    assert sorted(runs.finished) == sorted(c.case_id for c in cases)
    scheduler.cancel_pending()


def test_results_are_claimed_from_many_threads(runs: GatedRuns) -> None:
    scheduler = CaseScheduler(runs, parallel_runs=3)
    cases = make_cases(8)
    scheduler.schedule(cases)
    claimed: dict[str, Any] = {}
    lock = threading.Lock()

    def claim(case: Case) -> None:
        value = scheduler.result(case)
        with lock:
            claimed[case.case_id] = value

    claimers = [threading.Thread(target=claim, args=(case,)) for case in reversed(cases)]
    for thread in claimers:
        thread.start()
    runs.release_all()
    for thread in claimers:
        thread.join(GUARD)
    assert claimed == {case.case_id: f"result of {case.case_id}" for case in cases}
    assert runs.max_in_flight <= 3
    scheduler.cancel_pending()


def test_schedule_dedupes(runs: GatedRuns) -> None:
    scheduler = CaseScheduler(runs, parallel_runs=2)
    cases = make_cases(4)
    scheduler.schedule(cases)
    scheduler.schedule([cases[2], cases[0], cases[2]])
    scheduler.schedule(cases)
    assert scheduler.pending == 4
    runs.release_all()
    # result() schedules the case and its look-ahead again: still no second run.
    for index, case in enumerate(cases):
        assert scheduler.result(case, ahead=cases[index:]) == f"result of {case.case_id}"
    assert Counter(runs.started) == Counter({case.case_id: 1 for case in cases})
    assert scheduler.pending == 0
    scheduler.cancel_pending()


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt, SystemExit])
def test_exception_in_a_run_surfaces_to_the_claimer(exc_type: type[BaseException]) -> None:
    raised = exc_type("boom")
    done: list[str] = []

    def run(case: Case) -> Any:
        if case.input_index == 1:
            raise raised
        done.append(case.case_id)
        return case.case_id

    scheduler = CaseScheduler(run, parallel_runs=2)
    cases = make_cases(4)
    scheduler.schedule(cases)
    assert scheduler.result(cases[0]) == cases[0].case_id
    with pytest.raises(exc_type) as info:
        scheduler.result(cases[1])
    assert info.value is raised
    # The dispatcher that ran it is still alive and serving.
    assert scheduler.result(cases[3]) == cases[3].case_id
    assert scheduler.result(cases[2]) == cases[2].case_id
    assert scheduler.pending == 0
    scheduler.cancel_pending()


def test_cancel_pending_cancels_not_started_cases_and_stops_dispatchers(
    runs: GatedRuns,
) -> None:
    before = dispatch_threads()
    scheduler = CaseScheduler(runs, parallel_runs=2)
    cases = make_cases(6)
    scheduler.schedule(cases)
    runs.wait_for(lambda: runs.in_flight == 2)
    dispatchers = dispatch_threads() - before
    assert len(dispatchers) == 2

    # A claimer already waiting for a case that has not started is told it was cancelled.
    outcome: list[BaseException | Any] = []

    def claim_last() -> None:
        try:
            outcome.append(scheduler.result(cases[5]))
        except BaseException as exc:
            outcome.append(exc)

    claimer = threading.Thread(target=claim_last)
    claimer.start()
    wait_until_waiting_on_a_future(claimer)

    assert scheduler.cancel_pending() == 4
    assert scheduler.pending == 0
    claimer.join(GUARD)
    assert len(outcome) == 1
    assert isinstance(outcome[0], concurrent.futures.CancelledError)

    # The two running cases finish; nothing else starts and the dispatchers exit.
    runs.release_all()
    for thread in dispatchers:
        thread.join(GUARD)
        assert not thread.is_alive(), f"{thread.name} did not exit"
    assert sorted(runs.started) == sorted(c.case_id for c in cases[:2])
    assert sorted(runs.finished) == sorted(c.case_id for c in cases[:2])

    # Closed: later scheduling runs nothing and a second cancel has nothing to cancel.
    scheduler.schedule(make_cases(2, prefix="late"))
    assert scheduler.pending == 0
    assert scheduler.cancel_pending() == 0
    assert sorted(runs.started) == sorted(c.case_id for c in cases[:2])


def test_cancel_before_first_use_starts_nothing() -> None:
    before = dispatch_threads()
    scheduler = CaseScheduler(lambda case: case.case_id, parallel_runs=4)
    assert scheduler.cancel_pending() == 0
    scheduler.schedule(make_cases(3))
    assert scheduler.pending == 0
    assert dispatch_threads() - before == set()


def test_cancel_with_every_case_finished_cancels_nothing(runs: GatedRuns) -> None:
    before = dispatch_threads()
    scheduler = CaseScheduler(runs, parallel_runs=3)
    cases = make_cases(3)
    scheduler.schedule(cases)
    runs.release_all()
    runs.wait_for(lambda: len(runs.finished) == 3)
    dispatchers = dispatch_threads() - before
    assert scheduler.cancel_pending() == 0
    for thread in dispatchers:
        thread.join(GUARD)
        assert not thread.is_alive()
