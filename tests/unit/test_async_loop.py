"""SharedLoop / AsyncCall: one event loop thread for async agents, cancellation, blocked loops.

In-process. Coroutines are held by events; timeouts are hang guards, except a ``grace`` or
ping timeout given to something known never to answer (then it is short).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from pytest_fluxloop.engine.async_loop import (
    PING_TIMEOUT_SECONDS,
    AsyncCall,
    LoopBlocked,
    SharedLoop,
)

GUARD = 5.0  # seconds: only ever reached when something hangs
NEVER = 0.2  # seconds to wait for something that is known not to happen

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


class Loops:
    """Makes SharedLoops with unique thread names and cleans every loop up afterwards."""

    def __init__(self) -> None:
        self.shared: list[SharedLoop] = []
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.releases: list[threading.Event] = []

    def make(self) -> tuple[SharedLoop, str]:
        name = f"fluxloop-async-test-{uuid.uuid4().hex[:8]}"
        shared = SharedLoop(name=name)
        self.shared.append(shared)
        return shared, name

    def remember(self, call: AsyncCall[Any]) -> None:
        if call.loop is not None:
            self.loops.append(call.loop)

    def close(self) -> None:
        for release in self.releases:
            release.set()
        for shared in self.shared:
            shared.close()
        for loop in self.loops:  # abandoned loops keep running: stop them
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)


@pytest.fixture
def loops() -> Iterator[Loops]:
    made = Loops()
    yield made
    made.close()


async def current_thread() -> threading.Thread:
    return threading.current_thread()


async def blocking(entered: threading.Event, release: threading.Event) -> str:
    """An agent that blocks its event loop with time.sleep."""
    entered.set()
    deadline = time.monotonic() + GUARD
    while not release.is_set() and time.monotonic() < deadline:
        time.sleep(0.005)
    return "unblocked"


def test_thread_starts_lazily_and_is_a_daemon(loops: Loops) -> None:
    shared, name = loops.make()
    assert threads_named(name) == []
    assert shared.responsive()  # no loop yet: nothing is blocked
    thread = shared.run(current_thread())
    assert threads_named(name) == [thread]
    assert thread.daemon
    assert thread is not threading.current_thread()


def test_one_loop_thread_serves_many_submissions(loops: Loops) -> None:
    shared, name = loops.make()
    count = 12
    started = 0

    async def agent(index: int) -> tuple[int, threading.Thread]:
        nonlocal started
        started += 1  # only the loop thread touches it
        # Every call waits until all are in flight: they run concurrently on one loop.
        deadline = asyncio.get_running_loop().time() + GUARD
        while started < count:
            assert asyncio.get_running_loop().time() < deadline, "not all in flight"
            await asyncio.sleep(0.001)
        return index, threading.current_thread()

    calls: list[AsyncCall[tuple[int, threading.Thread]]] = []
    lock = threading.Lock()

    def submit_some(indices: range) -> None:
        for index in indices:
            call = shared.submit(agent(index))
            with lock:
                calls.append(call)

    # Submitted from several threads at once.
    submitters = [
        threading.Thread(target=submit_some, args=(range(i, count, 3),)) for i in range(3)
    ]
    for thread in submitters:
        thread.start()
    for thread in submitters:
        thread.join(GUARD)
    results = [call.future.result(GUARD) for call in calls]
    assert sorted(index for index, _ in results) == list(range(count))
    loop_threads = {thread for _, thread in results}
    assert len(loop_threads) == 1
    assert threads_named(name) == list(loop_threads)
    assert len({call.loop for call in calls}) == 1
    # Later submissions keep using the same loop and thread.
    assert shared.run(current_thread()) in loop_threads


def test_result_and_exceptions_reach_the_caller(loops: Loops) -> None:
    shared, _ = loops.make()

    async def ok() -> dict[str, int]:
        await asyncio.sleep(0)
        return {"answer": 42}

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("agent exploded")

    assert shared.run(ok()) == {"answer": 42}
    call = shared.submit(fails())
    with pytest.raises(ValueError, match="agent exploded"):
        call.result()
    assert call.finished.is_set()
    assert shared.run(ok()) == {"answer": 42}  # the loop survives agent errors


def test_any_awaitable_not_only_coroutines(loops: Loops) -> None:
    shared, _ = loops.make()

    class Awaitable:
        def __await__(self) -> Generator[Any, None, str]:
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert shared.run(Awaitable()) == "awaited"


def test_caller_context_variables_are_visible_in_the_task(loops: Loops) -> None:
    shared, _ = loops.make()

    async def read_and_change() -> str:
        seen = request_id.get()
        request_id.set("changed-in-task")
        return seen

    token = request_id.set("case-7")
    try:
        assert shared.run(read_and_change()) == "case-7"
        assert request_id.get() == "case-7"  # the task's change does not leak back
    finally:
        request_id.reset(token)

    # Each submitting thread's own value, even with calls interleaved on one loop.
    seen: dict[str, str] = {}

    def submit_as(value: str) -> None:
        request_id.set(value)
        seen[value] = shared.run(read_and_change())

    workers = [threading.Thread(target=submit_as, args=(f"thread-{i}",)) for i in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(GUARD)
    assert seen == {f"thread-{i}": f"thread-{i}" for i in range(4)}


def test_an_explicit_context_is_used(loops: Loops) -> None:
    shared, _ = loops.make()

    async def read() -> str:
        return request_id.get()

    def in_other_context() -> contextvars.Context:
        request_id.set("from-explicit-context")
        return contextvars.copy_context()

    context = contextvars.Context().run(in_other_context)
    call = shared.submit(read(), context=context)
    assert call.future.result(GUARD) == "from-explicit-context"


def test_cancel_ends_a_cooperative_task_within_the_grace(loops: Loops) -> None:
    shared, _ = loops.make()
    entered = threading.Event()
    saw_cancel = threading.Event()

    async def waits_for_a_reply() -> str:
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise
        return "never"

    call = shared.submit(waits_for_a_reply())
    assert entered.wait(GUARD)
    assert call.task is not None
    assert call.cancel(GUARD) is True
    assert saw_cancel.is_set()
    assert call.finished.is_set()
    with pytest.raises(concurrent.futures.CancelledError):
        call.result()
    assert shared.abandoned == 0
    assert shared.run(current_thread()) is not None  # the loop still serves


def test_cancel_returns_false_for_a_task_that_swallows_cancellation(loops: Loops) -> None:
    shared, name = loops.make()
    entered, swallowed, stop = threading.Event(), threading.Event(), threading.Event()
    loops.releases.append(stop)

    async def stubborn() -> str:
        entered.set()
        deadline = time.monotonic() + GUARD
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                await asyncio.sleep(0.005)
            except asyncio.CancelledError:
                swallowed.set()
        return "done anyway"

    call = shared.submit(stubborn())
    assert entered.wait(GUARD)
    assert call.cancel(NEVER) is False
    assert swallowed.wait(GUARD)  # the task did get the cancellation, and ignored it
    assert not call.finished.is_set()
    # The loop itself is fine: it is kept and keeps serving.
    assert shared.abandoned == 0
    assert shared.responsive(GUARD)
    assert [shared.run(current_thread())] == threads_named(name)
    stop.set()
    assert call.finished.wait(GUARD)


def test_cancel_before_the_task_starts_returns_true(loops: Loops) -> None:
    shared, _ = loops.make()
    entered, release = threading.Event(), threading.Event()
    loops.releases.append(release)
    blocker = shared.submit(blocking(entered, release))
    assert entered.wait(GUARD)

    async def queued() -> str:
        return "ran"

    call = shared.submit(queued())
    assert call.task is None  # the loop is busy: the task has not started
    assert call.cancel(GUARD) is True
    with pytest.raises(concurrent.futures.CancelledError):
        call.result()
    release.set()
    assert blocker.future.result(GUARD) == "unblocked"


def test_a_call_cancelled_before_it_started_never_runs(loops: Loops) -> None:
    shared, _ = loops.make()
    entered, release = threading.Event(), threading.Event()
    loops.releases.append(release)
    shared.submit(blocking(entered, release))
    assert entered.wait(GUARD)
    ran = threading.Event()

    async def side_effect() -> None:
        ran.set()  # e.g. sends a request for a case that already timed out
        await asyncio.sleep(60)

    call = shared.submit(side_effect())
    assert call.cancel(GUARD) is True
    release.set()
    # Anything queued after it on the same loop has run once this returns.
    assert shared.run(current_thread()) is not None
    assert not ran.is_set()


def short_ping(shared: SharedLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ping a blocked loop for NEVER seconds instead of the default second."""
    monkeypatch.setattr(shared, "ping_timeout", NEVER)


def test_default_ping_timeout_is_a_second() -> None:
    assert PING_TIMEOUT_SECONDS == 1.0


def test_blocked_loop_is_detected_and_replaced(
    loops: Loops, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, name = loops.make()
    assert shared.replace_if_blocked() is False  # no loop yet
    first_thread = shared.run(current_thread())
    assert shared.responsive(GUARD)
    assert shared.replace_if_blocked() is False
    assert shared.abandoned == 0

    entered, release = threading.Event(), threading.Event()
    loops.releases.append(release)
    blocked = shared.submit(blocking(entered, release))
    loops.remember(blocked)
    assert entered.wait(GUARD)
    assert shared.responsive(NEVER) is False

    short_ping(shared, monkeypatch)
    assert shared.replace_if_blocked() is True
    assert shared.abandoned == 1
    # Later submissions run on a fresh loop, on a new thread.
    fresh_thread = shared.run(current_thread())
    assert fresh_thread is not first_thread
    assert fresh_thread.is_alive() and first_thread.is_alive()
    assert shared.responsive(GUARD)
    assert len(threads_named(name)) == 2  # the abandoned thread is left behind
    # The abandoned loop still finishes its work once the agent lets go.
    release.set()
    assert blocked.future.result(GUARD) == "unblocked"


def test_cancel_of_a_call_blocking_its_loop_replaces_the_loop(
    loops: Loops, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, _ = loops.make()
    short_ping(shared, monkeypatch)
    entered, release = threading.Event(), threading.Event()
    loops.releases.append(release)
    blocked = shared.submit(blocking(entered, release))
    loops.remember(blocked)
    assert entered.wait(GUARD)
    assert blocked.cancel(NEVER) is False  # the task can't even see the cancellation
    assert shared.abandoned == 1
    later = shared.submit(current_thread())
    assert later.loop is not blocked.loop
    assert later.future.result(GUARD) is not None
    # A second timeout on the healthy loop does not abandon it.
    assert shared.replace_if_blocked() is False
    assert shared.abandoned == 1


def test_close_stops_the_loop_thread_and_a_later_submit_starts_a_new_one(
    loops: Loops,
) -> None:
    shared, name = loops.make()
    shared.close()  # before first use: nothing to stop
    first = shared.run(current_thread())
    shared.close()
    first.join(GUARD)
    assert not first.is_alive()
    assert threads_named(name) == []
    second = shared.run(current_thread())
    assert second is not first and second.is_alive()
    shared.close()
    second.join(GUARD)
    assert not second.is_alive()
    shared.close()  # twice: harmless


def test_run_from_many_threads_while_one_call_is_slow(loops: Loops) -> None:
    shared, _ = loops.make()
    gate_open = threading.Event()
    loops.releases.append(gate_open)

    async def slow() -> str:
        while not gate_open.is_set():
            await asyncio.sleep(0.002)
        return "slow"

    async def quick(index: int) -> int:
        await asyncio.sleep(0)
        return index

    slow_call = shared.submit(slow())
    quick_results: list[int] = []
    runners: list[threading.Thread] = []
    for index in range(5):
        runner = threading.Thread(target=lambda i=index: quick_results.append(shared.run(quick(i))))
        runners.append(runner)
        runner.start()
    for runner in runners:
        runner.join(GUARD)
    assert sorted(quick_results) == list(range(5))  # not stuck behind the slow call
    assert not slow_call.finished.is_set()
    gate_open.set()
    assert slow_call.future.result(GUARD) == "slow"


# --------------------------------------------------------------------------- who blocked it


def test_blocked_names_the_blocking_call_and_gives_up_every_other_call(
    loops: Loops, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, _ = loops.make()
    short_ping(shared, monkeypatch)
    awaiting = threading.Event()

    async def waits() -> str:
        awaiting.set()
        await asyncio.sleep(60)
        return "never"

    started = shared.submit(waits(), label="started-victim")  # suspended in an await
    assert awaiting.wait(GUARD)
    entered, release = threading.Event(), threading.Event()
    loops.releases.append(release)
    blocker = shared.submit(blocking(entered, release), label="the-blocker")
    loops.remember(blocker)
    assert entered.wait(GUARD)
    queued = shared.submit(current_thread(), label="queued-victim")  # never gets to start
    assert queued.task is None

    found = shared.blocked(queued)
    assert found is not None
    assert found.blocker is blocker and found.by == "the-blocker"
    assert shared.abandoned == 1
    # Both other calls are given up at once, with the reason, not left to their deadline.
    for victim in (started, queued):
        t0 = time.monotonic()
        with pytest.raises(LoopBlocked, match="blocked by case the-blocker"):
            victim.result()
        assert time.monotonic() - t0 < NEVER
        assert victim.aborted is found
    # The answer is kept: asking again (from the blocker's own timeout) does not ping.
    t0 = time.monotonic()
    assert shared.blocked(blocker) is found
    assert time.monotonic() - t0 < NEVER / 2
    assert shared.abandoned == 1
    # Later calls run on a fresh loop; the blocker still finishes on the old one.
    fresh = shared.submit(current_thread())
    assert fresh.loop is not blocker.loop
    assert fresh.future.result(GUARD) is not None
    release.set()
    assert blocker.future.result(GUARD) == "unblocked"


def test_blocked_is_none_for_a_loop_that_answers(loops: Loops) -> None:
    shared, _ = loops.make()
    gate = threading.Event()
    loops.releases.append(gate)

    async def slow_but_polite() -> str:
        while not gate.is_set():
            await asyncio.sleep(0.005)
        return "done"

    call = shared.submit(slow_but_polite(), label="polite")
    assert shared.blocked(call) is None
    assert shared.abandoned == 0 and call.aborted is None
    gate.set()
    assert call.result() == "done"


def test_a_loop_blocked_by_a_plain_callback_has_no_named_blocker(
    loops: Loops, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, _ = loops.make()
    short_ping(shared, monkeypatch)
    assert shared.run(current_thread()) is not None
    entered, release = threading.Event(), threading.Event()
    loops.releases.append(release)

    def stuck() -> None:
        entered.set()
        release.wait(GUARD)

    victim = shared.submit(asyncio.sleep(60), label="victim")
    loops.remember(victim)
    assert victim.loop is not None
    victim.loop.call_soon_threadsafe(stuck)  # not a task: e.g. a library's callback
    assert entered.wait(GUARD)
    found = shared.blocked(victim)
    assert found is not None and found.blocker is None and found.by is None
    with pytest.raises(LoopBlocked, match="unidentified"):
        victim.result()


def test_a_task_created_by_a_call_blocking_the_loop_blames_that_call(
    loops: Loops, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, _ = loops.make()
    short_ping(shared, monkeypatch)
    entered, release = threading.Event(), threading.Event()
    loops.releases.append(release)

    async def agent() -> list[str]:
        # The blocking call sits in a tool run by gather: a task of its own.
        return await asyncio.gather(blocking(entered, release), asyncio.sleep(0, "other"))

    blocker = shared.submit(agent(), label="gathers")
    loops.remember(blocker)
    assert entered.wait(GUARD)
    victim = shared.submit(current_thread(), label="victim")
    found = shared.blocked(victim)
    assert found is not None and found.blocker is blocker and found.by == "gathers"
    with pytest.raises(LoopBlocked, match="case gathers"):
        victim.result()
    release.set()
    assert blocker.future.result(GUARD) == ["unblocked", "other"]
