"""Carry the current trace into threads the agent starts.

The trace a FluxLoop case (or an :func:`~pytest_fluxloop.sdk.instrument` block) records
into, and the span its calls nest under, live in ContextVars. asyncio tasks copy them, but
a thread the agent starts does not: code running there sees no trace, and its decorated
calls record nothing. Run that code in a copy of the starting context instead::

    ctx = fluxloop.copy_context()
    threading.Thread(target=ctx.run, args=(work, item)).start()

    with fluxloop.ContextExecutor(max_workers=4) as pool:   # a ThreadPoolExecutor
        results = list(pool.map(work, items))

    future = fluxloop.submit_with_context(existing_pool, work, item)

Spans recorded there join the trace under the span that was current when the task was
submitted. One copy serves one task at a time (``Context.run`` refuses to enter a context
that another thread is running), so each task gets its own. Threads only: a process pool
cannot take a context.

This module is imported on first use of one of its names (``import fluxloop`` does not
load :mod:`concurrent.futures` and the ``logging`` it imports).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["ContextExecutor", "copy_context", "submit_with_context"]

P = ParamSpec("P")
T = TypeVar("T")


def copy_context() -> contextvars.Context:
    """A copy of the current context, with the current trace and span in it.

    ``ctx.run(fn, *args)`` runs ``fn`` in it (in any thread), so what ``fn`` records goes
    to the trace that was current here. Use one copy per thread at a time.
    """
    return contextvars.copy_context()


def _runner_in_a_copy(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn``, run in a copy of the context current now (taken now, used when called)."""
    return functools.partial(contextvars.copy_context().run, fn)


def submit_with_context(
    executor: Executor, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> Future[T]:
    """``executor.submit(fn, *args, **kwargs)``, run in a copy of the submitting context (the
    current trace and span), for any thread-based executor."""
    return executor.submit(_runner_in_a_copy(fn), *args, **kwargs)


class ContextExecutor(ThreadPoolExecutor):
    """A :class:`~concurrent.futures.ThreadPoolExecutor` whose tasks run in a copy of the
    context that submitted them, so they record into the submitter's trace.

    ``submit`` copies the context at each call; ``map`` submits every call at once, from the
    calling thread, so each runs in a copy of the context ``map`` was called in.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the current context."""
        return super().submit(_runner_in_a_copy(fn), *args, **kwargs)
