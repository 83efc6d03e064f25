"""AgentThreads: reusable daemon threads that run agent attempts under a deadline.

In-process; jobs are held by events. Timeouts are hang guards, except where a test needs a
``wait`` to time out (then it is short and the job is known to be blocked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_fluxloop.engine import agent_threads
from pytest_fluxloop.engine.agent_threads import IDLE_NAME, AgentThreads, Job

GUARD = 5.0  # seconds: only ever reached when something hangs


def wait_until(predicate: Callable[[], bool], guard: float = GUARD) -> bool:
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


class Probe:
    """A job function that records its thread and name, then waits to be released."""

    def __init__(self, hold: bool = False) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        self.thread: threading.Thread | None = None
        self.name_inside: str | None = None
        self.arg: Any = None

    def __call__(self, arg: Any) -> None:
        self.arg = arg
        self.thread = threading.current_thread()
        self.name_inside = self.thread.name
        self.entered.set()
        assert self.gate.wait(GUARD), "probe never released (hang guard)"


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    made: list[Probe] = []
    yield made
    for probe in made:
        probe.gate.set()  # never leave a worker blocked


def probe(probes: list[Probe], hold: bool = False) -> Probe:
    made = Probe(hold)
    probes.append(made)
    return made


def idle_count(pool: AgentThreads) -> int:
    return len(pool._idle)


def test_runs_the_function_with_its_argument_on_a_daemon_thread(probes: list[Probe]) -> None:
    pool = AgentThreads()
    job_probe = probe(probes)
    job = pool.start(job_probe, {"case": 1}, "fluxloop-case-1")
    assert isinstance(job, Job)
    assert job.wait(GUARD)
    assert job_probe.arg == {"case": 1}
    assert job_probe.thread is not None
    assert job_probe.thread is not threading.current_thread()
    assert job_probe.thread.daemon


def test_thread_is_reused_after_its_job_ends(probes: list[Probe]) -> None:
    pool = AgentThreads()
    first, second = probe(probes), probe(probes)
    assert pool.start(first, None, "first").wait(GUARD)
    # The worker goes back to the pool just after the job is marked done.
    assert wait_until(lambda: idle_count(pool) == 1)
    assert pool.start(second, None, "second").wait(GUARD)
    assert second.thread is first.thread
    assert first.thread is not None and first.thread.is_alive()


def test_many_sequential_jobs_share_one_thread(probes: list[Probe]) -> None:
    pool = AgentThreads()
    threads = set()
    for index in range(20):
        job_probe = probe(probes)
        assert pool.start(job_probe, index, f"job-{index}").wait(GUARD)
        assert wait_until(lambda: idle_count(pool) == 1)
        threads.add(job_probe.thread)
    assert len(threads) == 1


def test_busy_thread_is_not_reused(probes: list[Probe]) -> None:
    pool = AgentThreads()
    stuck, other = probe(probes, hold=True), probe(probes)
    stuck_job = pool.start(stuck, None, "stuck")
    assert stuck.entered.wait(GUARD)
    # The stuck job is past any deadline; the next job must not queue behind it.
    other_job = pool.start(other, None, "other")
    assert other_job.wait(GUARD)
    assert other.thread is not stuck.thread
    assert not stuck_job.wait(0)
    # Once the stuck job ends, its thread is back in the pool too.
    stuck.gate.set()
    assert stuck_job.wait(GUARD)
    assert wait_until(lambda: idle_count(pool) == 2)


def test_thread_name_is_the_job_name_while_running_and_idle_after(probes: list[Probe]) -> None:
    pool = AgentThreads()
    job_probe = probe(probes, hold=True)
    job = pool.start(job_probe, None, "fluxloop-in00-hello-default-it0")
    assert job_probe.entered.wait(GUARD)
    assert job_probe.name_inside == "fluxloop-in00-hello-default-it0"
    assert job_probe.thread is not None
    assert job_probe.thread.name == "fluxloop-in00-hello-default-it0"  # seen from outside
    job_probe.gate.set()
    assert job.wait(GUARD)
    assert job_probe.thread.name == IDLE_NAME  # renamed before the job is marked done


def test_new_threads_start_with_the_idle_name(probes: list[Probe]) -> None:
    before = set(threading.enumerate())

    def new_threads() -> set[threading.Thread]:
        return {t for t in set(threading.enumerate()) - before if t.name.startswith("fluxloop")}

    pool = AgentThreads()
    assert new_threads() == set()  # nothing starts before first use
    job_probe = probe(probes)
    assert pool.start(job_probe, None, "named").wait(GUARD)
    assert new_threads() == {job_probe.thread}
    assert job_probe.thread is not None and job_probe.thread.name == IDLE_NAME


def test_job_wait_timeout_semantics(probes: list[Probe]) -> None:
    pool = AgentThreads()
    job_probe = probe(probes, hold=True)
    job = pool.start(job_probe, None, "slow")
    assert job_probe.entered.wait(GUARD)
    assert job.wait(0) is False  # not finished: a zero timeout just polls
    assert job.wait(0.01) is False  # not finished within the timeout
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(job.wait(None)))
    waiter.start()  # wait(None) blocks until the job ends
    job_probe.gate.set()
    waiter.join(GUARD)
    assert waited == [True]
    assert job.wait(GUARD) is True
    assert job.wait(0) is True  # a finished job answers at once, every time
    assert job.wait(None) is True


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt, SystemExit])
def test_an_exception_in_the_job_does_not_kill_the_worker(
    probes: list[Probe], exc_type: type[BaseException]
) -> None:
    pool = AgentThreads()
    failing_thread: list[threading.Thread] = []

    def fail(arg: Any) -> None:
        failing_thread.append(threading.current_thread())
        raise exc_type("agent exploded")

    hook_calls: list[Any] = []
    original_hook = threading.excepthook
    threading.excepthook = hook_calls.append
    try:
        assert pool.start(fail, None, "failing").wait(GUARD)
        assert wait_until(lambda: idle_count(pool) == 1)
        after = probe(probes)
        assert pool.start(after, None, "after").wait(GUARD)
    finally:
        threading.excepthook = original_hook
    assert after.thread is failing_thread[0]
    assert after.thread.is_alive()
    assert after.thread.name == IDLE_NAME
    assert hook_calls == []  # swallowed by the worker, not an unhandled thread exception


def test_idle_pool_is_capped_at_max_idle(
    probes: list[Probe], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_threads, "MAX_IDLE", 2)
    pool = AgentThreads()
    held = [probe(probes, hold=True) for _ in range(5)]
    jobs = [pool.start(p, i, f"burst-{i}") for i, p in enumerate(held)]
    for p in held:
        assert p.entered.wait(GUARD)
    assert len({p.thread for p in held}) == 5  # all five ran at once, on five threads
    for p in held:
        p.gate.set()
    for job in jobs:
        assert job.wait(GUARD)
    assert wait_until(lambda: idle_count(pool) == 2)
    # Later bursts reuse the two idle threads and grow again on demand.
    again = [probe(probes, hold=True) for _ in range(3)]
    jobs = [pool.start(p, i, f"again-{i}") for i, p in enumerate(again)]
    for p in again:
        assert p.entered.wait(GUARD)
    first_threads = {p.thread for p in held}
    assert len({p.thread for p in again} & first_threads) == 2
    for p in again:
        p.gate.set()
    for job in jobs:
        assert job.wait(GUARD)
    assert wait_until(lambda: idle_count(pool) == 2)


def test_the_real_cap_is_64() -> None:
    assert agent_threads.MAX_IDLE == 64


def test_threads_beyond_the_idle_cap_exit(
    probes: list[Probe], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_threads, "MAX_IDLE", 1)
    pool = AgentThreads()
    held = [probe(probes, hold=True) for _ in range(4)]
    jobs = [pool.start(p, i, f"burst-{i}") for i, p in enumerate(held)]
    for p in held:
        assert p.entered.wait(GUARD)
    for p in held:
        p.gate.set()
    for job in jobs:
        assert job.wait(GUARD)
    threads = [p.thread for p in held]
    # One thread stays idle in the pool; the other three have nothing left to do. (A short
    # wait: threads that do exit, exit at once; too short could only turn XPASS into XFAIL.)
    assert wait_until(lambda: sum(t is not None and t.is_alive() for t in threads) <= 1, 0.5)


def test_worker_is_back_in_the_pool_when_wait_returns(probes: list[Probe]) -> None:
    pool = AgentThreads()
    original_release = pool._release
    gate = threading.Event()

    def slow_release(worker: Any) -> Any:
        gate.wait(GUARD)  # widen the window between "job done" and "worker idle"
        return original_release(worker)

    pool._release = slow_release  # type: ignore[method-assign]
    opener = threading.Timer(0.5, gate.set)  # lets a fixed pool (release first) finish
    opener.start()
    try:
        assert pool.start(probe(probes), None, "first").wait(GUARD)
        assert idle_count(pool) == 1
    finally:
        gate.set()
        opener.cancel()
