"""The background sender against a real HTTP server on 127.0.0.1 (support.collector_stub):
batching, gzip, retries, Retry-After, tokens and redirects, timeouts, a full queue, and the
close deadline. Every failure ends in the spool, never in the caller."""

from __future__ import annotations

import gzip
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.collector_stub import (
    CollectorStub,
    Drop,
    Redirect,
    Sleep,
    Status,
    free_port,
    wait_until,
)

from pytest_fluxloop.shipping.sender import (
    BatchSender,
    SenderOptions,
    backoff_seconds,
    retry_after_seconds,
)
from pytest_fluxloop.shipping.spool import Spool, read_spooled, spooled_files
from pytest_fluxloop.shipping.target import collector_target
from pytest_fluxloop.shipping.wire import trace_items

TOKEN = "sender-token-0123456789"
FAST = SenderOptions(
    linger_seconds=0.05,
    backoff_seconds=0.05,
    backoff_max_seconds=0.2,
    timeout_seconds=2.0,
    max_attempts=3,
    drain_seconds=3.0,
)


def trace(n: int, observations: int = 2, **extra: Any) -> list[dict[str, Any]]:
    """The items of trace ``t<n>`` with ``observations`` observations."""
    data = {
        "trace_id": f"t{n}",
        "case_id": f"c{n}",
        "input": f"question {n}",
        "observations": [
            {"trace_id": f"t{n}", "name": f"step {k}", "kind": "tool"} for k in range(observations)
        ],
        **extra,
    }
    return trace_items(data)


def sender_for(
    url: str, tmp_path: Path, options: SenderOptions = FAST, token: str | None = TOKEN
) -> BatchSender:
    target = collector_target(url, token=token or "")
    sender = BatchSender(target, {"experiment": "unit", "run_id": "r1"}, Spool(lambda: tmp_path))
    sender.options = options
    sender.start()
    return sender


def spooled_items(folder: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for path in spooled_files(folder):
        _, batch = read_spooled(path)
        items.extend(batch["items"])  # type: ignore[arg-type]
    return items


@pytest.fixture
def stub() -> Any:
    with CollectorStub(token=TOKEN) as server:
        yield server


def test_batches_are_gzipped_bounded_and_carry_the_token(
    stub: CollectorStub, tmp_path: Path
) -> None:
    options = SenderOptions(**{**FAST.__dict__, "max_batch_items": 40})
    sender = sender_for(stub.url, tmp_path, options)
    for n in range(30):
        assert sender.submit(trace(n)) is True
    stats = sender.close()
    assert stub.count("trace") == 30
    assert stub.count("observation") == 60
    assert (stats.traces_sent, stats.items_sent, stats.stored) == (30, 90, 90)
    assert (stats.duplicate, stats.rejected, stats.spooled_batches) == (0, 0, 0)
    posts = stub.posts()
    assert len(posts) == stats.batches_sent >= 3
    for post in posts:
        assert post.headers["content-encoding"] == "gzip"
        assert post.headers["authorization"] == f"Bearer {TOKEN}"
        assert post.headers["content-type"] == "application/json"
        batch = json.loads(gzip.decompress(post.body))
        assert batch["fluxloop_batch"] == 1
        assert len(batch["items"]) <= 40
        assert batch["source"]["experiment"] == "unit"
        assert batch["source"]["sender"].startswith("pytest-fluxloop")
    assert spooled_files(tmp_path) == []


def test_items_arriving_together_share_one_batch(stub: CollectorStub, tmp_path: Path) -> None:
    options = SenderOptions(**{**FAST.__dict__, "linger_seconds": 0.5})
    sender = sender_for(stub.url, tmp_path, options)
    for n in range(5):
        sender.submit(trace(n))
    assert sender.flush(5) is True
    assert len(stub.posts()) == 1
    assert stub.count("trace") == 5
    sender.close()


def test_a_batch_sent_twice_is_stored_once(stub: CollectorStub, tmp_path: Path) -> None:
    first = sender_for(stub.url, tmp_path)
    first.submit(trace(1))
    first.close()
    again = sender_for(stub.url, tmp_path)
    again.submit(trace(1))
    stats = again.close()
    assert (stats.stored, stats.duplicate) == (0, 3)
    assert stub.count() == 3


def test_429_waits_as_long_as_retry_after_says(stub: CollectorStub, tmp_path: Path) -> None:
    stub.script(Status(429, {"Retry-After": "1"}))
    sender = sender_for(stub.url, tmp_path)
    sender.submit(trace(1))
    assert sender.flush(10) is True
    first, second = stub.posts()
    assert second.at - first.at >= 0.95  # backoff alone would be ~0.05 s
    stats = sender.close()
    assert (stats.retries, stats.stored, stats.spooled_batches) == (1, 3, 0)


def test_server_errors_are_retried_until_one_succeeds(stub: CollectorStub, tmp_path: Path) -> None:
    stub.script(Status(500), Status(503), Drop())
    options = SenderOptions(**{**FAST.__dict__, "max_attempts": 4})
    sender = sender_for(stub.url, tmp_path, options)
    sender.submit(trace(1))
    assert sender.flush(5) is True
    stats = sender.close()
    assert len(stub.posts()) == 4
    assert (stats.retries, stats.stored, stats.spooled_batches) == (3, 3, 0)
    # One batch id from the first attempt to the last: a retry is the same batch.
    ids = {json.loads(gzip.decompress(p.body))["batch_id"] for p in stub.posts() if p.body}
    assert len(ids) == 1


def test_a_wrong_token_is_not_retried_and_everything_is_spooled(
    stub: CollectorStub, tmp_path: Path
) -> None:
    sender = sender_for(stub.url, tmp_path, token="wrong-token-555555555")
    sender.submit(trace(1))
    assert sender.flush(5)
    sender.submit(trace(2))  # after a 401: straight to the spool, no new request
    stats = sender.close()
    assert len(stub.posts()) == 1
    assert stats.spooled_batches == 2
    assert stats.auth_error is not None
    assert "refused the token (HTTP 401" in stats.auth_error
    assert "FLUXLOOP_COLLECTOR_TOKEN" in stats.auth_error
    assert "wrong-token-555555555" not in json.dumps(stats.as_dict())
    assert {i["id"] for i in spooled_items(tmp_path) if i["kind"] == "trace"} == {"t1", "t2"}


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(
    stub: CollectorStub, tmp_path: Path
) -> None:
    with CollectorStub() as elsewhere:
        stub.always = Redirect(f"{elsewhere.url}/api/v1/batches", 307)
        sender = sender_for(stub.url, tmp_path)
        sender.submit(trace(1))
        stats = sender.close()
        assert elsewhere.requests == []
    assert len(stub.posts()) == 1  # a redirect is not retried either
    assert stats.spooled_batches == 1
    assert stats.error is not None
    assert "redirect" in stats.error
    assert "not followed" in stats.error
    assert TOKEN not in json.dumps(stats.as_dict())


def test_a_collector_slower_than_the_timeout_gets_its_batch_spooled(
    stub: CollectorStub, tmp_path: Path
) -> None:
    stub.always = Sleep(5)
    options = SenderOptions(**{**FAST.__dict__, "timeout_seconds": 0.3, "max_attempts": 2})
    sender = sender_for(stub.url, tmp_path, options)
    started = time.monotonic()
    sender.submit(trace(1))
    assert sender.flush(5) is True
    assert time.monotonic() - started < 3
    stats = sender.close()
    assert stats.spooled_batches == 1
    assert stats.error is not None and "timed out" in stats.error
    assert len(stub.posts()) == 2


def test_a_collector_that_is_down_is_not_retried_batch_after_batch(tmp_path: Path) -> None:
    sender = sender_for(f"http://127.0.0.1:{free_port()}", tmp_path)
    sender.submit(trace(1))
    assert sender.flush(5) is True
    assert sender.stats.spooled_batches == 1
    started = time.monotonic()
    sender.submit(trace(2))
    assert sender.flush(5) is True
    # Down: the second batch went to the spool at once, without three more attempts.
    assert time.monotonic() - started < 0.5
    stats = sender.close()
    assert stats.spooled_batches == 2
    assert stats.retries == FAST.max_attempts - 1
    assert len(spooled_items(tmp_path)) == 6


def test_a_full_queue_spools_instead_of_blocking(stub: CollectorStub, tmp_path: Path) -> None:
    stub.always = Sleep(30)  # the sender is stuck on its first request
    options = SenderOptions(**{**FAST.__dict__, "queue_size": 2, "timeout_seconds": 20})
    sender = sender_for(stub.url, tmp_path, options)
    accepted = []
    for n in range(10):
        started = time.monotonic()
        accepted.append(sender.submit(trace(n)))
        assert time.monotonic() - started < 0.2
        if n == 0:
            assert wait_until(lambda: len(stub.posts()) == 1, 5)  # t0 is in flight
    assert accepted.count(False) >= 6
    stats = sender.close(timeout=0.5)
    assert stats.items_sent == 0
    assert stats.spooled_items == 30
    assert sorted(i["id"] for i in spooled_items(tmp_path) if i["kind"] == "trace") == sorted(
        f"t{n}" for n in range(10)
    )


def test_close_keeps_its_deadline_with_a_stalled_collector(
    stub: CollectorStub, tmp_path: Path
) -> None:
    stub.always = Sleep(30)
    options = SenderOptions(**{**FAST.__dict__, "timeout_seconds": 20})
    sender = sender_for(stub.url, tmp_path, options)
    for n in range(3):
        sender.submit(trace(n))
    assert wait_until(lambda: len(stub.posts()) == 1, 5)
    started = time.monotonic()
    stats = sender.close(timeout=1.0)
    assert time.monotonic() - started < 2.5
    assert stats.spooled_items == 9
    assert sender.close() is stats  # closing again changes nothing


def test_rejected_items_are_counted_with_reasons(tmp_path: Path) -> None:
    def reject(item: Any) -> str | None:
        return "schema: name is required" if item["id"].endswith("/1") else None

    with CollectorStub(token=TOKEN, reject=reject) as stub:
        sender = sender_for(stub.url, tmp_path)
        for n in range(7):
            sender.submit(trace(n))
        stats = sender.close()
    assert (stats.stored, stats.rejected, stats.spooled_batches) == (14, 7, 0)
    assert len(stats.rejected_examples) == 5
    assert stats.rejected_examples[0].endswith("/1: schema: name is required")


def test_a_batch_too_large_for_the_collector_is_split(tmp_path: Path) -> None:
    with CollectorStub(token=TOKEN, max_body=3000) as stub:
        sender = sender_for(stub.url, tmp_path)
        for n in range(20):
            sender.submit(trace(n))
        stats = sender.close()
        assert stub.count() == 60
    assert stats.spooled_batches == 0
    assert stats.stored == 60


def test_a_200_that_is_not_a_results_document_is_spooled(
    stub: CollectorStub, tmp_path: Path
) -> None:
    stub.script(Status(200, body=b"OK"))
    sender = sender_for(stub.url, tmp_path)
    sender.submit(trace(1))
    stats = sender.close()
    assert stats.spooled_batches == 1
    assert stats.error is not None and "not a results document" in stats.error


def test_non_finite_numbers_are_sent_as_null(stub: CollectorStub, tmp_path: Path) -> None:
    sender = sender_for(stub.url, tmp_path)
    sender.submit(trace(1, score=math.nan, other=math.inf))
    sender.close()
    data = stub.stored[("trace", "t1")]
    assert (data["score"], data["other"]) == (None, None)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    options = SenderOptions(backoff_seconds=1.0, backoff_max_seconds=4.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)):
        delay = backoff_seconds(attempt, options)
        assert ceiling / 2 <= delay <= ceiling


def test_many_threads_and_senders_store_every_trace_once(
    stub: CollectorStub, tmp_path: Path
) -> None:
    """8 threads share one sender while 2 more senders send overlapping traces: every
    trace is stored once, the overlap counted as duplicate, nothing spooled."""
    shared = sender_for(stub.url, tmp_path)
    others = [sender_for(stub.url, tmp_path) for _ in range(2)]

    def work(sender: BatchSender, numbers: range) -> None:
        for n in numbers:
            assert sender.submit(trace(n, observations=1))

    threads = [
        threading.Thread(target=work, args=(shared, range(k * 25, (k + 1) * 25))) for k in range(8)
    ]
    threads += [threading.Thread(target=work, args=(s, range(0, 200, 2))) for s in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    stats = [s.close() for s in (shared, *others)]
    assert stub.ids("trace") == {f"t{n}" for n in range(200)}
    assert stub.count() == 400
    assert sum(s.stored for s in stats) == 400
    assert sum(s.duplicate for s in stats) == 2 * 200  # the other senders' 100 traces each
    assert sum(s.spooled_batches for s in stats) == 0
