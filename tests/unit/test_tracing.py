"""The tracing SDK: ``@fluxloop.agent()`` & co. record observations in the current trace."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.engine_helpers import isolated_imports, make_case, target_of

import fluxloop
from pytest_fluxloop.engine import CaseExecutor, RunSettings
from pytest_fluxloop.records import Observation
from pytest_fluxloop.sdk import current_trace, decorators, trace_context
from pytest_fluxloop.sdk.context import current_span_id


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def of_type(observations: list[Observation], kind: str) -> list[Observation]:
    return [o for o in observations if o.type == kind]


# --------------------------------------------------------------------------- import weight


def test_import_fluxloop_imports_no_llm_client(tmp_path: Path) -> None:
    code = (
        "import sys, fluxloop\n"
        "heavy = ('openai', 'anthropic', 'pytest', '_pytest', 'opentelemetry')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(bad)\n"
        "assert callable(fluxloop.agent)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- spans


def test_sync_agent_records_span_start_and_end() -> None:
    @fluxloop.agent()
    def support(question: str, *, tone: str = "kind") -> dict[str, str]:
        return {"answer": question.upper(), "tone": tone}

    with trace_context("trace-1") as ctx:
        result = support("hi", tone="brief")
    assert result == {"answer": "HI", "tone": "brief"}
    start, end = ctx.observations
    assert (start.type, end.type) == ("span_start", "span_end")
    assert start.trace_id == end.trace_id == "trace-1"
    assert start.name == end.name == "support"
    assert start.input == {"question": "hi", "tone": "brief"}
    assert start.metadata["kind"] == "agent"
    assert start.observation_id and end.observation_id == start.observation_id
    assert start.parent_id is None and end.parent_id is None
    assert end.output == {"answer": "HI", "tone": "brief"}
    assert end.error is None
    assert end.duration_ms is not None and end.duration_ms >= 0
    assert start.timestamp <= end.timestamp


def test_async_agent_records_span_start_and_end() -> None:
    @fluxloop.agent()
    async def support(question: str) -> str:
        await asyncio.sleep(0.02)
        return question[::-1]

    with trace_context("trace-async") as ctx:
        result = asyncio.run(support("abc"))
    assert result == "cba"
    start, end = ctx.observations
    assert (start.type, end.type) == ("span_start", "span_end")
    assert start.trace_id == end.trace_id == "trace-async"
    assert start.input == {"question": "abc"}
    assert end.output == "cba"
    assert end.duration_ms is not None and end.duration_ms >= 15


@pytest.mark.parametrize("is_async", [False, True])
def test_error_is_recorded_and_propagates(is_async: bool) -> None:
    if is_async:

        @fluxloop.agent()
        async def broken(question: str) -> str:
            raise ValueError(f"cannot answer {question}")

        def call() -> Any:
            return asyncio.run(broken("q"))
    else:

        @fluxloop.agent()
        def broken(question: str) -> str:
            raise ValueError(f"cannot answer {question}")

        def call() -> Any:
            return broken("q")

    with trace_context("trace-err") as ctx, pytest.raises(ValueError, match="cannot answer q"):
        call()
    start, end = ctx.observations
    assert end.type == "span_end"
    assert end.error == "ValueError: cannot answer q"
    assert end.output is None
    assert end.duration_ms is not None
    assert end.observation_id == start.observation_id
    assert current_span_id.get() is None  # every span closed


def test_nested_spans_get_the_outer_span_as_parent() -> None:
    @fluxloop.tool()
    def lookup(term: str) -> str:
        fluxloop.event("looked_up", term=term)
        return f"def({term})"

    @fluxloop.agent()
    def outer(question: str) -> str:
        return lookup(question) + "!"

    with trace_context("trace-nested") as ctx:
        assert outer("x") == "def(x)!"
    names = [(o.type, o.name) for o in ctx.observations]
    assert names == [
        ("span_start", "outer"),
        ("span_start", "lookup"),
        ("event", "looked_up"),
        ("span_end", "lookup"),
        ("span_end", "outer"),
    ]
    outer_start, inner_start, event, inner_end, outer_end = ctx.observations
    assert outer_start.parent_id is None
    assert inner_start.parent_id == outer_start.observation_id
    assert inner_start.metadata["kind"] == "tool"
    assert event.parent_id == inner_start.observation_id
    assert inner_end.parent_id == outer_start.observation_id
    assert outer_end.parent_id is None
    assert current_span_id.get() is None  # every span closed


def test_concurrent_async_children_get_the_outer_span_as_parent() -> None:
    """Sibling spans awaited together (asyncio.gather) are children of the caller, not of
    each other."""

    @fluxloop.tool()
    async def slow(x: int) -> int:
        await asyncio.sleep(0.05)
        return x

    @fluxloop.tool()
    async def fast(x: int) -> int:
        await asyncio.sleep(0.01)
        return x

    @fluxloop.agent()
    async def outer(question: str) -> list[int]:
        return list(await asyncio.gather(slow(1), fast(2)))

    with trace_context("trace-gather") as ctx:
        assert asyncio.run(outer("q")) == [1, 2]
    outer_start = next(o for o in ctx.observations if o.name == "outer")
    for name in ("slow", "fast"):
        start = next(o for o in ctx.observations if o.name == name and o.type == "span_start")
        assert start.parent_id == outer_start.observation_id, (
            f"{name}'s parent is {start.parent_id}, expected outer {outer_start.observation_id}"
        )


def test_outside_a_trace_the_decorator_calls_straight_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_record(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("recorded a span outside a trace")

    monkeypatch.setattr(decorators, "_start", must_not_record)
    monkeypatch.setattr(decorators, "_end", must_not_record)

    @fluxloop.agent()
    def plain(question: str) -> str:
        return question + "?"

    @fluxloop.agent()
    async def coro(question: str) -> str:
        return question + "!"

    assert current_trace() is None
    assert plain("a") == "a?"
    assert asyncio.run(coro("b")) == "b!"
    fluxloop.event("ignored", k=1)  # no-op, no error
    with pytest.raises(ZeroDivisionError):
        fluxloop.agent()(lambda: 1 / 0)()


def test_trace_context_is_restored_after_the_block() -> None:
    assert current_trace() is None
    with trace_context("outer") as outer:
        with trace_context("inner") as inner:
            assert current_trace() is inner
            fluxloop.event("in_inner")
        assert current_trace() is outer
        fluxloop.event("in_outer")
    assert current_trace() is None
    assert [o.name for o in inner.observations] == ["in_inner"]
    assert [o.name for o in outer.observations] == ["in_outer"]
    assert outer.observations[0].trace_id == "outer"


# --------------------------------------------------------------------------- concurrency


@fluxloop.agent()
def shared_agent(tag: str, n: int) -> str:
    fluxloop.event("step", tag=tag, n=n)
    return f"{tag}-{n}"


def test_threads_with_their_own_trace_context_never_mix() -> None:
    barrier = threading.Barrier(4)
    contexts: dict[str, Any] = {}

    def worker(tag: str) -> None:
        with trace_context(f"trace-{tag}") as ctx:
            contexts[tag] = ctx
            barrier.wait()
            for n in range(200):
                shared_agent(tag, n)

    threads = [threading.Thread(target=worker, args=(tag,)) for tag in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert set(contexts) == set("abcd")
    for tag, ctx in contexts.items():
        assert len(ctx.observations) == 600  # start, event, end × 200
        assert {o.trace_id for o in ctx.observations} == {f"trace-{tag}"}
        starts = of_type(ctx.observations, "span_start")
        assert [s.input for s in starts] == [{"tag": tag, "n": n} for n in range(200)]
        events = of_type(ctx.observations, "event")
        assert {e.metadata["tag"] for e in events} == {tag}
        assert current_span_id.get() is None  # every span closed


def test_concurrent_executors_keep_observations_per_case() -> None:
    @fluxloop.agent()
    def run(input_text: str) -> str:
        for i in range(50):
            fluxloop.event("tick", who=input_text, i=i)
        return input_text

    target = target_of(run)
    executors = [CaseExecutor(target, RunSettings(max_retries=0)) for _ in range(2)]
    barrier = threading.Barrier(4)
    records: dict[str, Any] = {}

    def worker(i: int) -> None:
        barrier.wait()
        text = f"case-{i}"
        records[text] = executors[i % 2].run(make_case(text)).record

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(records) == 4
    for text, record in records.items():
        assert record.status == "success"
        assert len(record.observations) == 52
        assert {o.trace_id for o in record.observations} == {record.trace_id}
        ticks = of_type(record.observations, "event")
        assert {t.metadata["who"] for t in ticks} == {text}
        starts = of_type(record.observations, "span_start")
        assert [s.input for s in starts] == [{"input_text": text}]
    assert len({r.trace_id for r in records.values()}) == 4


def test_executor_records_agent_spans_with_its_trace_id() -> None:
    @fluxloop.agent(name="support_bot")
    def run(input_text: str, persona: str | None = None) -> str:
        return f"{persona}: {input_text}"

    record = CaseExecutor(target_of(run), RunSettings()).run(make_case("hi")).record
    start, end = record.observations
    assert start.trace_id == end.trace_id == record.trace_id
    assert start.name == "support_bot"
    assert start.input == {"input_text": "hi", "persona": "novice_user"}
    assert end.output == "novice_user: hi"


def test_executor_keeps_observations_of_a_failed_case() -> None:
    @fluxloop.agent()
    def run(input_text: str) -> str:
        fluxloop.event("before_failure")
        raise KeyError("missing")

    record = CaseExecutor(target_of(run), RunSettings(max_retries=0)).run(make_case()).record
    assert record.status == "error"
    assert [o.type for o in record.observations] == ["span_start", "event", "span_end"]
    assert record.observations[-1].error == "KeyError: 'missing'"


# --------------------------------------------------------------------------- decorator forms


def test_agent_without_parentheses() -> None:
    @fluxloop.agent
    def bare(question: str) -> str:
        return question

    with trace_context("t") as ctx:
        assert bare("x") == "x"
    assert [o.name for o in ctx.observations] == ["bare", "bare"]


def test_agent_with_name_and_metadata() -> None:
    @fluxloop.agent(name="support", team="cx")
    def handle(question: str) -> str:
        return question

    with trace_context("t") as ctx:
        handle("x")
    start = ctx.observations[0]
    assert start.name == "support"
    assert start.metadata == {"kind": "agent", "team": "cx"}


def test_trace_and_tool_kinds() -> None:
    @fluxloop.trace()
    def step(x: int) -> int:
        return x

    @fluxloop.tool(name="calculator")
    def calc(x: int) -> int:
        return step(x) * 2

    with trace_context("t") as ctx:
        assert calc(2) == 4
    kinds = [(o.name, o.metadata.get("kind")) for o in of_type(ctx.observations, "span_start")]
    assert kinds == [("calculator", "tool"), ("step", "trace")]


def test_event_records_data() -> None:
    with trace_context("t-event") as ctx:
        fluxloop.event("x", k=1, payload={"nested": [1, 2]}, raw=b"bytes")
    (obs,) = ctx.observations
    assert obs.type == "event"
    assert obs.name == "x"
    assert obs.trace_id == "t-event"
    assert obs.parent_id is None
    assert obs.metadata == {"k": 1, "payload": {"nested": [1, 2]}, "raw": "bytes"}


def test_methods_do_not_record_self() -> None:
    class Bot:
        @fluxloop.agent()
        def reply(self, question: str) -> str:
            return question

        @classmethod
        @fluxloop.agent()
        def build(cls, question: str) -> str:
            return question

    with trace_context("t") as ctx:
        Bot().reply("q")
        Bot.build("c")
    starts = of_type(ctx.observations, "span_start")
    assert [s.input for s in starts] == [{"question": "q"}, {"question": "c"}]


def test_unserialisable_arguments_and_outputs_are_made_json_safe() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    @fluxloop.agent()
    def odd(obj: Any) -> Any:
        return {"nan": float("nan"), "obj": obj}

    with trace_context("t") as ctx:
        odd(Opaque())
    start, end = ctx.observations
    assert start.input == {"obj": "<opaque>"}
    assert end.output == {"nan": None, "obj": "<opaque>"}
    for obs in ctx.observations:
        Observation.model_validate_json(obs.model_dump_json())


def test_wraps_keeps_signature_and_coroutine_nature() -> None:
    def sync_fn(question: str, *, limit: int = 3) -> str:
        """Sync docstring."""
        return question

    async def async_fn(question: str, persona: str | None = None) -> str:
        """Async docstring."""
        return question

    for decorate in (fluxloop.agent(), fluxloop.agent, fluxloop.tool(), fluxloop.trace()):
        wrapped_sync = decorate(sync_fn)
        wrapped_async = decorate(async_fn)
        assert inspect.signature(wrapped_sync) == inspect.signature(sync_fn)
        assert inspect.signature(wrapped_async) == inspect.signature(async_fn)
        assert inspect.iscoroutinefunction(wrapped_async)
        assert not inspect.iscoroutinefunction(wrapped_sync)
        assert wrapped_sync.__name__ == "sync_fn"
        assert wrapped_sync.__doc__ == "Sync docstring."
        assert wrapped_async.__wrapped__ is async_fn  # type: ignore[attr-defined]


def test_decorated_async_agent_is_resolved_as_async_and_bound_by_name() -> None:
    @fluxloop.agent()
    async def run(query: str, seed: int | None = None) -> list[Any]:
        return [query, seed]

    target = target_of(run)
    assert target.is_async is True
    assert target.binding.input_param == "query"
    assert target.binding.extras == ("seed",)
    record = CaseExecutor(target, RunSettings()).run(make_case("q", seed=9)).record
    assert record.output == ["q", 9]
    assert [o.type for o in record.observations] == ["span_start", "span_end"]
