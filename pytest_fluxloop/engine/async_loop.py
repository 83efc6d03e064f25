"""One long-lived event loop for async agents, on its own daemon thread.

Why one loop rather than ``asyncio.run`` per case: agents commonly keep module-level async
clients (``AsyncOpenAI()``, an ``httpx.AsyncClient``) whose connection pools belong to the
loop that first used them; a fresh loop per case breaks them. One shared loop is what the
agent's own async application looks like, and lets many async cases be in flight at once.

An agent that blocks the loop (``time.sleep`` inside a coroutine) would stall every other
async case, so after a timeout the loop is pinged; a loop that doesn't answer is abandoned
(its daemon thread is left behind and counted) and a fresh one serves later cases.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Coroutine
from contextvars import Context, copy_context
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PING_TIMEOUT_SECONDS = 1.0


class SharedLoop:
    """A lazily started event loop thread that runs awaitables submitted from any thread."""

    def __init__(self, name: str = "fluxloop-async") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.abandoned = 0
        """Loops given up on because an agent blocked them (their threads leak, as daemons)."""

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def submit(self, awaitable: Awaitable[T], context: Context | None = None) -> AsyncCall[T]:
        """Schedule ``awaitable`` on the loop; the task sees the caller's context variables."""
        ctx = context if context is not None else copy_context()
        call: AsyncCall[T] = AsyncCall(self)
        loop = self._ensure()
        call.loop = loop
        call.future = asyncio.run_coroutine_threadsafe(_within(ctx, awaitable, call), loop)
        return call

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the loop and wait for it (the caller's thread blocks)."""
        return self.submit(awaitable).future.result()

    def responsive(self, timeout: float = PING_TIMEOUT_SECONDS) -> bool:
        """True if the loop runs a trivial callback within ``timeout``."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return True
        answered = threading.Event()
        loop.call_soon_threadsafe(answered.set)
        return answered.wait(timeout)

    def replace_if_blocked(self) -> bool:
        """Abandon the loop if an agent blocks it; returns True if it was replaced."""
        if self.responsive():
            return False
        with self._lock:
            self._loop = None  # the blocked loop's thread is a daemon: it never holds exit
            self.abandoned += 1
        return True

    def close(self) -> None:
        """Stop the loop thread (pending tasks are abandoned with the process)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)


class AsyncCall(Generic[T]):
    """One awaitable running on the shared loop: its future and, once started, its task."""

    def __init__(self, owner: SharedLoop) -> None:
        self.owner = owner
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.task: asyncio.Task[Any] | None = None
        self.finished = threading.Event()

    def result(self) -> T:
        """Wait for the result (raises the agent's exception, or CancelledError)."""
        return self.future.result()

    def cancel(self, grace: float) -> bool:
        """Cancel the task and wait up to ``grace`` for it to end; False if it would not.

        A task that swallows CancelledError, or a loop an agent blocks, keeps running; the
        caller counts it as leaked, and a blocked loop is replaced for later cases.
        """
        self.future.cancel()
        loop, task = self.loop, self.task
        if task is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(task.cancel)
        if task is None and self.future.cancelled():
            return True  # never started
        ended = self.finished.wait(grace)
        if not ended:
            self.owner.replace_if_blocked()
        return ended


async def _within(ctx: Context, awaitable: Awaitable[T], call: AsyncCall[T]) -> T:
    # The task was created in the loop's thread; copy in the caller's context variables
    # (the current trace, the open span) so observations land in the right case.
    for var, value in ctx.items():
        var.set(value)
    task = asyncio.current_task()
    call.task = task
    if call.future.cancelled():
        # Given up on (cancel()) before the loop got to it: the agent's code must not run
        # at all, not even up to its first await, for a case that already ended.
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        call.finished.set()
        raise asyncio.CancelledError
    try:
        return await _as_coroutine(awaitable)
    finally:
        call.finished.set()


def _as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if asyncio.iscoroutine(awaitable):
        return awaitable

    async def wrapper() -> T:
        return await awaitable

    return wrapper()
