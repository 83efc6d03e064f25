"""CaseExecutor: records, agent errors, timeouts, retries, pacing, odd outputs.

Faults 5-9, 10-13 (retry classification) and 34. Agents are plain functions resolved through
the real resolver (``target_of``); sleeping between attempts goes to a fake sleep.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.engine_helpers import FakeSleep, isolated_imports, make_case, target_of

import pytest_fluxloop
from pytest_fluxloop.engine import CaseExecutor, RunSettings, Target
from pytest_fluxloop.llm.retry import (
    MAX_RETRY_AFTER_SECONDS,
    backoff_delay,
    is_transient,
    retry_after_seconds,
)
from pytest_fluxloop.records import TraceRecord

HANG_GUARD_S = 10.0  # generous: a timeout case must come back well within this
PACKAGE_DIR = str(Path(pytest_fluxloop.__file__).resolve().parent)


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def executor_for(target: Target, sleep: FakeSleep | None = None, **settings: Any) -> CaseExecutor:
    settings.setdefault("timeout_seconds", 10.0)
    return CaseExecutor(target, RunSettings(**settings), sleep=sleep or FakeSleep())


def strict_json(text: str) -> Any:
    """json.loads that rejects NaN/Infinity (invalid JSON that Python would accept)."""

    def reject(constant: str) -> Any:
        raise ValueError(f"non-JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def fluxloop_threads(case_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"fluxloop-{case_id}" and t.is_alive()]


# --------------------------------------------------------------------------- success


def test_success_record_fields() -> None:
    def answer(input_text: str, persona: str | None = None) -> str:
        time.sleep(0.05)
        return f"{persona} asked {input_text}"

    case = make_case(
        "How do I start?",
        case_id="in00-how_do_i_start-novice_user-it1",
        input_index=3,
        persona="novice_user",
        persona_description="new to the product",
        iteration=1,
        seed=4242,
        metadata={"strategy": "rephrase"},
    )
    result = executor_for(target_of(answer)).run(case, trace_id="trace-abc")
    record = result.record
    assert result.output == "novice_user asked How do I start?"
    assert record.trace_id == "trace-abc"
    assert record.case_id == case.case_id
    assert record.iteration == 1
    assert record.persona == "novice_user"
    assert record.persona_description == "new to the product"
    assert record.input == "How do I start?"
    assert record.input_index == 3
    assert record.output == "novice_user asked How do I start?"
    assert record.success is True
    assert record.status == "success"
    assert record.error is None
    assert record.attempts == 1
    assert record.seed == 4242
    assert record.metadata == {"strategy": "rephrase"}
    assert record.duration_ms >= 40  # the agent slept 50 ms
    assert record.started_at.tzinfo is not None
    assert record.started_at <= record.completed_at
    elapsed_ms = (record.completed_at - record.started_at).total_seconds() * 1000
    assert record.duration_ms <= elapsed_ms + 50


def test_trace_id_is_generated_and_unique() -> None:
    executor = executor_for(target_of(lambda input_text: input_text, attr="run"))
    ids = {executor.run(make_case()).record.trace_id for _ in range(5)}
    assert len(ids) == 5
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_async_agent_success() -> None:
    async def run(input_text: str) -> dict[str, str]:
        await asyncio.sleep(0.01)
        return {"reply": input_text[::-1]}

    record = executor_for(target_of(run)).run(make_case("abc")).record
    assert record.status == "success"
    assert record.output == {"reply": "cba"}


# --------------------------------------------------------------------------- fault 8


def buggy_agent(input_text: str) -> str:
    if input_text == "bad":
        raise ValueError(f"cannot handle {input_text!r}")
    return "fine"


def test_agent_value_error_is_an_agent_error_and_not_retried() -> None:
    sleep = FakeSleep()
    executor = executor_for(target_of(buggy_agent), sleep, max_retries=3)
    record = executor.run(make_case("bad")).record
    assert record.success is False
    assert record.status == "error"
    assert record.output is None
    assert record.error is not None
    assert record.error.kind == "agent"
    assert record.error.type == "ValueError"
    assert record.error.message == "cannot handle 'bad'"
    assert record.attempts == 1
    assert sleep.calls == []
    assert not [o for o in record.observations if o.type == "retry"]

    tb = record.error.traceback
    assert tb is not None
    lines, first = inspect.getsourcelines(buggy_agent)
    raise_line = first + next(i for i, line in enumerate(lines) if "raise ValueError" in line)
    assert f'File "{__file__}", line {raise_line}, in buggy_agent' in tb
    assert "ValueError: cannot handle 'bad'" in tb
    assert PACKAGE_DIR not in tb, tb

    # The other cases continue on the same executor.
    assert executor.run(make_case("good")).record.status == "success"


def test_error_record_is_json_serialisable() -> None:
    record = executor_for(target_of(buggy_agent), max_retries=0).run(make_case("bad")).record
    data = strict_json(record.model_dump_json())
    assert data["error"]["type"] == "ValueError"
    assert data["success"] is False


# --------------------------------------------------------------------------- faults 5-7


def sync_hanger(input_text: str) -> str:
    if input_text == "hang":
        time.sleep(30)
    return "done"


@pytest.mark.slow
def test_sync_agent_timeout_leaks_a_daemon_thread() -> None:
    executor = executor_for(target_of(sync_hanger), timeout_seconds=0.5, max_retries=0)
    case = make_case("hang")
    t0 = time.monotonic()
    record = executor.run(case).record
    elapsed = time.monotonic() - t0
    assert elapsed < HANG_GUARD_S
    assert elapsed >= 0.5
    assert record.status == "timeout"
    assert record.success is False
    assert record.output is None
    assert record.error is not None
    assert record.error.kind == "timeout"
    assert "0.5" in record.error.message
    assert executor.leaked_threads == 1
    leaked = fluxloop_threads(case.case_id)
    assert leaked, "the hung agent thread should still be running"
    assert all(t.daemon for t in leaked)
    # The run continues: the next case on the same executor works.
    assert executor.run(make_case("quick")).record.status == "success"
    assert executor.leaked_threads == 1


@pytest.mark.slow
def test_async_agent_blocking_its_loop_still_times_out() -> None:
    async def blocker(input_text: str) -> str:
        time.sleep(30)  # blocks the event loop: cancellation can't get in
        return "late"

    executor = executor_for(target_of(blocker), timeout_seconds=0.5, max_retries=0)
    case = make_case("block")
    t0 = time.monotonic()
    record = executor.run(case).record
    assert time.monotonic() - t0 < HANG_GUARD_S
    assert record.status == "timeout"
    assert record.error is not None and record.error.kind == "timeout"
    assert executor.leaked_threads == 1
    assert all(t.daemon for t in fluxloop_threads(case.case_id))


@pytest.mark.slow
def test_async_agent_swallowing_cancellation_hits_the_hard_deadline() -> None:
    stop = threading.Event()

    async def stubborn(input_text: str) -> str:
        while not stop.is_set():
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                continue  # swallowed
        return "released"

    executor = executor_for(target_of(stubborn), timeout_seconds=0.5, max_retries=0)
    case = make_case("stubborn")
    try:
        t0 = time.monotonic()
        record = executor.run(case).record
        assert time.monotonic() - t0 < HANG_GUARD_S
        assert record.status == "timeout"
        assert record.error is not None and record.error.kind == "timeout"
        assert executor.leaked_threads == 1
        assert all(t.daemon for t in fluxloop_threads(case.case_id))
    finally:
        stop.set()  # let the leaked thread end


def test_async_agent_awaiting_is_cancelled_cleanly() -> None:
    cancelled = threading.Event()

    async def sleeper(input_text: str) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    executor = executor_for(target_of(sleeper), timeout_seconds=0.5, max_retries=0)
    case = make_case("sleep")
    t0 = time.monotonic()
    record = executor.run(case).record
    assert time.monotonic() - t0 < HANG_GUARD_S
    assert record.status == "timeout"
    assert record.error is not None and record.error.kind == "timeout"
    assert cancelled.is_set()
    assert executor.leaked_threads == 0
    assert fluxloop_threads(case.case_id) == []


def test_timeouts_are_retried_within_max_retries() -> None:
    async def sleeper(input_text: str) -> str:
        await asyncio.sleep(30)
        return "late"

    sleep = FakeSleep()
    executor = executor_for(target_of(sleeper), sleep, timeout_seconds=0.3, max_retries=1)
    t0 = time.monotonic()
    record = executor.run(make_case()).record
    assert time.monotonic() - t0 < HANG_GUARD_S
    assert record.status == "timeout"
    assert record.attempts == 2
    assert len(sleep.calls) == 1
    assert executor.leaked_threads == 0


# --------------------------------------------------------------------------- retries (fault 12)


def flaky(failures: int, exc: BaseException) -> Any:
    calls: list[str] = []

    def run(input_text: str) -> str:
        calls.append(input_text)
        if len(calls) <= failures:
            raise exc
        return f"ok after {len(calls)}"

    return run, calls


def test_transient_errors_are_retried_with_backoff() -> None:
    run, calls = flaky(2, ConnectionError("connection reset by peer"))
    sleep = FakeSleep()
    executor = executor_for(target_of(run), sleep, max_retries=3)
    record = executor.run(make_case()).record
    assert record.status == "success"
    assert record.success is True
    assert record.output == "ok after 3"
    assert record.attempts == 3
    assert len(calls) == 3
    retries = [o for o in record.observations if o.type == "retry"]
    assert len(retries) == 2
    assert all(o.trace_id == record.trace_id for o in retries)
    assert all("ConnectionError" in (o.error or "") for o in retries)
    assert [o.metadata["attempt"] for o in retries] == [1, 2]
    # Exponential backoff with jitter: base·2^n scaled by a factor in [0.5, 1].
    base = RunSettings().backoff_base
    assert len(sleep.calls) == 2
    for n, delay in enumerate(sleep.calls):
        assert base * 2**n * 0.5 <= delay <= base * 2**n
    assert sleep.calls[0] <= sleep.calls[1]
    assert [o.metadata["delay_s"] for o in retries] == pytest.approx(sleep.calls, abs=1e-3)


def test_max_retries_zero_does_not_retry() -> None:
    run, calls = flaky(1, ConnectionError("reset"))
    sleep = FakeSleep()
    record = executor_for(target_of(run), sleep, max_retries=0).run(make_case()).record
    assert record.status == "error"
    assert record.attempts == 1
    assert len(calls) == 1
    assert sleep.calls == []
    assert record.error is not None and record.error.type == "ConnectionError"


def test_retries_are_bounded() -> None:
    run, calls = flaky(100, TimeoutError("read timed out"))
    sleep = FakeSleep()
    record = executor_for(target_of(run), sleep, max_retries=2).run(make_case()).record
    assert record.status == "error"
    assert record.attempts == 3
    assert len(calls) == 3
    assert len(sleep.calls) == 2
    assert record.error is not None and record.error.type == "TimeoutError"


def test_non_transient_error_is_not_retried() -> None:
    run, _ = flaky(1, FileNotFoundError(errno.ENOENT, "no such file", "prompt.txt"))
    sleep = FakeSleep()
    record = executor_for(target_of(run), sleep, max_retries=3).run(make_case()).record
    assert record.status == "error"
    assert record.attempts == 1
    assert sleep.calls == []


def test_backoff_is_capped_and_jittered() -> None:
    assert backoff_delay(20, random.Random(1), base=0.5, cap=30.0) <= 30.0
    delays = {round(backoff_delay(2, random.Random(seed)), 6) for seed in range(20)}
    assert len(delays) > 1  # jitter
    assert all(1.0 <= d <= 2.0 for d in delays)


# --------------------------------------------------------------------------- is_transient


class RateLimitError(Exception):
    """Shaped like openai.RateLimitError (matched by class name, not imported)."""

    def __init__(
        self,
        message: str = "rate limited",
        *,
        code: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.body = body
        self.status_code = 429
        self.response = SimpleNamespace(headers=headers if headers is not None else {})


class AuthenticationError(Exception):
    status_code = 401


class StatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class APIConnectionError(Exception):
    """Shaped like openai.APIConnectionError."""


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionError("reset"), True),
        (ConnectionResetError(errno.ECONNRESET, "reset"), True),
        (OSError(errno.ECONNRESET, "Connection reset by peer"), True),
        (OSError(errno.ETIMEDOUT, "timed out"), True),
        (TimeoutError("timed out"), True),
        (FileNotFoundError(errno.ENOENT, "missing"), False),
        (PermissionError(errno.EACCES, "denied"), False),
        (OSError(errno.ENOSPC, "disk full"), False),
        (ValueError("bad"), False),
        (KeyError("k"), False),
        (RateLimitError(), True),
        (RateLimitError(code="insufficient_quota"), False),
        (RateLimitError(body={"code": "insufficient_quota"}), False),
        (RateLimitError(body={"error": {"code": "insufficient_quota"}}), False),
        (AuthenticationError("bad key"), False),
        (APIConnectionError("down"), True),
        (StatusError(503), True),
        (StatusError(500), True),
        (StatusError(429), True),
        (StatusError(400), False),
        (StatusError(401), False),
        (StatusError(403), False),
        (StatusError(404), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_quota_error_is_not_retried_by_the_executor() -> None:
    run, _ = flaky(5, RateLimitError("You exceeded your quota", code="insufficient_quota"))
    sleep = FakeSleep()
    record = executor_for(target_of(run), sleep, max_retries=3).run(make_case()).record
    assert record.status == "error"
    assert record.attempts == 1
    assert sleep.calls == []
    assert record.error is not None and "quota" in record.error.message


# --------------------------------------------------------------------------- Retry-After


def test_retry_after_reads_response_headers() -> None:
    assert retry_after_seconds(RateLimitError(headers={"retry-after": "7"})) == 7.0
    assert retry_after_seconds(RateLimitError(headers={"retry-after": "0.5"})) == 0.5
    assert retry_after_seconds(RateLimitError(headers={})) is None
    assert retry_after_seconds(ValueError("no response")) is None
    assert retry_after_seconds(RateLimitError(headers={"retry-after": "soon"})) is None


def test_retry_after_header_name_is_case_insensitive() -> None:
    # HTTP header names are case-insensitive; a plain mapping keeps the sender's spelling.
    assert retry_after_seconds(RateLimitError(headers={"Retry-After": "7"})) == 7.0


def test_retry_after_is_honoured() -> None:
    run, calls = flaky(1, RateLimitError(headers={"retry-after": "2"}))
    sleep = FakeSleep()
    record = executor_for(target_of(run), sleep, max_retries=3).run(make_case()).record
    assert record.status == "success"
    assert record.attempts == 2
    assert len(calls) == 2
    assert len(sleep.calls) == 1
    assert 2.0 <= sleep.calls[0] <= 2.5  # at least the hint; backoff alone is ≤ 0.5


def test_retry_after_above_the_cap_gives_up_at_once() -> None:
    long_wait = str(int(MAX_RETRY_AFTER_SECONDS * 10))
    run, calls = flaky(5, RateLimitError(headers={"retry-after": long_wait}))
    sleep = FakeSleep()
    t0 = time.monotonic()
    record = executor_for(target_of(run), sleep, max_retries=3).run(make_case()).record
    assert time.monotonic() - t0 < HANG_GUARD_S
    assert record.status == "error"
    assert record.attempts == 1
    assert len(calls) == 1
    assert sleep.calls == []


def test_giving_up_on_a_long_retry_after_says_why() -> None:
    """Fault 13: give up *with a message*: the record must say Retry-After was too long."""
    run, _ = flaky(5, RateLimitError("rate limited", headers={"retry-after": "600"}))
    record = executor_for(target_of(run), max_retries=3).run(make_case()).record
    assert record.status == "error"
    text = record.model_dump_json().lower()
    assert "retry-after" in text or "retry_after" in text, text


# --------------------------------------------------------------------------- run_delay_seconds


def test_run_delay_spaces_case_starts() -> None:
    starts: list[float] = []

    def run(input_text: str) -> str:
        starts.append(time.monotonic())
        return input_text

    sleep = FakeSleep()
    executor = executor_for(target_of(run), sleep, run_delay_seconds=0.2, max_retries=0)
    records = [executor.run(make_case(f"q{i}")).record for i in range(3)]
    assert all(r.status == "success" for r in records)
    # No wait before the first case; one wait before each later start.
    assert len(sleep.calls) == 2
    assert 0.1 < sleep.calls[0] <= 0.2
    assert 0.1 < sleep.calls[1] <= 0.4


def test_run_delay_spaces_concurrent_starts() -> None:
    sleep = FakeSleep()
    executor = executor_for(
        target_of(lambda input_text: input_text, attr="run"),
        sleep,
        run_delay_seconds=0.2,
        max_retries=0,
    )
    barrier = threading.Barrier(3)

    def worker(i: int) -> None:
        barrier.wait()
        executor.run(make_case(f"q{i}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD_S)
    delays = sorted(sleep.calls)
    assert len(delays) == 2
    assert 0.1 < delays[0] <= 0.2
    assert 0.3 < delays[1] <= 0.4


def test_no_run_delay_no_sleep() -> None:
    sleep = FakeSleep()
    executor = executor_for(target_of(lambda input_text: 1, attr="run"), sleep)
    for _ in range(3):
        executor.run(make_case())
    assert sleep.calls == []


# --------------------------------------------------------------------------- fault 9


ANY_JSON_SAFE = object()  # only "serialisable as strict JSON" is required


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def _cycle() -> dict[str, Any]:
    data: dict[str, Any] = {"a": 1}
    data["self"] = data
    return data


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"caf\xc3\xa9", "café"),
        (b"\xff\x00\xfe", {"__bytes__": "/wD+"}),
        (float("nan"), None),
        (float("inf"), None),
        ({"score": float("nan"), "ok": 1.5}, {"score": None, "ok": 1.5}),
        (_cycle(), {"a": 1, "self": "<cycle>"}),
        ({3, 1, 2}, [1, 2, 3]),
        ((1, "two"), [1, "two"]),
        (Opaque(), "<Opaque thing>"),
        ({1: "int key", None: "none key"}, {"1": "int key", "null": "none key"}),
        ("bad decode \udcff", ANY_JSON_SAFE),
    ],
    ids=[
        "utf8-bytes",
        "binary-bytes",
        "nan",
        "inf",
        "nested-nan",
        "cycle",
        "set",
        "tuple",
        "custom-object",
        "non-str-keys",
        "lone-surrogate",
    ],
)
def test_non_json_outputs_are_coerced(value: Any, expected: Any) -> None:
    def run(input_text: str) -> Any:
        return value

    result = executor_for(target_of(run)).run(make_case())
    record = result.record
    assert record.status == "success"
    assert result.output is value  # fixtures still get the raw object
    text = record.model_dump_json()  # must not raise
    data = strict_json(text)
    json.dumps(record.output, allow_nan=False)  # the record's output itself is JSON-safe
    if expected is not ANY_JSON_SAFE:
        assert data["output"] == expected
        assert record.output == expected


def test_output_nan_never_reaches_json() -> None:
    def run(input_text: str) -> Any:
        return [math.nan, -math.inf, {"x": math.nan}]

    record = executor_for(target_of(run)).run(make_case()).record
    assert strict_json(record.model_dump_json())["output"] == [None, None, {"x": None}]


# --------------------------------------------------------------------------- fault 34

UNICODE_INPUTS = [
    "Hello 👋 can you help? 🇨🇭✈️",
    "line one\nline two\r\nline three",
    "tab\there and a\u2028line separator\u2029and paragraph",
    "日本語のテキスト、한국어, العربية, עברית",
    "e\u0301 combining, zero\u200bwidth, family 👨\u200d👩\u200d👧",
    '"quotes" \\backslash\\ {json: [1]}',
    "\x00 nul and \x1b escape",
]


@pytest.mark.parametrize("text", UNICODE_INPUTS)
def test_unicode_round_trips_exactly(text: str) -> None:
    def run(input_text: str) -> dict[str, str]:
        return {"echo": input_text, "note": "✓ réponse\n"}

    record = executor_for(target_of(run)).run(make_case(text)).record
    assert record.status == "success"
    line = record.model_dump_json()
    assert "\n" not in line and "\r" not in line
    restored = TraceRecord.model_validate_json(line)
    assert restored.input == text
    assert restored.output == {"echo": text, "note": "✓ réponse\n"}
    assert restored == record


# --------------------------------------------------------------------------- the working directory


def cwd_notices(record: TraceRecord) -> list[Any]:
    return [o for o in record.observations if o.name == "cwd_changed"]


def test_an_agent_chdir_into_a_deleted_directory_is_undone_and_noted(tmp_path: Path) -> None:
    (tmp_path / "fact.txt").write_text("42")
    scratch = tmp_path / "scratch"

    def run(input_text: str) -> str:
        with open("fact.txt") as fh:  # relative to the runner's working directory
            fact = fh.read()
        if input_text == "wander":
            scratch.mkdir()
            os.chdir(scratch)
            scratch.rmdir()  # the process's cwd no longer exists
        return fact

    os.chdir(tmp_path)
    executor = CaseExecutor(target_of(run), RunSettings(max_retries=0), workdir=tmp_path)
    wander = executor.run(make_case("wander")).record
    assert wander.status == "success"
    (notice,) = cwd_notices(wander)
    assert notice.type == "notice"
    assert notice.metadata["chdir_to"] == [str(scratch)]
    assert notice.metadata["restored_to"] == str(tmp_path)
    assert notice.metadata["left_changed"] is True
    assert os.getcwd() == str(tmp_path)
    later = executor.run(make_case("read")).record
    assert later.status == "success", later.error
    assert later.output == "42"
    assert cwd_notices(later) == []


def test_the_runner_directory_is_restored_before_an_attempt(tmp_path: Path) -> None:
    (tmp_path / "fact.txt").write_text("42")

    def run(input_text: str) -> str:
        return Path("fact.txt").read_text()

    executor = CaseExecutor(target_of(run), RunSettings(max_retries=0), workdir=tmp_path)
    os.chdir(Path(tmp_path).anchor)  # moved by something outside any case (a leaked thread)
    record = executor.run(make_case()).record
    assert record.status == "success" and record.output == "42"
    assert cwd_notices(record) == []


@pytest.mark.parametrize("mover_is_async", [False, True], ids=["sync", "async"])
def test_the_notice_goes_to_the_case_that_chdir_ed(tmp_path: Path, mover_is_async: bool) -> None:
    from pytest_fluxloop.engine.scheduler import CaseScheduler

    moved, stayer_done = threading.Event(), threading.Event()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def stay() -> str:
        assert moved.wait(HANG_GUARD_S)  # finishes while the other case has moved the cwd
        return "stayed"

    def move() -> None:
        os.chdir(elsewhere)
        moved.set()

    async def move_async() -> str:
        move()
        while not stayer_done.is_set():
            await asyncio.sleep(0.005)
        return "moved"

    def run(input_text: str) -> Any:
        if input_text == "stay":
            return stay()
        if mover_is_async:
            return move_async()
        move()
        assert stayer_done.wait(HANG_GUARD_S)
        return "moved"

    executor = CaseExecutor(target_of(run), RunSettings(max_retries=0), workdir=tmp_path)
    scheduler = CaseScheduler(executor.run, 2)
    mover, stayer = make_case("move"), make_case("stay")
    scheduler.schedule([mover, stayer])
    stayed = scheduler.result(stayer).record
    stayer_done.set()
    moved_record = scheduler.result(mover).record
    assert (stayed.status, moved_record.status) == ("success", "success")
    assert cwd_notices(stayed) == []  # it only saw the change
    (notice,) = cwd_notices(moved_record)
    assert notice.metadata["chdir_to"] == [str(elsewhere)]
    assert os.getcwd() == str(tmp_path)
