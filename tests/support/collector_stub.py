"""A stand-in FluxLoop collector for the sender tests: a stdlib ``ThreadingHTTPServer`` on
127.0.0.1 speaking the batch format of :mod:`pytest_fluxloop.shipping.wire`.

It stores items idempotently by ``(kind, id)`` and answers one result per item, as the real
collector does, and can be told to misbehave: answer a status (401, 500, 429 with
``Retry-After``), redirect, stall past the client's timeout, or drop the connection, either
for the next requests (:meth:`CollectorStub.script`) or for all of them
(:attr:`CollectorStub.always`). It records every request (path, headers, decoded batch).

::

    with CollectorStub(token="t0ken-123456") as stub:
        ...  # send to stub.url
        assert stub.count("trace") == 3
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_fluxloop.shipping.wire import BATCHES_PATH, ITEM_KINDS, BatchError, decode_batch

__all__ = [
    "CollectorStub",
    "Drop",
    "Redirect",
    "Seen",
    "Sleep",
    "Status",
    "free_port",
    "wait_until",
]


@dataclass(frozen=True)
class Status:
    """Answer ``code`` (with ``headers``; ``body`` or a JSON error) instead of storing."""

    code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class Redirect:
    """Answer a redirect to ``location``."""

    location: str
    code: int = 307


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (cut short when the stub stops), then answer normally."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection without reading the body or answering."""


Action = Status | Redirect | Sleep | Drop


@dataclass
class Seen:
    """One request the stub received."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    """The body as received (gzip-compressed when the sender compressed it)."""
    at: float
    """``time.monotonic()`` when it arrived."""
    batch: dict[str, Any] | None = None
    status: int | None = None


class CollectorStub:
    """A fake collector on 127.0.0.1 (``port=0``: any free port).

    Args:
        token: the bearer token it requires (None: none required).
        port: the port to listen on (to bring a "down" collector up where it was expected).
        reject: called with each item; a string rejects the item with that reason.
        max_body: a raw (decompressed) batch larger than this many bytes gets a 413.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        port: int = 0,
        reject: Callable[[Mapping[str, Any]], str | None] | None = None,
        max_body: int | None = None,
    ) -> None:
        self.token = token
        self.reject = reject
        self.max_body = max_body
        self.stored: dict[tuple[str, str], Any] = {}
        self.requests: list[Seen] = []
        self.always: Action | None = None
        """Applied to every request when set (after the scripted ones)."""
        self._script: deque[Action] = deque()
        self._lock = threading.Lock()
        self.released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.stub = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *actions: Action) -> None:
        """Apply ``actions`` to the next requests, one each, in order."""
        with self._lock:
            self._script.extend(actions)

    def next_action(self) -> Action | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self.always

    def count(self, kind: str | None = None) -> int:
        """Items stored (of ``kind``)."""
        with self._lock:
            return sum(1 for k, _ in self.stored if kind is None or k == kind)

    def ids(self, kind: str) -> set[str]:
        with self._lock:
            return {i for k, i in self.stored if k == kind}

    def posts(self) -> list[Seen]:
        """The batch requests received (in arrival order)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def store(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Store the batch's items (each ``(kind, id)`` once); the per-item results."""
        results = []
        with self._lock:
            for item in batch["items"]:
                kind, item_id = item.get("kind"), str(item.get("id"))
                result: dict[str, Any] = {"kind": kind, "id": item_id}
                reason = self.reject(item) if self.reject is not None else None
                if kind not in ITEM_KINDS or not isinstance(item.get("data"), dict):
                    reason = reason or "not a known kind with an object"
                if reason:
                    result.update(status="rejected", error=reason)
                elif (kind, item_id) in self.stored and kind != "summary":
                    result["status"] = "duplicate"
                else:
                    self.stored[(kind, item_id)] = item["data"]
                    result["status"] = "stored"
                results.append(result)
        return results

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def start(self) -> CollectorStub:
        # A short poll interval: stopping takes a few ms instead of half a second.
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"collector-stub-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()  # wake handlers sleeping in a Sleep action
        if self._thread is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CollectorStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _answer(
        self, status: int, data: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        payload = data if isinstance(data, bytes) else json.dumps(data or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        stub: CollectorStub = self.server.stub
        stub.record(Seen("GET", self.path, _lower(self.headers), b"", time.monotonic()))
        if self.path == "/health":
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        stub: CollectorStub = self.server.stub
        seen = Seen("POST", self.path, _lower(self.headers), b"", time.monotonic())
        action = stub.next_action()
        if isinstance(action, Drop):
            stub.record(seen)
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        length = int(self.headers.get("Content-Length") or 0)
        seen.body = self.rfile.read(length)
        stub.record(seen)
        if isinstance(action, Sleep):
            stub.released.wait(action.seconds)
            if stub.released.is_set():
                self.close_connection = True
                return  # stopping: no answer (the client has given up anyway)
        elif isinstance(action, Status):
            seen.status = action.code
            body = action.body if action.body is not None else {"error": f"told {action.code}"}
            self._answer(action.code, body, action.headers)
            return
        elif isinstance(action, Redirect):
            seen.status = action.code
            self._answer(action.code, {}, {"Location": action.location})
            return
        seen.status, data = self._batch(stub, seen)
        self._answer(seen.status, data)

    def _batch(self, stub: CollectorStub, seen: Seen) -> tuple[int, Any]:
        if self.path != BATCHES_PATH:
            return 404, {"error": f"no route {self.path}"}
        if stub.token is not None and seen.headers.get("authorization") != f"Bearer {stub.token}":
            return 401, {"error": "missing or wrong token"}
        if (seen.headers.get("content-type") or "").split(";")[0].strip() != "application/json":
            return 415, {"error": "not JSON"}
        raw = seen.body
        if seen.headers.get("content-encoding") == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                return 400, {"error": f"bad gzip: {exc}"}
        if stub.max_body is not None and len(raw) > stub.max_body:
            return 413, {"error": f"over {stub.max_body} bytes"}
        try:
            batch = decode_batch(raw)
        except BatchError as exc:
            return 400, {"error": str(exc)}
        seen.batch = batch
        return 200, {"batch_id": batch["batch_id"], "results": stub.store(batch)}


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def free_port() -> int:
    """A port nothing listens on (now) on 127.0.0.1: a collector that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@contextmanager
def collector_stub(**kwargs: Any) -> Iterator[CollectorStub]:
    """A started :class:`CollectorStub` for the block."""
    with CollectorStub(**kwargs) as stub:
        yield stub
