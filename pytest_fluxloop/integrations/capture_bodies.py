"""Response bodies in the capture of the ``openai`` and ``anthropic`` SDKs' calls
(:mod:`.capture_hooks`): the server-sent events parser, and the reply of a whole body.

A body the SDK has read (JSON, or a stream's events read at once) is reduced by the
provider from those bytes, not from the SDK's objects; a stream's events are parsed a
second time, as they arrive (:mod:`.capture_streams`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .capture_provider import Provider, Reply

__all__ = ["SSEParser", "content_type", "read_body", "reply_from_body", "response_of"]


# --------------------------------------------------------------------------- server-sent events


class SSEParser:
    """Incremental server-sent events parser: bytes in, ``(event, data)`` pairs out.

    Lines end with CRLF, LF or CR (a CR at the end of a chunk waits for the next one, which
    may start with its LF); an event is dispatched at a blank line when it has data. Lines
    stay bytes until an event is dispatched (this runs on every chunk of every stream).
    """

    __slots__ = ("_data", "_event", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._event: bytes | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, str]]:
        """The events completed by ``chunk``."""
        buffer = self._pending + chunk if self._pending else chunk
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._pending = lines.pop() + held
        return self._lines(lines)

    def close(self) -> list[tuple[str | None, str]]:
        """The last event of a body that did not end with a blank line."""
        pending, self._pending = self._pending.rstrip(b"\r"), b""
        return self._lines([pending, b""] if pending else [b""])

    def _lines(self, lines: list[bytes]) -> list[tuple[str | None, str]]:
        events: list[tuple[str | None, str]] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    name = self._event.decode("utf-8", "replace") if self._event else None
                    events.append((name, b"\n".join(data).decode("utf-8", "replace")))
                    data.clear()
                self._event = None
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif line.startswith(b"event:"):
                self._event = line[7:] if line.startswith(b"event: ") else line[6:]
            # Comments (":"), "id:", "retry:" and unknown fields say nothing about the reply.
        return events


# --------------------------------------------------------------------------- bodies


def read_body(response: Any) -> bytes | None:
    """The body of an HTTP response the SDK has read, else None (a stream not read yet)."""
    try:
        content = response.content
    except Exception:  # httpx's ResponseNotRead: a streamed body
        return None
    return content if isinstance(content, bytes) else None


def content_type(response: Any) -> str:
    try:
        return str(response.headers.get("content-type") or "").lower()
    except Exception:
        return ""


def reply_from_body(
    provider: Provider, body: bytes, content_type: str | Callable[[], str], content: bool
) -> Reply:
    """The reply of a whole response body: JSON, or a stream's events read at once.
    ``content_type`` may be a function, called only when the body is not JSON."""
    if not body:
        return Reply()
    if body[:1] in (b"{", b"["):  # JSON (an event stream starts with a field name)
        return provider.reduce(json.loads(body), content)
    if callable(content_type):
        content_type = content_type()
    if "event-stream" in content_type:
        accumulator = provider.accumulator(content)
        parser = SSEParser()
        for name, data in [*parser.feed(body), *parser.close()]:
            if accumulator.event(name, data):
                break
        return accumulator.reply()
    if "json" in content_type:
        return provider.reduce(json.loads(body), content)
    return Reply()  # audio, images as bytes ...: timings only


def _is_http_response(value: Any) -> bool:
    return hasattr(value, "is_stream_consumed") and hasattr(value, "headers")


def response_of(result: Any) -> tuple[Any, bool]:
    """The HTTP response behind what ``request`` returned, and whether ``result`` is a
    stream object of its own (a ``Stream``, whose loss abandons the stream)."""
    if result is None or isinstance(result, (BaseModel, str, bytes, int, float, list, dict)):
        return None, False  # a parsed result (a pydantic model ...): its body was read
    if _is_http_response(result):
        return result, False
    raw = getattr(result, "http_response", None)  # with_raw_response / with_streaming_response
    if _is_http_response(raw):
        return raw, False
    streamed = getattr(result, "response", None)  # Stream / AsyncStream
    if _is_http_response(streamed):
        return streamed, True
    return None, False
