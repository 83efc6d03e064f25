"""How a decorated call's span ends, for every kind of function and every way it can end:
finished, closed, collected unfinished, raised. A span ends exactly once, always."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import fluxloop
from pytest_fluxloop.records import Observation
from pytest_fluxloop.sdk import trace_context
from pytest_fluxloop.sdk.context import acting_as, current_span_id

KINDS = ("function", "coroutine", "generator", "async_generator")


def make(kind: str, fail: bool, cleanups: list[str]) -> Callable[[], Any]:
    """A decorated function of ``kind`` that produces 1 (then 2), or raises after the 1."""
    if kind == "function":

        @fluxloop.tool()
        def function() -> int:
            if fail:
                raise RuntimeError("boom")
            return 1

        return function
    if kind == "coroutine":

        @fluxloop.tool()
        async def coroutine() -> int:
            try:
                await asyncio.sleep(0)  # suspends once: a place to close it
                if fail:
                    raise RuntimeError("boom")
                return 1
            finally:
                cleanups.append(kind)

        return coroutine
    if kind == "generator":

        @fluxloop.tool()
        def generator() -> Iterator[int]:
            try:
                yield 1
                if fail:
                    raise RuntimeError("boom")
                yield 2
            finally:
                cleanups.append(kind)

        return generator

    @fluxloop.tool()
    async def async_generator() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(0)
            if fail:
                raise RuntimeError("boom")
            yield 2
        finally:
            cleanups.append(kind)

    return async_generator


async def _drain(agen: AsyncIterator[int]) -> list[int]:
    return [item async for item in agen]


def run_to_the_end(kind: str, fn: Callable[[], Any]) -> Any:
    if kind == "function":
        return fn()
    if kind == "coroutine":
        return asyncio.run(fn())
    if kind == "generator":
        return list(fn())
    return asyncio.run(_drain(fn()))


def close_early(kind: str, fn: Callable[[], Any]) -> None:
    if kind == "coroutine":
        coro = fn()
        coro.send(None)  # now suspended in asyncio.sleep(0)
        coro.close()
    elif kind == "generator":
        gen = fn()
        assert next(gen) == 1
        gen.close()
    else:

        async def main() -> None:
            agen = fn()
            assert await agen.__anext__() == 1
            await agen.aclose()

        asyncio.run(main())


def drop_unfinished(kind: str, fn: Callable[[], Any]) -> None:
    """Start it, then drop the only reference without closing it."""
    if kind == "coroutine":
        coro = fn()
        coro.send(None)
        del coro
    elif kind == "generator":
        gen = fn()
        assert next(gen) == 1
        del gen
    else:

        async def main() -> None:
            agen = fn()
            assert await agen.__anext__() == 1
            del agen
            # The loop's finalizer hook schedules aclose(); let it run before main() ends
            # (asyncio.run's own shutdown_asyncgens() would otherwise close it).
            for _ in range(5):
                await asyncio.sleep(0)
            assert [o.type for o in current_observations()] == ["span_start", "span_end"]

        asyncio.run(main())
    gc.collect()


def current_observations() -> list[Observation]:
    ctx = fluxloop.current_trace()
    assert ctx is not None
    return ctx.observations


def only_span(observations: list[Observation]) -> tuple[Observation, Observation]:
    assert [o.type for o in observations] == ["span_start", "span_end"]
    start, end = observations
    assert end.observation_id == start.observation_id
    assert end.parent_id == start.parent_id
    assert end.kind == start.kind == "tool"
    return start, end


@pytest.mark.parametrize("kind", KINDS)
def test_finished(kind: str) -> None:
    cleanups: list[str] = []
    with trace_context("t") as ctx:
        result = run_to_the_end(kind, make(kind, False, cleanups))
    _, end = only_span(ctx.observations)
    assert end.error is None
    if kind.endswith("generator"):
        assert result == [1, 2]
        assert end.output == [1, 2]
        assert end.metadata == {"items": 2}
    else:
        assert result == 1
        assert end.output == 1
        assert end.metadata == {}
    assert ctx.open_spans == {}
    assert current_span_id.get() is None


@pytest.mark.parametrize("kind", KINDS)
def test_raised(kind: str) -> None:
    cleanups: list[str] = []
    with trace_context("t") as ctx, pytest.raises(RuntimeError, match="boom"):
        run_to_the_end(kind, make(kind, True, cleanups))
    _, end = only_span(ctx.observations)
    assert end.error == "RuntimeError: boom"
    assert end.output is None
    assert end.metadata == ({"items": 1} if kind.endswith("generator") else {})
    assert ctx.open_spans == {}
    assert current_span_id.get() is None


# A plain function call cannot be closed or dropped halfway: it returns or raises.
UNFINISHED_KINDS = ("coroutine", "generator", "async_generator")


@pytest.mark.parametrize("kind", UNFINISHED_KINDS)
def test_closed(kind: str) -> None:
    cleanups: list[str] = []
    with trace_context("t") as ctx:
        close_early(kind, make(kind, False, cleanups))
    _, end = only_span(ctx.observations)
    assert cleanups == [kind]  # the body's finally ran
    assert end.error is None
    if kind == "coroutine":
        assert (end.output, end.metadata) == (None, {"closed": True})
    else:
        assert (end.output, end.metadata) == ([1], {"items": 1, "closed": True})
    assert ctx.open_spans == {}
    assert current_span_id.get() is None


@pytest.mark.parametrize("kind", UNFINISHED_KINDS)
def test_collected_unfinished(kind: str) -> None:
    """Dropped unfinished: Python closes a collected generator or coroutine (asyncio's loop
    hooks close an async generator), so the span ends as closed."""
    cleanups: list[str] = []
    with trace_context("t") as ctx:
        drop_unfinished(kind, make(kind, False, cleanups))
    _, end = only_span(ctx.observations)
    assert cleanups == [kind]
    assert end.error is None
    assert end.metadata == (
        {"closed": True} if kind == "coroutine" else {"items": 1, "closed": True}
    )
    assert ctx.open_spans == {}
    assert current_span_id.get() is None


def test_async_generator_collected_after_its_loop_closed_ends_abandoned() -> None:
    """Its loop's finalizer hook does nothing once the loop is closed, so no close ever runs
    (not even the body's ``finally``): the span ends, marked abandoned, when it is freed."""
    cleanups: list[str] = []
    fn = make("async_generator", False, cleanups)
    with trace_context("t") as ctx:
        agen = fn()

        async def first(agen: AsyncIterator[int]) -> int:
            return await agen.__anext__()  # first iterated on the loop: hooks installed

        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(first(agen)) == 1
        loop.close()
        assert [o.type for o in ctx.observations] == ["span_start"]
        del agen
        gc.collect()
    _, end = only_span(ctx.observations)
    assert cleanups == []  # Python never ran it: nothing closed the generator
    assert end.output == [1]
    assert end.metadata == {"items": 1, "abandoned": True}
    assert ctx.open_spans == {}


def test_async_generator_collected_without_loop_hooks_is_closed() -> None:
    cleanups: list[str] = []
    fn = make("async_generator", False, cleanups)
    with trace_context("t") as ctx:
        agen = fn()
        with pytest.raises(StopIteration) as first:
            agen.__anext__().send(None)  # driven by hand: no event loop, no hooks
        assert first.value.value == 1
        del agen
        gc.collect()
    _, end = only_span(ctx.observations)
    assert cleanups == ["async_generator"]
    assert end.metadata == {"items": 1, "closed": True}


@pytest.mark.parametrize("kind", ["generator", "async_generator"])
def test_generator_still_open_when_its_trace_ends_is_abandoned_once(kind: str) -> None:
    cleanups: list[str] = []
    fn = make(kind, False, cleanups)
    with trace_context("t") as ctx:
        if kind == "generator":
            gen = fn()
            assert next(gen) == 1
            assert ctx.close_open_spans() == 1  # what the engine does when the case ends
            assert list(gen) == [2]  # the consumer goes on reading afterwards
        else:

            async def main() -> None:
                agen = fn()
                assert await agen.__anext__() == 1
                assert ctx.close_open_spans() == 1
                assert [i async for i in agen] == [2]

            asyncio.run(main())
    _, end = only_span(ctx.observations)  # one span_end: the later exhaustion adds none
    assert end.output == [1]
    assert end.metadata == {"items": 1, "abandoned": True}
    assert ctx.close_open_spans() == 0


def test_generator_ended_from_another_thread_keeps_its_parent_and_role() -> None:
    @fluxloop.agent()
    def outer() -> Iterator[int]:
        yield from inner()

    @fluxloop.tool()
    def inner() -> Iterator[int]:
        yield 1
        yield 2

    with trace_context("t") as ctx, acting_as("judge"):
        gen = outer()
        assert next(gen) == 1
    # Read to the end elsewhere: another thread, no trace, another role.
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.extend(gen))
    worker.start()
    worker.join()
    assert done == [2]
    starts = {o.observation_id: o for o in ctx.observations if o.type == "span_start"}
    ends = [o for o in ctx.observations if o.type == "span_end"]
    assert [e.name for e in ends] == ["inner", "outer"]
    for end in ends:
        assert end.parent_id == starts[end.observation_id].parent_id
        assert end.role == "judge"
    assert starts[ends[0].observation_id].parent_id == ends[1].observation_id


def test_coroutine_collected_in_another_context_still_ends_its_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The span's token belongs to the context the coroutine started in; ending it elsewhere
    must not raise from the garbage collector (and must still record the end)."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    cleanups: list[str] = []
    fn = make("coroutine", False, cleanups)
    with trace_context("t") as ctx:
        coro = fn()
        # Started in a context of its own, as an asyncio task's steps are.
        contextvars.copy_context().run(coro.send, None)
    holder = [coro]
    del coro

    def drop() -> None:
        holder.clear()
        gc.collect()

    worker = threading.Thread(target=drop)
    worker.start()
    worker.join()
    assert unraisable == []
    _, end = only_span(ctx.observations)
    assert end.metadata == {"closed": True}
    assert cleanups == ["coroutine"]
