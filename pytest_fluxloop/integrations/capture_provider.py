"""The provider protocol of the capture of the ``openai`` and ``anthropic`` SDKs' calls
(:mod:`.capture_hooks`), the helpers its providers share, and the capture's failures.

A :class:`Provider` is one SDK's part of the capture (:mod:`.openai`, :mod:`.anthropic`
subclass it): which requests make a generation, and the :class:`Reply` of a response body or
(through an :class:`Accumulator`) of a stream's server-sent events.

A bug in the capture never breaks the agent's call: every step is guarded, logged once
(``pytest_fluxloop.capture``, :func:`capture_failed`) and recorded in the trace
(``capture_error`` in the generation's end metadata, or a ``capture_error`` event when no
generation could be opened, :func:`record_failure`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from ..sdk.context import TraceContext

__all__ = [
    "Accumulator",
    "Provider",
    "Reply",
    "Request",
    "capture_failed",
    "error_text",
    "one_or_list",
    "record_failure",
    "request_body",
]

log = logging.getLogger("pytest_fluxloop.capture")

_VERSION = re.compile(r"v\d+(?:alpha|beta)?\d*")
_SENTINELS = frozenset({"NotGiven", "Omit"})
_MAX_CACHED_URLS = 256


# --------------------------------------------------------------------------- provider protocol


class Reply(NamedTuple):
    """What a response (or a stream, so far) says: the generation's ``finish`` arguments."""

    output: Any = None
    model: Any = None
    finish_reason: Any = None
    usage: dict[str, int | None] | None = None
    error: str | None = None


class Accumulator(Protocol):
    """Folds a stream's server-sent events into a :class:`Reply` (one per stream)."""

    def event(self, name: str | None, data: str) -> bool:
        """Take one event (its ``event:`` name, its ``data:`` text); True when it is the
        stream's last (the call is over: complete, or failed)."""
        ...

    def reply(self) -> Reply:
        """The reply so far (all of it after the last event)."""
        ...


class Request(NamedTuple):
    """What the generation's ``span_start`` records of a request."""

    name: str
    operation: str
    model: Any
    messages: dict[str, Any] | None
    parameters: dict[str, Any]
    stream: bool


class Provider:
    """One SDK's part of the capture; :mod:`.openai` and :mod:`.anthropic` subclass it."""

    name: str = ""
    """The SDK's package (``openai``), also the generation's ``provider``."""
    content_keys: tuple[str, ...] = ()
    """Request body keys holding conversation content: the generation's input (kept only
    with content capture on), never its ``parameters``."""
    skipped_resources: frozenset[str] = frozenset()
    """First path segments of endpoints that make no generation (files, batches ...)."""
    skipped_actions: frozenset[str] = frozenset({"cancel", "count_tokens", "input_tokens"})
    """Last path segments of endpoints that make no generation."""
    last_events: frozenset[str | None] = frozenset({"error"})
    """Names (``event:``) of the events that end a stream (see :meth:`is_last`)."""

    def __init__(self) -> None:
        self._endpoints: dict[str, tuple[str, str] | None] = {}

    def describe(self, options: Any, stream: bool) -> Request | None:
        """The generation of a request, or None when the endpoint makes none (a GET, an
        upload, an operation on a stored object ...). Reads ``options``, changes nothing."""
        method = str(getattr(options, "method", "") or "").lower()
        if method != "post":
            return None
        endpoint = self.endpoint(str(getattr(options, "url", "") or ""))
        if endpoint is None:
            return None
        body = request_body(options)
        messages = {k: body[k] for k in self.content_keys if k in body}
        parameters = {
            k: v
            for k, v in body.items()
            if k not in self.content_keys
            and k not in ("model", "stream")
            and type(v).__name__ not in _SENTINELS
        }
        return Request(
            name=endpoint[0],
            operation=endpoint[1],
            model=body.get("model"),
            messages=messages or None,
            parameters=parameters,
            stream=bool(body.get("stream")) or stream,
        )

    def endpoint(self, url: str) -> tuple[str, str] | None:
        """The generation name and operation (the URL path) of a POST to ``url``, or None
        when it makes no generation. Cached by URL (a client uses a handful of them)."""
        cache = self._endpoints
        if url in cache:
            return cache[url]
        path = urlsplit(url).path
        segments = [s for s in path.split("/") if s and not _VERSION.fullmatch(s)]
        found: tuple[str, str] | None = None
        if not (
            not segments
            or segments[0] in self.skipped_resources
            or segments[-1] in self.skipped_actions
            # An id in the path: an operation on a stored object (/responses/resp_1/cancel).
            or any(any(c.isdigit() for c in s) for s in segments)
        ):
            name = ".".join([self.name, *(re.sub(r"[^\w-]", "_", s) for s in segments)])
            found = (name, path)
        if len(cache) < _MAX_CACHED_URLS:
            cache[url] = found
        return found

    def reduce(self, body: Any, content: bool) -> Reply:
        """The reply of a response body (decoded JSON); ``content``: keep its output."""
        raise NotImplementedError

    def is_last(self, name: str | None, data: str) -> bool:
        """Whether an event ends its stream, judged without the fold (used once the fold
        has failed): ``[DONE]``, or an event named in :attr:`last_events`."""
        return name in self.last_events or data.startswith("[DONE]")

    def accumulator(self, content: bool) -> Accumulator:
        """A fresh :class:`Accumulator` for one stream."""
        raise NotImplementedError


def request_body(options: Any) -> Mapping[str, Any]:
    """The JSON body the SDK will send: ``json_data`` with ``extra_body`` over it (read
    only: the options are never touched)."""
    body = getattr(options, "json_data", None)
    extra = getattr(options, "extra_json", None)
    if not isinstance(body, Mapping):
        body = {}
    if isinstance(extra, Mapping) and extra:
        return {**body, **extra}
    return body  # only read


def one_or_list(values: list[Any]) -> Any:
    """None for no value, the value for one, the list for several (choices)."""
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def error_text(error: Any) -> str:
    """``"<type>: <message>"`` of an API error object (``{"type": ..., "message": ...}``)."""
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("error") or ""
        kind = error.get("type") or error.get("code")
        if isinstance(message, Mapping):
            return error_text(message)
        return f"{kind}: {message}" if kind else str(message or "error")
    return str(error)


# --------------------------------------------------------------------------- failures


_logged: set[str] = set()
_logged_lock = threading.Lock()


def capture_failed(provider: str, stage: str, exc: BaseException) -> str:
    """Log a capture bug once per (provider, stage, exception type); returns its note."""
    note = f"{stage}: {type(exc).__name__}: {exc}"[:300]
    key = f"{provider}:{stage}:{type(exc).__name__}"
    with _logged_lock:
        first = key not in _logged
        _logged.add(key)
    if first:
        log.warning(
            "FluxLoop could not capture a %s call (%s); the call itself is unaffected",
            provider,
            note,
            exc_info=exc,
        )
    return note


def record_failure(ctx: TraceContext, provider: str, note: str) -> None:
    """A ``capture_error`` event: the call ran, but no generation records it."""
    # If the trace itself is unusable, the log line is all there is.
    with contextlib.suppress(Exception):
        ctx.add("event", "capture_error", metadata={"provider": provider, "error": note})
