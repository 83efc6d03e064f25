"""Threads the agent starts see the trace only when given a copy of the context:
``copy_context``, ``ContextExecutor``, ``submit_with_context``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fluxloop
import pytest_fluxloop
from pytest_fluxloop import sdk
from pytest_fluxloop.records import Observation
from pytest_fluxloop.sdk import propagation, trace_context

REPO = Path(__file__).resolve().parents[2]


@fluxloop.tool()
def work(n: int) -> int:
    return n * 10


def spans(observations: list[Observation], name: str) -> list[Observation]:
    return [o for o in observations if o.type == "span_start" and o.name == name]


def test_a_plain_thread_sees_no_trace() -> None:
    """Why the helpers exist: a new thread starts from an empty context."""
    seen: list[object] = []

    def body() -> None:
        seen.append(fluxloop.current_trace())
        work(1)

    with trace_context("t") as ctx:
        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
    assert seen == [None]
    assert ctx.observations == []


def test_copy_context_carries_the_trace_and_span_into_a_thread() -> None:
    @fluxloop.agent()
    def agent() -> None:
        ctx = fluxloop.copy_context()
        thread = threading.Thread(target=ctx.run, args=(work, 2))
        thread.start()
        thread.join()

    with trace_context("t") as trace:
        agent()
    (agent_start,) = spans(trace.observations, "agent")
    (work_start,) = spans(trace.observations, "work")
    assert work_start.parent_id == agent_start.observation_id
    assert work_start.trace_id == "t"
    assert [o.type for o in trace.observations] == ["span_start"] * 2 + ["span_end"] * 2


def test_context_executor_runs_submit_and_map_in_the_submitters_trace() -> None:
    @fluxloop.agent()
    def agent() -> list[int]:
        with fluxloop.ContextExecutor(max_workers=4) as pool:
            first = pool.submit(work, 1).result()
            rest = list(pool.map(work, range(2, 12)))
        return [first, *rest]

    with trace_context("t") as trace:
        assert agent() == [n * 10 for n in range(1, 12)]
    (agent_start,) = spans(trace.observations, "agent")
    works = spans(trace.observations, "work")
    assert len(works) == 11
    assert {o.parent_id for o in works} == {agent_start.observation_id}
    assert sorted(o.input["n"] for o in works) == list(range(1, 12))


def test_context_executor_keeps_concurrent_traces_apart() -> None:
    pool = fluxloop.ContextExecutor(max_workers=4)
    barrier = threading.Barrier(2)
    traces = {}

    def case(name: str) -> None:
        with trace_context(name) as ctx:
            barrier.wait()  # both cases submit at the same time
            futures = [pool.submit(work, n) for n in range(20)]
            for future in futures:
                future.result()
        traces[name] = ctx

    threads = [threading.Thread(target=case, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.shutdown()
    for name in ("a", "b"):
        observations = traces[name].observations
        assert len(observations) == 40
        assert {o.trace_id for o in observations} == {name}


def test_the_context_is_the_one_at_submission() -> None:
    gate = threading.Event()

    def later() -> int:
        gate.wait(5)
        return work(3)

    with fluxloop.ContextExecutor(max_workers=1) as pool:
        with trace_context("t") as trace:
            future = pool.submit(later)
        gate.set()  # the trace is no longer current here; the task still has it
        assert future.result() == 30
    assert [o.name for o in trace.observations] == ["work", "work"]


def test_submit_with_context_works_with_any_thread_pool() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool, trace_context("t") as trace:
        future = fluxloop.submit_with_context(pool, work, n=4)
        plain = pool.submit(work, 5)  # not propagated: records nothing
        assert (future.result(), plain.result()) == (40, 50)
    assert [o.input for o in spans(trace.observations, "work")] == [{"n": 4}]


def test_context_executor_is_a_thread_pool_executor() -> None:
    assert issubclass(fluxloop.ContextExecutor, ThreadPoolExecutor)


def test_names_are_exported_everywhere() -> None:
    for name in ("copy_context", "ContextExecutor", "submit_with_context"):
        value = getattr(propagation, name)
        assert getattr(sdk, name) is value
        assert getattr(pytest_fluxloop, name) is value
        assert getattr(fluxloop, name) is value
        for module in (sdk, pytest_fluxloop, fluxloop):
            assert name in module.__all__


def test_import_fluxloop_loads_the_thread_helpers_only_when_used() -> None:
    code = (
        "import json, sys, fluxloop\n"
        "before = 'concurrent.futures' in sys.modules\n"
        "fluxloop.copy_context\n"
        "print(json.dumps([before, 'concurrent.futures' in sys.modules]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [False, True]
