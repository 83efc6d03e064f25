"""A scripted LLM server on 127.0.0.1 for tests that drive the real openai/anthropic clients.

Each endpoint (``/v1/chat/completions``, ``/v1/messages`` ...) has a queue of
:class:`Scripted` responses, played in order; every request is recorded (path, headers, body)
for assertions. A request to an endpoint whose queue is empty gets a 599 error, so a test that
scripted too few responses fails loudly instead of hanging.

Streamed answers (server-sent events, sent part by part, optionally held half-way or cut):
:func:`chat_stream`, :func:`responses_stream`, :func:`anthropic_stream`, or :func:`sse` with
parts built by :func:`sse_part`; :func:`responses_reply` answers ``/v1/responses``.

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
RESPONSES = "/v1/responses"
MAX_BODY_BYTES = 5_000_000
UNSCRIPTED_STATUS = 599


@dataclass
class Scripted:
    """One scripted response: status, headers and body (dict/list → JSON, str/bytes → raw).

    ``drop`` closes the connection without answering (a connection reset); ``delay`` sleeps
    before answering (bounded by the test's own values).

    A streamed answer (:func:`sse`) sends ``parts`` one by one, each flushed, as
    ``content_type`` (default ``text/event-stream``): after ``hold_after`` parts it waits for
    ``resume`` (at most 5 s) before the rest, so a client reads a stream's start while its end
    has not arrived; ``cut`` drops the connection after the parts although the headers
    promised more (a stream broken mid-way).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0
    parts: list[bytes] | None = None
    content_type: str | None = None
    hold_after: int | None = None
    resume: threading.Event = field(default_factory=threading.Event)
    cut: bool = False

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

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the client went away (a timeout, a
            self.close_connection = True  # stream closed or dropped early): nothing to say

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
        if scripted.parts is not None:
            self._send_parts(scripted)
            return
        payload, content_type = scripted.payload()
        self.send_response(scripted.status)
        headers = {"Content-Type": content_type, **scripted.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_parts(self, scripted: Scripted) -> None:
        parts = scripted.parts or []
        self.send_response(scripted.status)
        headers = {"Content-Type": scripted.content_type or "text/event-stream", **scripted.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        promised = sum(len(part) for part in parts) + (64 if scripted.cut else 0)
        self.send_header("Content-Length", str(promised))
        self.end_headers()
        try:
            for index, part in enumerate(parts):
                if index == scripted.hold_after:
                    scripted.resume.wait(timeout=5)
                self.wfile.write(part)
                self.wfile.flush()
        except OSError:  # the client went away (it closed the stream early)
            self.close_connection = True
            return
        if scripted.cut:
            self.close_connection = True

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


# --------------------------------------------------------------------------- streamed bodies


def sse_part(data: Any, event: str | None = None) -> bytes:
    """One server-sent event (``data`` as JSON unless it is a str)."""
    head = f"event: {event}\n" if event else ""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {text}\n\n".encode()


def sse(
    parts: list[bytes],
    *,
    hold_after: int | None = None,
    cut: bool = False,
    headers: dict[str, str] | None = None,
) -> Scripted:
    """A streamed answer made of these events (see :class:`Scripted` for the options)."""
    return Scripted(parts=parts, hold_after=hold_after, cut=cut, headers=headers or {})


def chat_stream_parts(
    pieces: list[str],
    *,
    model: str = "test-model",
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    tool_call: dict[str, str] | None = None,
    done: bool = True,
) -> list[bytes]:
    """A ``/v1/chat/completions`` stream: a role chunk, one chunk per text piece, an optional
    tool call (``{"name": ..., "arguments": ...}``, in two chunks), the finish chunk, a usage
    chunk when ``usage`` is given (what ``stream_options.include_usage`` asks for) and
    ``[DONE]``."""
    base = {
        "id": "chatcmpl-stream",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
    }

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return sse_part({**base, "choices": [choice]})

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": piece}) for piece in pieces]
    if tool_call is not None:
        head = {"index": 0, "id": "call_1", "type": "function"}
        parts.append(
            chunk(
                {"tool_calls": [{**head, "function": {"name": tool_call["name"], "arguments": ""}}]}
            )
        )
        parts.append(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": tool_call["arguments"]}}]})
        )
    parts.append(chunk({}, finish_reason))
    if usage is not None:
        parts.append(sse_part({**base, "choices": [], "usage": usage}))
    if done:
        parts.append(sse_part("[DONE]"))
    return parts


def chat_stream(pieces: list[str], **options: Any) -> Scripted:
    """:func:`chat_stream_parts` as a streamed answer (``hold_after``/``cut`` go to
    :func:`sse`)."""
    stream_options = {k: options.pop(k) for k in ("hold_after", "cut") if k in options}
    return sse(chat_stream_parts(pieces, **options), **stream_options)


def _response_object(text: str, model: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    message = {
        "id": "msg_resp",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": "resp_test",
        "object": "response",
        "created_at": 1,
        "model": model,
        "status": "completed",
        "output": [message],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage
        if usage is not None
        else {
            "input_tokens": 50,
            "output_tokens": 10,
            "total_tokens": 60,
            "input_tokens_details": {"cached_tokens": 5},
            "output_tokens_details": {"reasoning_tokens": 3},
        },
    }


def responses_reply(
    text: str, *, model: str = "test-model", usage: dict[str, Any] | None = None
) -> Scripted:
    """A ``/v1/responses`` success with one output message."""
    return Scripted(body=_response_object(text, model, usage))


def responses_stream(
    pieces: list[str],
    *,
    model: str = "test-model",
    usage: dict[str, Any] | None = None,
    **stream_options: Any,
) -> Scripted:
    """A ``/v1/responses`` stream: created, the output item and its content part added, one
    text delta per piece, completed (with the whole response, usage included)."""
    final = _response_object("".join(pieces), model, usage)
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    where = {"item_id": "msg_resp", "output_index": 0, "content_index": 0}
    item = {**final["output"][0], "status": "in_progress", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
    ]
    events += [
        {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
        for piece in pieces
    ]
    events.append({"type": "response.completed", "response": final})
    parts = [
        sse_part({**event, "sequence_number": n}, event["type"]) for n, event in enumerate(events)
    ]
    return sse(parts, **stream_options)


def anthropic_stream_parts(
    pieces: list[str],
    *,
    model: str = "claude-test",
    stop_reason: str = "end_turn",
    input_tokens: int = 80,
    cache_read_input_tokens: int | None = None,
    output_tokens: int = 15,
) -> list[bytes]:
    """A ``/v1/messages`` stream: message_start (input usage, output_tokens 1), one text
    block with a delta per piece, message_delta (stop reason, cumulative output_tokens),
    message_stop."""
    start_usage: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": 1}
    if cache_read_input_tokens is not None:
        start_usage["cache_read_input_tokens"] = cache_read_input_tokens
    message = {
        "id": "msg_stream",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    parts = [
        sse_part({"type": "message_start", "message": message}, "message_start"),
        sse_part(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        sse_part({"type": "ping"}, "ping"),
    ]
    parts += [
        sse_part(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
            "content_block_delta",
        )
        for p in pieces
    ]
    parts += [
        sse_part({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse_part(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
            "message_delta",
        ),
        sse_part({"type": "message_stop"}, "message_stop"),
    ]
    return parts


def anthropic_stream(pieces: list[str], **options: Any) -> Scripted:
    """:func:`anthropic_stream_parts` as a streamed answer (``hold_after``/``cut`` go to
    :func:`sse`)."""
    stream_options = {k: options.pop(k) for k in ("hold_after", "cut") if k in options}
    return sse(anthropic_stream_parts(pieces, **options), **stream_options)
