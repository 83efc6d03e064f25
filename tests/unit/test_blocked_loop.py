"""One async case blocks the shared event loop while others are in flight (issue 8, item 8).

Real executor, real scheduler threads, real event loops: three async cases run at once
(``parallel_runs: 3``), one of them calls ``time.sleep`` inside ``async def``. Only that case
may end as ``timeout``; the two it held up are run again on a fresh loop, succeed, and say
which case blocked their loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.engine_helpers import isolated_imports, make_case, target_of

from pytest_fluxloop.engine import CaseExecutor, RunSettings
from pytest_fluxloop.engine.async_loop import SharedLoop
from pytest_fluxloop.engine.scheduler import CaseScheduler
from pytest_fluxloop.records import TraceRecord

# Each test waits out a 0.5 s timeout and a 0.3 s ping of the blocked loop.
pytestmark = pytest.mark.slow

TIMEOUT = 0.5
PING = 0.3
GUARD = 10.0


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


class Agent:
    """``block`` sleeps on the loop until released; every other input awaits briefly."""

    def __init__(self) -> None:
        self.blocking = threading.Event()
        self.release = threading.Event()
        self.loops: dict[str, list[int]] = {}
        self.calls: dict[str, int] = {}

    async def run(self, input_text: str) -> str:
        self.calls[input_text] = self.calls.get(input_text, 0) + 1
        self.loops.setdefault(input_text, []).append(id(asyncio.get_running_loop()))
        if input_text == "block":
            self.blocking.set()
            # A blocking call inside async def: the loop can't run anything else.
            self.release.wait(GUARD)
            return "late"
        while not self.blocking.is_set():  # in flight on the loop when it gets blocked
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)
        return f"ok {input_text}"


@pytest.fixture
def agent() -> Iterator[Agent]:
    made = Agent()
    yield made
    made.release.set()  # let the abandoned loop's thread finish


def run_three(agent: Agent, max_retries: int) -> dict[str, TraceRecord]:
    async def entry(input_text: str) -> Any:
        return await agent.run(input_text)

    executor = CaseExecutor(
        target_of(entry),
        RunSettings(timeout_seconds=TIMEOUT, max_retries=max_retries, backoff_base=0.01),
        async_loop=SharedLoop(ping_timeout=PING),
    )
    scheduler = CaseScheduler(executor.run, 3)
    cases = {text: make_case(text) for text in ("a", "block", "b")}
    scheduler.schedule(cases.values())
    t0 = time.monotonic()
    records = {text: scheduler.result(case).record for text, case in cases.items()}
    assert time.monotonic() - t0 < GUARD
    assert executor.async_loop.abandoned == 1
    return records


@pytest.mark.parametrize("max_retries", [0, 2])
def test_only_the_blocking_case_times_out(agent: Agent, max_retries: int) -> None:
    records = run_three(agent, max_retries)
    blocker = records["block"]
    assert blocker.status == "timeout"
    assert blocker.error is not None and blocker.error.kind == "timeout"
    assert "blocking the shared event loop" in blocker.error.message
    # Not retried, whatever max_retries says: a retry would block every other case again.
    assert blocker.attempts == 1 and agent.calls["block"] == 1

    for text in ("a", "b"):
        record = records[text]
        assert record.status == "success", record.error
        assert record.output == f"ok {text}"
        assert record.attempts == 2
        # Run again on a fresh loop (its first attempt was queued or suspended on the blocked
        # one), and the record says why and who blocked the first one.
        assert agent.loops[text][-1] != agent.loops["block"][0]
        assert agent.calls[text] <= 2
        notices = [o for o in record.observations if o.name == "loop_blocked"]
        assert len(notices) == 1
        assert notices[0].type == "notice"
        assert notices[0].metadata["blocked_by"] == blocker.case_id
        assert blocker.case_id in (notices[0].error or "")
        # The fresh attempt is not one of its retries: no retry notice, no backoff.
        assert not [o for o in record.observations if o.type == "retry"]
