"""A scripted LLM server on 127.0.0.1 for tests that drive the real openai/anthropic clients.

Each endpoint (``/v1/chat/completions``, ``/v1/messages`` ...) has a queue of
:class:`Scripted` responses, played in order; every request is recorded (path, headers, body)
for assertions. A request to an endpoint whose queue is empty gets a 599 error, so a test that
scripted too few responses fails loudly instead of hanging.

Use the ``llm_server`` fixture, or ``with running_llm_server() as server: ...``::

    llm_server.script(CHAT, chat_completion('{"decision": ...}'))
    client = openai.OpenAI(base_url=llm_server.openai_base_url, api_key="k", max_retries=0)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
MAX_BODY_BYTES = 5_000_000
UNSCRIPTED_STATUS = 599


@dataclass
class Scripted:
    """One scripted response: status, headers and body (dict/list → JSON, str/bytes → raw).

    ``drop`` closes the connection without answering (a connection reset); ``delay`` sleeps
    before answering (bounded by the test's own values).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0

    def payload(self) -> tuple[bytes, str]:
        """The body bytes and their content type."""
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body if self.body is not None else {}).encode(), "application/json"


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


class FakeLLMServer:
    """Scripted HTTP server; thread-safe queues, records every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Scripted]] = {}
        self._requests: list[Recorded] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- scripting / records

    def script(self, path: str, *responses: Scripted) -> FakeLLMServer:
        """Append responses to ``path``'s queue (played in order, one per request)."""
        with self._lock:
            self._queues.setdefault(path, deque()).extend(responses)
        return self

    def pending(self, path: str) -> int:
        """How many scripted responses of ``path`` have not been served yet."""
        with self._lock:
            return len(self._queues.get(path, ()))

    def requests(self, path: str | None = None) -> list[Recorded]:
        """The recorded requests (of one path, or all), oldest first."""
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def _next(self, request: Recorded) -> Scripted:
        with self._lock:
            self._requests.append(request)
            queue = self._queues.get(request.path)
            if queue:
                return queue.popleft()
        return Scripted(
            status=UNSCRIPTED_STATUS,
            body={"error": {"message": f"no scripted response for {request.path}"}},
        )

    # ----------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the Anthropic client's base URL)."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1`` (the OpenAI client's base URL)."""
        return f"{self.url}/v1"

    def start(self) -> FakeLLMServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLLMServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # a stuck client can't hold a handler thread forever

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
        body = self.rfile.read(length) if length > 0 else b""
        recorded = Recorded(
            method=self.command,
            path=self.path.split("?", 1)[0],
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        scripted = self.owner._next(recorded)
        if scripted.delay:
            time.sleep(scripted.delay)
        if scripted.drop:
            self.close_connection = True
            return
        payload, content_type = scripted.payload()
        self.send_response(scripted.status)
        headers = {"Content-Type": content_type, **scripted.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = _handle
    do_GET = _handle


@contextmanager
def running_llm_server() -> Iterator[FakeLLMServer]:
    """A started :class:`FakeLLMServer`, stopped on exit."""
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    """A fresh scripted LLM server on 127.0.0.1 for one test."""
    with running_llm_server() as server:
        yield server


# --------------------------------------------------------------------------- response bodies


def chat_completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    model: str = "test-model",
    usage: dict[str, int] | None = None,
) -> Scripted:
    """A ``/v1/chat/completions`` success with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if refusal is not None:
        message["refusal"] = refusal
    return Scripted(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": usage
            if usage is not None
            else {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
    )


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    type: str = "invalid_request_error",
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Scripted:
    """An OpenAI-style error response."""
    return Scripted(
        status=status,
        body={"error": {"message": message, "type": type, "param": param, "code": code}},
        headers=headers or {},
    )


def anthropic_message(
    *,
    tool_input: dict[str, Any] | None = None,
    text: str | None = None,
    stop_reason: str | None = None,
    tool_name: str = "supervisor_decision",
    usage: dict[str, int] | None = None,
) -> Scripted:
    """A ``/v1/messages`` success with a tool_use block and/or a text block."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool_input is not None:
        content.append(
            {"type": "tool_use", "id": "toolu_test", "name": tool_name, "input": tool_input}
        )
    if stop_reason is None:
        stop_reason = "tool_use" if tool_input is not None else "end_turn"
    return Scripted(
        body={
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage if usage is not None else {"input_tokens": 80, "output_tokens": 15},
        }
    )


def anthropic_error(
    status: int, message: str, *, type: str = "invalid_request_error", **headers: str
) -> Scripted:
    """An Anthropic-style error response (``headers`` given as keyword arguments)."""
    return Scripted(
        status=status,
        body={"type": "error", "error": {"type": type, "message": message}},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )
