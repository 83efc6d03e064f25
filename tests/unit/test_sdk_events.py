"""``log_event`` (and its earlier name ``event``), ``instrument(type=...)``, and what happens
when a trace reaches its observation limit."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from support.sdk_helpers import fresh_sdk

import fluxloop
import pytest_fluxloop
from pytest_fluxloop import sdk
from pytest_fluxloop.records import OBSERVATION_KINDS, TraceRecord
from pytest_fluxloop.sdk import ObservationType, settings, trace_context
from pytest_fluxloop.sdk.context import CaptureSettings, acting_as, current_trace


@pytest.fixture(autouse=True)
def _clean_sdk_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No FLUXLOOP_* variables, an empty cwd, and the default config before and after."""
    fresh_sdk(monkeypatch, tmp_path)
    yield
    settings._config = None


# --------------------------------------------------------------------------- log_event


def test_log_event_records_an_event_under_the_current_span_with_the_role() -> None:
    @fluxloop.agent()
    def handle(order: str) -> str:
        fluxloop.log_event("cache_miss", key=order, attempt=2)
        return order

    with trace_context("t-1") as ctx, acting_as("supervisor"):
        handle("o-7")
    start, event, _ = ctx.observations
    assert (event.type, event.kind, event.name) == ("event", "event", "cache_miss")
    assert event.trace_id == "t-1"
    assert event.parent_id == start.observation_id
    assert event.role == "supervisor"
    assert event.metadata == {"key": "o-7", "attempt": 2}
    assert (event.input, event.output, event.error) == (None, None, None)


def test_event_is_the_same_function_everywhere() -> None:
    assert fluxloop.event is fluxloop.log_event
    assert pytest_fluxloop.log_event is fluxloop.log_event
    assert pytest_fluxloop.event is sdk.log_event
    assert "log_event" in fluxloop.__all__ and "log_event" in pytest_fluxloop.__all__


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _Client:
    """Something like an SDK client: a lock, a socket-ish handle, no JSON form."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


class _Reply(BaseModel):
    text: str
    extra: Any = None


def test_log_event_never_raises_on_data_without_a_json_form() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    with trace_context("t") as ctx:
        fluxloop.log_event(
            "odd",
            raw=b"\xff\x00binary",
            text=b"utf-8 text",
            client=_Client(),
            reply=_Reply(text="hi", extra=_Unprintable()),
            cycle=cycle,
            unprintable=_Unprintable(),
            nan=float("nan"),
        )
        fluxloop.log_event(42)  # type: ignore[arg-type]  # a name that is not text
    event, numbered = ctx.observations
    data = event.metadata
    json.dumps(data, allow_nan=False)  # JSON as it stands
    assert data["raw"] == {"__bytes__": "/wBiaW5hcnk="}
    assert data["text"] == "utf-8 text"
    assert data["client"].startswith("<") and "_Client" in data["client"]
    assert data["reply"] == {"text": "hi", "extra": "<unrepresentable _Unprintable: RuntimeError>"}
    assert data["cycle"] == [1, "<cycle>"]
    assert data["unprintable"] == "<unrepresentable _Unprintable: RuntimeError>"
    assert data["nan"] is None
    assert numbered.name == "42"


def test_log_event_does_nothing_outside_a_trace_or_when_disabled() -> None:
    assert current_trace() is None
    fluxloop.log_event("nowhere", x=1)
    assert current_trace() is None
    fluxloop.configure(enabled=False)
    with trace_context("t") as ctx:
        fluxloop.log_event("off", x=1)
    assert ctx.observations == []


def test_log_event_from_asyncio_tasks_lands_in_the_trace() -> None:
    async def main() -> None:
        await asyncio.gather(*(asyncio.to_thread(fluxloop.log_event, f"e{i}") for i in range(3)))

    with trace_context("t") as ctx:
        asyncio.run(main())
    assert sorted(o.name for o in ctx.observations) == ["e0", "e1", "e2"]


# --------------------------------------------------------------------------- instrument(type=)


@pytest.mark.parametrize("kind", OBSERVATION_KINDS)
def test_instrument_type_is_the_span_kind_inside_a_trace(kind: str) -> None:
    with trace_context("t") as ctx, fluxloop.instrument("step", type=kind) as run:
        fluxloop.log_event("inside")
    start, inside, end = ctx.observations
    assert run.mode == "span" and run.type == kind
    assert (start.kind, end.kind) == (kind, kind)
    assert start.metadata == {"kind": kind}
    assert inside.parent_id == start.observation_id


def test_instrument_type_accepts_the_enum() -> None:
    with trace_context("t") as ctx, fluxloop.instrument("step", type=ObservationType.TOOL):
        pass
    assert [o.kind for o in ctx.observations] == ["tool", "tool"]


def test_instrument_default_stays_a_trace_span() -> None:
    with trace_context("t") as ctx, fluxloop.instrument("step") as run:
        pass
    assert run.type is None
    start, end = ctx.observations
    assert start.metadata == {"kind": "trace"}
    assert (start.kind, end.kind) == ("span", "span")


def test_instrument_type_outside_a_trace_opens_a_trace_that_names_it() -> None:
    @fluxloop.tool()
    def lookup() -> int:
        return 1

    with fluxloop.instrument("job", type="chain") as run:
        lookup()
    assert run.mode == "trace"
    record = run.record()
    assert record.metadata["type"] == "chain"
    assert [o.kind for o in record.observations] == ["tool", "tool"]
    with fluxloop.instrument("plain") as plain:
        pass
    assert "type" not in plain.record().metadata


@pytest.mark.parametrize("bad", ["trace", "evaluation", "Tool", "", 3, ObservationType.TRACE])
def test_instrument_bad_type_names_the_allowed_values(bad: Any) -> None:
    with pytest.raises(ValueError) as info:
        fluxloop.instrument("x", type=bad)
    message = str(info.value)
    for kind in OBSERVATION_KINDS:
        assert kind in message
    assert repr(bad) in message


# --------------------------------------------------------------------------- trace limit


def test_spans_past_the_limit_are_dropped_and_never_raise() -> None:
    @fluxloop.agent()
    def agent() -> list[int]:
        fluxloop.log_event("before")
        with fluxloop.instrument("block", type="chain"):
            values = [tool(), *generator()]
        values += asyncio.run(collect())
        return values

    @fluxloop.tool()
    def tool() -> int:
        return 1

    @fluxloop.tool()
    def generator() -> Iterator[int]:
        yield 2

    @fluxloop.tool()
    async def coroutine() -> int:
        return 3

    @fluxloop.tool()
    async def async_generator() -> AsyncIterator[int]:
        yield 4

    async def collect() -> list[int]:
        return [await coroutine(), *[i async for i in async_generator()]]

    with trace_context("unlimited") as full:
        assert agent() == [1, 2, 3, 4]
    total = len(full.observations)
    assert total == 13  # 6 spans of 2 observations, and 1 event
    for keep in range(total + 1):
        with trace_context("t", capture=CaptureSettings(max_observations=keep)) as ctx:
            assert agent() == [1, 2, 3, 4]
        assert len(ctx.observations) == keep
        assert ctx.dropped == total - keep
        assert [(o.type, o.name) for o in ctx.observations] == [
            (o.type, o.name) for o in full.observations[:keep]
        ]
        assert ctx.open_spans == {}


def test_standalone_trace_record_counts_dropped_observations() -> None:
    limit = CaptureSettings().max_observations
    with fluxloop.instrument("flood") as run:
        for i in range(limit + 5):
            fluxloop.log_event("tick", i=i)
    record = run.record()
    assert len(record.observations) == limit
    assert record.observations_dropped == 5
    TraceRecord.model_validate(record.model_dump(mode="json"))
