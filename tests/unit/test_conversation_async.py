"""Multi-turn conversations with async agents, and under the case deadline."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.conversation_helpers import Scripted, cont, stop
from support.engine_helpers import (
    FakeSleep,
    isolated_imports,
    make_case,
    resolve_in,
    target_of,
    unique,
    write_module,
)

from pytest_fluxloop.config.models import MultiTurnConfig
from pytest_fluxloop.engine import CaseExecutor, RunSettings
from pytest_fluxloop.engine.drivers.conversation import MultiTurnConversation

HANG_GUARD_S = 10.0  # generous: only stops a broken test from hanging


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


ASYNC_AGENT = """
import asyncio

LOCK = asyncio.Lock()
STATE = {}


async def run(input_text: str) -> str:
    loop = asyncio.get_running_loop()
    STATE.setdefault("loops", []).append(id(loop))
    # A future made on turn 1 stands in for a client bound to the first loop.
    future = STATE.setdefault("future", loop.create_future())
    if not future.done():
        future.set_result("ready")
    ready = await future

    async def hold() -> None:
        async with LOCK:
            await asyncio.sleep(0.001)

    await asyncio.gather(hold(), hold())  # contention binds the lock to this loop
    return f"{ready}: {input_text}"
"""


def test_async_agent_keeps_one_event_loop_across_turns(tmp_path: Path) -> None:
    name = unique("async_agent")
    write_module(tmp_path, f"{name}.py", ASYNC_AGENT)
    target = resolve_in(tmp_path, f"{name}:run")
    executor = CaseExecutor(
        target,
        RunSettings(timeout_seconds=HANG_GUARD_S, max_retries=0),
        sleep=FakeSleep(),
        driver=MultiTurnConversation(
            MultiTurnConfig(enabled=True), Scripted(cont("two"), cont("three"), stop()), None
        ),
    )
    record = executor.run(make_case("one")).record
    assert record.status == "success", record.error
    assert record.output == "ready: three"
    assert record.multi_turn is not None and record.multi_turn.turn_count == 3
    assert len(set(sys.modules[name].STATE["loops"])) == 1


def test_async_agent_error_on_a_later_turn_is_an_agent_error(tmp_path: Path) -> None:
    name = unique("async_agent")
    write_module(
        tmp_path,
        f"{name}.py",
        """
        import asyncio

        async def run(input_text: str) -> str:
            await asyncio.sleep(0)
            if input_text == "two":
                raise KeyError("no such booking")
            return "fine"
        """,
    )
    executor = CaseExecutor(
        resolve_in(tmp_path, f"{name}:run"),
        RunSettings(timeout_seconds=HANG_GUARD_S, max_retries=0),
        sleep=FakeSleep(),
        driver=MultiTurnConversation(
            MultiTurnConfig(enabled=True), Scripted(cont("two"), stop()), None
        ),
    )
    record = executor.run(make_case("one")).record
    assert record.status == "error"
    assert record.error is not None
    assert (record.error.kind, record.error.type) == ("agent", "KeyError")
    assert record.conversation_state is not None
    assert len(record.conversation_state["turns"]) == 3


def test_conversation_stops_asking_the_supervisor_after_the_case_deadline() -> None:
    release = threading.Event()

    def stuck(input_text: str) -> str:
        release.wait(HANG_GUARD_S)
        return "late"

    sup = Scripted(*(cont("more?") for _ in range(10)))
    case = make_case("hi")
    executor = CaseExecutor(
        target_of(stuck),
        RunSettings(timeout_seconds=0.3, max_retries=0),
        sleep=FakeSleep(),
        driver=MultiTurnConversation(
            MultiTurnConfig(enabled=True, max_turns=10), sup, None, timeout_seconds=0.3
        ),
    )
    assert executor.run(case).record.status == "timeout"
    release.set()  # the abandoned turn now returns, after the deadline
    # The abandoned attempt finishes (its thread goes back to the idle pool, renamed).
    deadline = time.monotonic() + HANG_GUARD_S
    while any(t.name == f"fluxloop-{case.case_id}" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the abandoned conversation never ended"
        time.sleep(0.01)
    assert sup.requests == []  # nobody pays for decisions that can't be recorded
