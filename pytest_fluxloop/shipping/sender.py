"""The background sender: batches of trace items posted to a collector from one thread.

::

    sender = BatchSender(target, source={"experiment": "support-bot"}, spool=Spool(folder))
    sender.start()
    sender.submit(wire.trace_items(trace_json))   # never blocks on the network
    sender.close()                                # drain (bounded), spool what is left

Whoever records traces (the HTTP sink of a run, ``FluxLoopClient(storage="http")``) calls
:meth:`BatchSender.submit` and goes on: the items wait in a bounded queue, and the sender
thread packs them into batches (at most ``max_batch_items`` items or ``max_batch_bytes`` of
JSON, or whatever arrived within ``linger_seconds``), gzips them and posts them
(:func:`deliver`). A collector that is down, slow or refusing costs the caller nothing:

* a full queue sends that trace's items straight to the spool (:mod:`.spool`);
* 429, 5xx, connection errors and timeouts are retried with exponential backoff and jitter,
  waiting as long as ``Retry-After`` asks (capped), ``max_attempts`` times in all; a batch
  that still fails is spooled, and for ``down_seconds`` the next batches are spooled without
  trying (a dead collector is not retried batch after batch);
* 401/403 are not retried: the token is wrong, every batch from then on is spooled;
* a redirect is never followed (``http.client`` does not, on purpose: the token must not
  reach another address); the batch is spooled and the report says where it was sent;
* :meth:`BatchSender.close` gives the thread ``drain_seconds`` to send what is queued, then
  cuts any request still in flight and spools the rest.

A batch keeps its id and its bytes from its first attempt to the spool file, and the
collector stores each ``(kind, id)`` once, so a batch sent twice (a retry after a lost
answer, a spooled batch pushed after all) changes nothing.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import logging
import math
import random
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

from .spool import Spool
from .target import CollectorTarget
from .wire import BatchError, ItemResult, make_batch, parse_results

__all__ = [
    "Answer",
    "BatchSender",
    "Delivery",
    "SendStats",
    "SenderOptions",
    "deliver",
    "post_batch",
]

_log = logging.getLogger("pytest_fluxloop.shipping")

REJECTED_EXAMPLES_KEPT = 5
"""How many rejected items the report quotes (with the collector's reason)."""
MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""The most of an answer read: a results document for a large batch fits many times over."""
_RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class SenderOptions:
    """How batches are made, sent and retried (defaults suit a run and a production app)."""

    max_batch_items: int = 500
    """Items (traces and observations) per batch at most."""
    max_batch_bytes: int = 2 * 1024 * 1024
    """Uncompressed JSON per batch at most (a single larger item goes alone)."""
    linger_seconds: float = 0.25
    """How long the first item of a batch waits for more before the batch goes."""
    queue_size: int = 1000
    """Traces waiting to be sent at most; beyond it a trace goes straight to the spool."""
    timeout_seconds: float = 10.0
    """Connect and read timeout of one request."""
    max_attempts: int = 4
    """Attempts per batch (the first one included) before it is spooled."""
    backoff_seconds: float = 0.5
    """The first retry's delay; each next one doubles, with jitter."""
    backoff_max_seconds: float = 8.0
    retry_after_max_seconds: float = 30.0
    """The longest ``Retry-After`` honoured (a longer one is cut to this)."""
    drain_seconds: float = 5.0
    """What :meth:`BatchSender.close` gives the queue to drain before spooling the rest."""
    down_seconds: float = 30.0
    """After a batch failed every attempt, batches are spooled without trying this long."""


@dataclass(frozen=True)
class Answer:
    """A collector's HTTP answer."""

    status: int
    headers: Mapping[str, str]
    """Header names lower-cased."""
    body: bytes


@dataclass(frozen=True)
class Delivery:
    """How sending one batch ended."""

    outcome: Literal[
        "sent", "auth", "redirect", "too_large", "refused", "broken", "failed", "cancelled"
    ]
    """``sent``: answered 200 with a result per item. ``auth``: 401/403. ``redirect``: a
    3xx (not followed). ``too_large``: 413. ``refused``: another 4xx (400, 404, 415).
    ``broken``: a 200 that is not a results document. ``failed``: every attempt failed
    (429, 5xx, connection error, timeout). ``cancelled``: stopped by the close deadline."""
    attempts: int
    results: list[ItemResult] = field(default_factory=list)
    error: str | None = None
    """What went wrong, token removed (None when sent)."""


class ResultCounts(Protocol):
    """Per-item result counts (:class:`SendStats`, a push's result)."""

    stored: int
    duplicate: int
    rejected: int
    rejected_examples: list[str]


def count_results(
    counts: ResultCounts, results: Iterable[ItemResult], scrub: Callable[[str], str]
) -> None:
    """Add the collector's per-item ``results`` to ``counts``, keeping the first
    :data:`REJECTED_EXAMPLES_KEPT` rejections (secrets scrubbed) as examples."""
    for result in results:
        if result.status == "stored":
            counts.stored += 1
        elif result.status == "duplicate":
            counts.duplicate += 1
        else:
            counts.rejected += 1
            if len(counts.rejected_examples) < REJECTED_EXAMPLES_KEPT:
                reason = scrub(f"{result.kind} {result.id}: {result.error}")
                counts.rejected_examples.append(reason[:300])


@dataclass
class SendStats:
    """What a sender did; :meth:`as_dict` is the report's shape."""

    batches_sent: int = 0
    items_sent: int = 0
    traces_sent: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    retries: int = 0
    spooled_batches: int = 0
    spooled_items: int = 0
    spooled_traces: int = 0
    lost_batches: int = 0
    """Batches neither sent nor spooled (the spool could not be written)."""
    lost_items: int = 0
    error: str | None = None
    """The last thing that went wrong (token removed), or None."""
    auth_error: str | None = None
    """Set when the collector refused the token (401/403)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "batches_sent": self.batches_sent,
            "items_sent": self.items_sent,
            "traces_sent": self.traces_sent,
            "stored": self.stored,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "rejected_examples": list(self.rejected_examples),
            "retries": self.retries,
            "spooled_batches": self.spooled_batches,
            "spooled_items": self.spooled_items,
            "spooled_traces": self.spooled_traces,
            "lost_batches": self.lost_batches,
            "lost_items": self.lost_items,
            "error": self.error,
            "auth_error": self.auth_error,
        }


# --------------------------------------------------------------------------- one request


def post_batch(
    target: CollectorTarget,
    body: bytes,
    *,
    timeout: float,
    on_connection: Callable[[http.client.HTTPConnection | None], None] | None = None,
) -> Answer:
    """POST one gzip-compressed batch body to ``target`` and read the answer.

    A redirect is returned as it is (``http.client`` never follows one): the token goes to
    ``target`` only. ``on_connection`` is told the connection before the request and None
    after it, so another thread can cut a request that outlives a deadline.

    Raises:
        OSError: connection refused or reset, timeout (``TimeoutError``), TLS failure.
        http.client.HTTPException: not an HTTP answer, or the connection dropped.
    """
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    if on_connection is not None:
        on_connection(conn)
    try:
        conn.request("POST", target.batches_path, body=body, headers=target.headers(len(body)))
        response = conn.getresponse()
        data = response.read(MAX_ANSWER_BYTES)
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, headers, data)
    finally:
        if on_connection is not None:
            on_connection(None)
        conn.close()


def _answer_detail(answer: Answer) -> str:
    """The collector's own words about an error answer (its ``{"error": ...}``), short."""
    text = answer.body[:2000].decode("utf-8", "replace")
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("error"):
            text = str(data["error"])
    except ValueError:
        pass
    text = " ".join(text.split())
    return f": {text[:200]}" if text else ""


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def backoff_seconds(attempt: int, options: SenderOptions) -> float:
    """The delay before retry number ``attempt`` (1 = the first retry): exponential, capped,
    with jitter (half fixed, half random) so many senders do not retry in step."""
    ceiling = min(options.backoff_max_seconds, options.backoff_seconds * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def deliver(
    target: CollectorTarget,
    body: bytes,
    items: int,
    options: SenderOptions,
    *,
    wait: Callable[[float, bool], bool] | None = None,
    timeout: Callable[[], float] | None = None,
    on_connection: Callable[[http.client.HTTPConnection | None], None] | None = None,
    on_retry: Callable[[], None] | None = None,
) -> Delivery:
    """Send one batch body (of ``items`` items) with retries; never raises.

    ``wait(delay, answered)`` sleeps between attempts and returns False to give up (a close
    deadline); ``answered`` says whether the collector answered (busy: 429, 5xx) or could not
    be reached (connection error, timeout). By default it sleeps. ``timeout()`` gives each
    request's timeout (default ``options.timeout_seconds``).
    """
    attempt = 0
    while True:
        attempt += 1
        retry_after: float | None = None
        answered = False
        request_timeout = timeout() if timeout is not None else options.timeout_seconds
        try:
            answer = post_batch(target, body, timeout=request_timeout, on_connection=on_connection)
        except (OSError, http.client.HTTPException) as exc:
            error = target.scrub(f"{target.url}: {_exception_text(exc)}")
        else:
            status = answer.status
            if status == 200:
                try:
                    results = parse_results(answer.body)
                except BatchError as exc:
                    return Delivery("broken", attempt, error=target.scrub(f"{target.url}: {exc}"))
                if len(results) != items:
                    return Delivery(
                        "broken",
                        attempt,
                        error=f"{target.url}: answered {len(results)} results for {items} "
                        "items (one per item expected): not a FluxLoop collector?",
                    )
                return Delivery("sent", attempt, results)
            detail = target.scrub(_answer_detail(answer))
            if status in (401, 403):
                return Delivery(
                    "auth",
                    attempt,
                    error=f"{target.url} refused the token (HTTP {status}{detail}): check "
                    "collector_api_key or FLUXLOOP_COLLECTOR_TOKEN",
                )
            if 300 <= status < 400:
                location = target.scrub(answer.headers.get("location", "?"))
                return Delivery(
                    "redirect",
                    attempt,
                    error=f"{target.url} answered HTTP {status}, a redirect to {location}: "
                    "not followed (the token is only ever sent to the configured address); "
                    "set the collector URL to the address that answers",
                )
            if status == 413:
                return Delivery("too_large", attempt, error=f"{target.url}: HTTP 413{detail}")
            if status not in _RETRY_STATUSES and status < 500:
                return Delivery("refused", attempt, error=f"{target.url}: HTTP {status}{detail}")
            error = f"{target.url}: HTTP {status}{detail}"
            answered = True
            retry_after = retry_after_seconds(answer.headers.get("retry-after"))
        if attempt >= options.max_attempts:
            return Delivery("failed", attempt, error=error)
        delay = backoff_seconds(attempt, options)
        if retry_after is not None:
            # The collector said when: neither sooner nor (beyond the cap) later.
            delay = min(retry_after, options.retry_after_max_seconds)
        if wait is None:
            time.sleep(delay)
        elif not wait(delay, answered):
            return Delivery("cancelled", attempt, error=error)
        if on_retry is not None:
            on_retry()


def _exception_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


# --------------------------------------------------------------------------- batches


def _encode_item(item: Mapping[str, Any]) -> bytes:
    """One item's JSON (strict: NaN and infinities become null)."""
    try:
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(item), ensure_ascii=False, separators=(",", ":"), default=str)
    except TypeError:
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=str)
    # A lone surrogate (from a bad decode) becomes its JSON escape: valid UTF-8, same text.
    return text.encode("utf-8", "backslashreplace")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass
class _Entry:
    """The items one ``submit`` queued (one trace and its observations)."""

    items: Sequence[Mapping[str, Any]]


@dataclass
class _Batch:
    """Items packed for one request; its id and body are fixed once made."""

    source: Mapping[str, Any]
    items: list[bytes] = field(default_factory=list)
    is_trace: list[bool] = field(default_factory=list)
    size: int = 0
    traces: int = 0
    entries: int = 0
    """Queue entries whose last item is in this batch (done when it is sent or spooled)."""
    started: float = 0.0
    batch_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _body: bytes | None = None

    def add(self, encoded: bytes, is_trace: bool) -> None:
        if not self.items:
            self.started = time.monotonic()
        self.items.append(encoded)
        self.is_trace.append(is_trace)
        self.size += len(encoded) + 1
        self.traces += is_trace

    def body(self) -> bytes:
        """The gzip-compressed request body (built once: every attempt and the spool file
        carry the same bytes)."""
        if self._body is None:
            head = {
                k: v
                for k, v in make_batch((), self.source, batch_id=self.batch_id).items()
                if k != "items"
            }
            text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
            raw = b"".join((text[:-1].encode("utf-8"), b',"items":[', b",".join(self.items), b"]}"))
            self._body = gzip.compress(raw, compresslevel=5)
        return self._body

    def halves(self) -> tuple[_Batch, _Batch]:
        """This batch split in two (new ids), for a collector that found it too large."""
        middle = len(self.items) // 2
        first, second = _Batch(self.source), _Batch(self.source)
        for n, (encoded, is_trace) in enumerate(zip(self.items, self.is_trace, strict=True)):
            (first if n < middle else second).add(encoded, is_trace)
        second.entries = self.entries
        return first, second


def _pack(
    entries: Iterable[_Entry], source: Mapping[str, Any], options: SenderOptions
) -> Iterator[_Batch]:
    """The batches of ``entries``, in order, each within the item and byte limits."""
    batch = _Batch(source)
    for entry in entries:
        for item in entry.items:
            encoded = _encode_item(item)
            if batch.items and (
                len(batch.items) >= options.max_batch_items
                or batch.size + len(encoded) > options.max_batch_bytes
            ):
                yield batch
                batch = _Batch(source)
            batch.add(encoded, item.get("kind") == "trace")
        batch.entries += 1
    if batch.items or batch.entries:
        yield batch


# --------------------------------------------------------------------------- the sender


class BatchSender:
    """Sends submitted items to a collector from a background thread (see the module doc).

    Thread-safe: :meth:`submit` may be called from any thread. Call :meth:`start` once, and
    :meth:`close` once at the end (later calls return the same figures).

    Args:
        target: the collector.
        source: the batches' ``source`` (``experiment``, ``run_id``; ``host`` and
            ``sender`` are filled in).
        spool: where unsent batches go.
        options: batching, retries and deadlines.
    """

    def __init__(
        self,
        target: CollectorTarget,
        source: Mapping[str, Any],
        spool: Spool,
        options: SenderOptions | None = None,
    ) -> None:
        from .target import sender_name

        self.target = target
        self.options = options or SenderOptions()
        self.source = {"sender": sender_name(), **source}
        self.spool = spool
        self.stats = SendStats()
        self._stats_lock = threading.Lock()
        self._cond = threading.Condition()
        self._entries: deque[_Entry] = deque()
        self._unfinished = 0
        """Entries submitted and not yet sent or spooled (what :meth:`flush` waits for)."""
        self._flushing = 0
        """Callers waiting in :meth:`flush`: the thread sends at once, without lingering."""
        self._closing = threading.Event()
        self._abort = threading.Event()
        """Set at the close deadline: no more waiting or sending, everything is spooled."""
        self._deadline = math.inf
        self._conn_lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._down_until = 0.0
        self._auth_failed = False
        self._warned: set[str] = set()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="fluxloop-collector-sender", daemon=True
        )

    # -- the caller's side ---------------------------------------------------------------

    def start(self) -> None:
        """Start the sender thread (idempotent)."""
        if not self._thread.is_alive() and not self._closed:
            self._thread.start()

    def submit(self, items: Sequence[Mapping[str, Any]]) -> bool:
        """Queue one trace's items (``wire.trace_items``); never waits on the network.

        Returns True when queued; False when the queue was full (or the sender closed) and
        the items went straight to the spool instead.
        """
        if not items:
            return True
        entry = _Entry(list(items))
        with self._cond:
            full = len(self._entries) >= self.options.queue_size
            if not (full or self._closed):
                self._entries.append(entry)
                self._unfinished += 1
                self._cond.notify_all()
                return True
        reason = "the send queue is full" if full else "the sender is closed"
        self._warn_once("queue", f"collector {self.target.url}: {reason}; spooling")
        for batch in _pack([entry], self.source, self.options):
            self._spool(batch)
        return False

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted item was sent or spooled (at most ``timeout`` seconds,
        default ``drain_seconds``); True if so."""
        limit = self.options.drain_seconds if timeout is None else timeout
        end = time.monotonic() + limit
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._unfinished > 0 and self._thread.is_alive():
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                return self._unfinished == 0
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> SendStats:
        """Send what is queued within ``timeout`` seconds (default ``drain_seconds``), then
        cut any request in flight, spool everything unsent and stop; returns the figures."""
        with self._cond:
            if self._closed:
                return self.stats
            self._closed = True
            drain = self.options.drain_seconds if timeout is None else timeout
            self._deadline = time.monotonic() + max(0.0, drain)
            self._closing.set()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(max(0.0, self._deadline - time.monotonic()))
        if self._thread.is_alive():
            # The deadline passed with a request in flight (a stalled collector): cut it;
            # the thread then spools its batch and whatever is left, without sending.
            self._abort.set()
            self._cut_connection()
            self._thread.join(5.0)
        with self._cond:
            leftover = list(self._entries)
            self._entries.clear()
        # Entries the thread never took (it did not start, or was stuck): spooled here.
        for batch in _pack(leftover, self.source, self.options):
            self._spool(batch)
        if leftover:
            self._done(len(leftover))
        return self.stats

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def snapshot(self) -> dict[str, Any]:
        """The figures so far (:meth:`SendStats.as_dict`)."""
        with self._stats_lock:
            return self.stats.as_dict()

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        batch = _Batch(self.source)
        try:
            while True:
                entry, stop = self._next(batch)
                if entry is not None:
                    for item in entry.items:
                        encoded = _encode_item(item)
                        if batch.items and (
                            len(batch.items) >= self.options.max_batch_items
                            or batch.size + len(encoded) > self.options.max_batch_bytes
                        ):
                            self._ship(batch)
                            batch = _Batch(self.source)
                        batch.add(encoded, item.get("kind") == "trace")
                    batch.entries += 1
                    continue
                if batch.items or batch.entries:
                    self._ship(batch)
                    batch = _Batch(self.source)
                if stop:
                    return
        except BaseException as exc:  # a bug here must not lose the traces: spool them
            _log.warning("fluxloop collector sender failed: %s", self.target.scrub(repr(exc)))
            self._abort.set()
            if batch.items or batch.entries:
                self._ship(batch)
            with self._cond:
                leftover = list(self._entries)
                self._entries.clear()
            for rest in _pack(leftover, self.source, self.options):
                self._ship(rest)

    def _next(self, batch: _Batch) -> tuple[_Entry | None, bool]:
        """The next queued entry; or (None, stop) when the current batch should go now (it
        lingered long enough, a flush waits, or the sender is closing with nothing queued;
        ``stop``: then the thread ends)."""
        with self._cond:
            while True:
                if self._entries:
                    return self._entries.popleft(), False
                if self._closing.is_set():
                    return None, True
                if batch.items or batch.entries:
                    wait = batch.started + self.options.linger_seconds - time.monotonic()
                    if wait <= 0 or self._flushing:
                        return None, False
                    self._cond.wait(wait)
                else:
                    self._cond.wait()

    def _ship(self, batch: _Batch) -> None:
        """Send ``batch`` (or spool it when sending is off); mark its entries done."""
        try:
            if batch.items:
                self._send_or_spool(batch)
        finally:
            self._done(batch.entries)

    def _send_or_spool(self, batch: _Batch) -> None:
        now = time.monotonic()
        if self._abort.is_set() or (self._closing.is_set() and now >= self._deadline):
            self._spool(batch)
            return
        if self._auth_failed or now < self._down_until:
            self._spool(batch)  # the collector refused the token / is down: no new attempt
            return
        delivery = deliver(
            self.target,
            batch.body(),
            len(batch.items),
            self.options,
            wait=self._wait,
            timeout=self._request_timeout,
            on_connection=self._set_connection,
            on_retry=self._count_retry,
        )
        if delivery.outcome == "sent":
            self._count_sent(batch, delivery.results)
            if self._down_until:
                self._down_until = 0.0
                self._warned.discard("down")
            return
        if delivery.outcome == "too_large" and len(batch.items) > 1:
            for half in batch.halves():
                self._send_or_spool(half)
            return
        if delivery.outcome == "auth":
            self._auth_failed = True
            with self._stats_lock:
                self.stats.auth_error = delivery.error
        elif delivery.outcome == "failed":
            self._down_until = time.monotonic() + self.options.down_seconds
        elif delivery.outcome == "cancelled":
            # Closing, and the collector did not take this batch in time: the rest of the
            # queue is spooled without trying, so the run ends within its deadline.
            self._down_until = math.inf
        self._note_error(delivery.error)
        if delivery.outcome != "cancelled":
            self._warn_once(
                "down" if delivery.outcome == "failed" else delivery.outcome,
                f"fluxloop: traces not sent to the collector ({delivery.error}); spooling them",
            )
        self._spool(batch)

    def _wait(self, delay: float, answered: bool) -> bool:
        """Sleep ``delay`` between attempts; False to give up: the wait would pass the close
        deadline, or the sender is closing and the collector could not be reached at all
        (while the run ends, an absent collector gets no second chance: its batches are
        spooled at once; a busy one that answered 429/5xx is retried within the deadline)."""
        end = time.monotonic() + delay
        if not self._closing.is_set():
            self._closing.wait(delay)  # woken early by close() to check the deadline
        if self._closing.is_set():
            if end > self._deadline or not answered:
                return False
            remaining = end - time.monotonic()
            if remaining > 0 and self._abort.wait(remaining):
                return False
        return True

    def _request_timeout(self) -> float:
        if self._closing.is_set():
            left = self._deadline - time.monotonic()
            return max(0.05, min(self.options.timeout_seconds, left))
        return self.options.timeout_seconds

    def _set_connection(self, conn: http.client.HTTPConnection | None) -> None:
        with self._conn_lock:
            self._conn = conn
        if conn is not None and self._abort.is_set():
            self._cut_connection()

    def _cut_connection(self) -> None:
        with self._conn_lock:
            conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- figures -------------------------------------------------------------------------

    def _done(self, entries: int) -> None:
        if entries:
            with self._cond:
                self._unfinished -= entries
                self._cond.notify_all()

    def _count_retry(self) -> None:
        with self._stats_lock:
            self.stats.retries += 1

    def _count_sent(self, batch: _Batch, results: list[ItemResult]) -> None:
        with self._stats_lock:
            stats = self.stats
            stats.batches_sent += 1
            stats.items_sent += len(batch.items)
            stats.traces_sent += batch.traces
            count_results(stats, results, self.target.scrub)

    def _note_error(self, error: str | None) -> None:
        if error:
            with self._stats_lock:
                self.stats.error = error

    def _spool(self, batch: _Batch) -> None:
        """Write ``batch`` to the spool; if that fails too, count it as lost."""
        if not batch.items:
            return
        try:
            self.spool.write(batch.batch_id, batch.body())
        except OSError as exc:
            error = self.target.scrub(f"could not spool a batch: {_exception_text(exc)}")
            with self._stats_lock:
                self.stats.lost_batches += 1
                self.stats.lost_items += len(batch.items)
                self.stats.error = error
            self._warn_once("spool", f"fluxloop: {error}; {len(batch.items)} items lost")
            return
        with self._stats_lock:
            self.stats.spooled_batches += 1
            self.stats.spooled_items += len(batch.items)
            self.stats.spooled_traces += batch.traces

    def _warn_once(self, key: str, message: str) -> None:
        # Once per kind of trouble: a dead collector must not flood the application's log.
        if key not in self._warned:
            self._warned.add(key)
            _log.warning("%s", self.target.scrub(message))
