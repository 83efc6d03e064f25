"""One long-lived event loop for async agents, on its own daemon thread.

Why one loop rather than ``asyncio.run`` per case: agents commonly keep module-level async
clients (``AsyncOpenAI()``, an ``httpx.AsyncClient``) whose connection pools belong to the
loop that first used them; a fresh loop per case breaks them. One shared loop is what the
agent's own async application looks like, and lets many async cases be in flight at once.

An agent that blocks the loop (``time.sleep`` inside a coroutine) stalls every other async
case on it. So when a case times out, its loop is pinged. A loop that doesn't answer is
abandoned (its daemon thread is left behind and counted) and a fresh one serves later
calls. The task the loop was stuck in is the blocker; every other call still on the
abandoned loop is given up at once with :class:`LoopBlocked`, so its case can run again on
the fresh loop instead of waiting for its own deadline and ending as a timeout it did not
cause. A task the agent's coroutine created (``asyncio.gather``, ``create_task``) counts as
its case's (a task factory remembers who created it). Nothing of this costs a successful call
more than two set operations and that bookkeeping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Coroutine
from contextvars import Context, ContextVar, copy_context
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PING_TIMEOUT_SECONDS = 1.0


@dataclass(eq=False)
class Blocked:
    """A loop found blocked: the call whose task it was stuck in, if it was one of ours."""

    blocker: AsyncCall[Any] | None
    """None when the loop was stuck in something else (a plain callback, a child task)."""

    @property
    def by(self) -> str | None:
        """The blocking call's label (the case id), if known."""
        return self.blocker.label if self.blocker is not None else None

    def describe(self) -> str:
        """Who blocked the loop, for messages."""
        if self.blocker is None:
            return "an unidentified callback or task"
        return f"case {self.by}" if self.by else "another call"


class LoopBlocked(Exception):
    """Raised from :meth:`AsyncCall.result` for a call given up with its blocked loop.

    The call did nothing wrong: another task blocked the loop it was queued or awaiting on.
    """

    def __init__(self, blocked: Blocked) -> None:
        super().__init__(
            f"the shared event loop was blocked by {blocked.describe()} (a blocking call "
            "inside async def); this attempt was abandoned with that loop"
        )
        self.blocked = blocked


_current_call: ContextVar[AsyncCall[Any] | None] = ContextVar("fluxloop_async_call", default=None)
"""The call whose task (or a task it created) is running: child tasks inherit it."""


@dataclass(eq=False)
class _Loop:
    """One event loop, its thread, and the calls submitted to it that have not finished."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    calls: set[AsyncCall[Any]] = field(default_factory=set)
    blocked: Blocked | None = None
    children: weakref.WeakKeyDictionary[asyncio.Task[Any], AsyncCall[Any]] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    """Tasks a call's coroutine created (``gather``, ``create_task``): a blocking tool call
    in one of them is still that call's fault."""

    def task_factory(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        context: Context | None = None,
    ) -> asyncio.Task[Any]:
        """Create a task as asyncio would, remembering which call's code created it."""
        if context is None:
            task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop)
        else:
            task = asyncio.Task(coro, loop=loop, context=context)  # type: ignore[call-arg]
        owner = _current_call.get()  # the creator's context: a case's coroutine, or none
        if owner is not None:
            self.children[task] = owner
        return task

    def owner_of(self, task: asyncio.Task[Any] | None) -> AsyncCall[Any] | None:
        """The call whose code runs in ``task`` (its own task, or one it created)."""
        if task is None:
            return None
        own = next((call for call in self.calls if call.task is task), None)
        return own if own is not None else self.children.get(task)


class SharedLoop:
    """A lazily started event loop thread that runs awaitables submitted from any thread."""

    def __init__(
        self, name: str = "fluxloop-async", ping_timeout: float = PING_TIMEOUT_SECONDS
    ) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._current: _Loop | None = None
        self.ping_timeout = ping_timeout
        """How long a loop may take to run a trivial callback before it counts as blocked."""
        self.abandoned = 0
        """Loops given up on because an agent blocked them (their threads leak, as daemons)."""

    def _ensure(self) -> _Loop:
        # Called with self._lock held.
        current = self._current
        if current is None or current.loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
            current = self._current = _Loop(loop, thread)
            loop.set_task_factory(current.task_factory)  # type: ignore[arg-type]
            thread.start()
        return current

    def submit(
        self, awaitable: Awaitable[T], context: Context | None = None, label: str | None = None
    ) -> AsyncCall[T]:
        """Schedule ``awaitable`` on the loop; the task sees the caller's context variables.

        ``label`` names the call (the case id) in messages about a blocked loop.
        """
        ctx = context if context is not None else copy_context()
        call: AsyncCall[T] = AsyncCall(self, label)
        with self._lock:
            home = self._ensure()
            home.calls.add(call)
        call.home = home
        call.loop = home.loop
        call.future = asyncio.run_coroutine_threadsafe(_within(ctx, awaitable, call), home.loop)
        if call.aborted is not None:
            call.future.cancel()  # the loop was found blocked while this call was being made
        return call

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the loop and wait for it (the caller's thread blocks)."""
        return self.submit(awaitable).future.result()

    def responsive(self, timeout: float | None = None) -> bool:
        """True if the current loop runs a trivial callback within ``timeout``."""
        current = self._current
        if current is None:
            return True
        return _answers(current.loop, self.ping_timeout if timeout is None else timeout)

    def blocked(self, call: AsyncCall[Any]) -> Blocked | None:
        """Whether the loop ``call`` was submitted to is blocked, and by which call.

        Pings that loop (up to ``ping_timeout``; once found blocked, the answer is kept).
        A blocked loop is abandoned, and every call on it except the blocker is given up:
        its ``result()`` raises :class:`LoopBlocked` at once.
        """
        home = call.home
        return self._check(home) if home is not None else None

    def replace_if_blocked(self) -> bool:
        """Abandon the current loop if an agent blocks it; returns True if it was replaced."""
        current = self._current
        return current is not None and self._check(current) is not None

    def _check(self, home: _Loop) -> Blocked | None:
        if home.blocked is not None:
            return home.blocked
        if home.loop.is_closed() or _answers(home.loop, self.ping_timeout):
            return None
        # The task running a step right now is the one that stopped the loop answering.
        stuck = asyncio.current_task(home.loop)
        with self._lock:
            if home.blocked is not None:  # another thread got here first
                return home.blocked
            blocker = home.owner_of(stuck)
            home.blocked = Blocked(blocker)
            if self._current is home:
                self._current = None  # the blocked loop's thread is a daemon: it never holds exit
            self.abandoned += 1
            victims = [c for c in home.calls if c is not blocker]
        for victim in victims:
            victim.abort(home.blocked)
        return home.blocked

    def _finished(self, call: AsyncCall[Any]) -> None:
        home = call.home
        if home is not None:
            with self._lock:
                home.calls.discard(call)

    def close(self) -> None:
        """Stop the loop thread (pending tasks are abandoned with the process)."""
        with self._lock:
            current, self._current = self._current, None
        if current is not None and not current.loop.is_closed():
            current.loop.call_soon_threadsafe(current.loop.stop)


class AsyncCall(Generic[T]):
    """One awaitable running on the shared loop: its future and, once started, its task."""

    def __init__(self, owner: SharedLoop, label: str | None = None) -> None:
        self.owner = owner
        self.label = label
        self.home: _Loop | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.task: asyncio.Task[Any] | None = None
        self.finished = threading.Event()
        self.aborted: Blocked | None = None
        """Set when the call was given up because another call blocked its loop."""

    def result(self) -> T:
        """Wait for the result (raises the agent's exception, CancelledError, or
        :class:`LoopBlocked` if the call was given up with its blocked loop)."""
        try:
            return self.future.result()
        except concurrent.futures.CancelledError:
            if self.aborted is not None:
                raise LoopBlocked(self.aborted) from None
            raise

    def cancel(self, grace: float) -> bool:
        """Cancel the task and wait up to ``grace`` for it to end; False if it would not.

        A task that swallows CancelledError, or a loop an agent blocks, keeps running; the
        caller counts it as leaked, and a blocked loop is replaced for later cases.
        """
        self._cancel()
        if self.task is None and self.future.cancelled():
            return True  # never started
        ended = self.finished.wait(grace)
        if not ended:
            self.owner.blocked(self)
        return ended

    def abort(self, blocked: Blocked) -> None:
        """Give the call up because ``blocked`` stopped its loop: the waiting thread gets
        :class:`LoopBlocked`, and the task (if it ever runs again) a cancellation."""
        self.aborted = blocked
        self._cancel()

    def _cancel(self) -> None:
        self.future.cancel()
        loop, task = self.loop, self.task
        if task is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(task.cancel)


def started_tasks() -> list[asyncio.Task[Any]]:
    """The unfinished tasks the running call's code created (``create_task``,
    ``ensure_future``; directly or through tasks it created), other than the running task.

    Call from the call's own task on the shared loop (e.g. after awaiting the agent, to wait
    for the callbacks it scheduled without awaiting them); elsewhere it returns ``[]``. The
    task factory's bookkeeping makes this exact: tasks other cases create on the same loop
    at the same time are not among them.
    """
    call = _current_call.get()
    home = call.home if call is not None else None
    if home is None:
        return []
    running = asyncio.current_task()
    return [
        task
        for task, owner in list(home.children.items())
        if owner is call and task is not running and not task.done()
    ]


def _answers(loop: asyncio.AbstractEventLoop, timeout: float) -> bool:
    answered = threading.Event()
    try:
        loop.call_soon_threadsafe(answered.set)
    except RuntimeError:  # closed in between: nothing left to block
        return True
    return answered.wait(timeout)


async def _within(ctx: Context, awaitable: Awaitable[T], call: AsyncCall[T]) -> T:
    # The task was created in the loop's thread; copy in the caller's context variables
    # (the current trace, the open span) so observations land in the right case.
    for var, value in ctx.items():
        var.set(value)
    task = asyncio.current_task()
    call.task = task
    _current_call.set(call)  # this task's context only; tasks it creates inherit it
    if call.future.cancelled():
        # Given up on (cancel()) before the loop got to it: the agent's code must not run
        # at all, not even up to its first await, for a case that already ended.
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        call.finished.set()
        call.owner._finished(call)
        raise asyncio.CancelledError
    try:
        return await _as_coroutine(awaitable)
    finally:
        call.finished.set()
        call.owner._finished(call)


def _as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if asyncio.iscoroutine(awaitable):
        return awaitable

    async def wrapper() -> T:
        return await awaitable

    return wrapper()
