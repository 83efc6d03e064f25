"""Stream observation in the capture of the ``openai`` and ``anthropic`` SDKs' calls
(:mod:`.capture_hooks`).

**Streams** (and any body not read when ``request`` returns: ``with_raw_response`` with
``stream=True``, ``with_streaming_response``) are observed at the HTTP body: the response's
``stream`` attribute (an httpx ``SyncByteStream``/``AsyncByteStream``) is replaced by a
subclass of the same base that forwards every chunk, attribute and close to it and feeds a
:class:`StreamObserver`. Why there and not on the SDK's ``Stream``: a plain ``Stream``, a raw
response read later with ``.parse()`` or ``iter_lines()``, a streaming response and the
``messages.stream()`` helper all read that one body, while a ``Stream`` object exists only in
the first case; the SDK's objects stay exactly what the SDK returned (another
instrumentation that replaces the returned stream with its own wrapper is observed too); and
``anthropic``'s own tracing wraps the same attribute the same way. The cost is parsing the
server-sent events a second time, and that a stream counts as complete once its last event
has *arrived* (a consumer that closes it afterwards has lost nothing the model produced).

A stream's generation ends once: at its terminal event (``[DONE]``, ``response.completed``,
``message_stop``) or the end of its body (``ok``), an error event or a failure while reading
(``error``), a close before its end (``closed``), or when the response, or the stream object
returned for it, is garbage collected unfinished (``abandoned``, through
:func:`weakref.finalize`).
"""

from __future__ import annotations

import inspect
import sys
import weakref
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from ..sdk.generation import Generation, GenerationStatus
from .capture_bodies import SSEParser, reply_from_body
from .capture_provider import Accumulator, Provider, Reply, capture_failed

__all__ = [
    "MAX_BODY_BYTES",
    "BodyObserver",
    "ObservedCall",
    "StreamObserver",
    "decoder",
    "httpx_module",
    "observe",
    "wrap_body",
]

MAX_BODY_BYTES = 16 * 1024 * 1024
"""A non-streamed body read through a streaming response is kept (to be parsed at its end)
up to this size; past it the capture records a ``capture_error`` instead of the reply."""


def decoder(content_encoding: str) -> Any:
    """A ``zlib`` decompressor for a body sent with ``content_encoding`` (None: the bytes
    are the content). Raises ValueError naming an encoding it cannot decode."""
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    if encoding in ("", "identity"):
        return None
    raise ValueError(f"content-encoding {encoding!r}")


class BodyObserver(Protocol):
    """What reads along a response body (:func:`wrap_body`): every raw chunk, then how the
    body ended."""

    def feed(self, chunk: bytes) -> None:
        """Bytes read from the body (raw: still content-encoded)."""
        ...

    def ended(self) -> None:
        """The body was read to its end."""
        ...

    def closed(self) -> None:
        """The body was closed (maybe before its end)."""
        ...

    def failed(self, exc: BaseException) -> None:
        """Reading the body raised ``exc``."""
        ...


class ObservedCall(Protocol):
    """What a :class:`StreamObserver` reads of the call whose body it observes (the
    capture's one call, :mod:`.capture_hooks`)."""

    generation: Generation
    content: bool

    def extra(self) -> dict[str, Any]:
        """The ``span_end`` metadata of the call itself."""
        ...


class StreamObserver:
    """Watches one HTTP body as the SDK (or the user) reads it; finishes its generation once.

    Holds no reference to the response or to the SDK's objects (they are watched through
    weak references), so dropping them is what abandons the stream.
    """

    def __init__(
        self, provider: Provider, call: ObservedCall, content_type: str, content_encoding: str
    ) -> None:
        self._provider = provider
        self._generation = call.generation
        self._extra = call.extra()
        self._content = call.content
        self._finalizers: list[weakref.finalize[Any, Any]] = []
        self._broken: str | None = None
        self._parser: SSEParser | None = None
        self._accumulator: Accumulator | None = None
        self._body: bytearray | None = None
        self._content_type = content_type
        if "event-stream" in content_type:
            self._parser = SSEParser()
            self._accumulator = provider.accumulator(call.content)
        else:
            self._body = bytearray()
        self._decompress: Any = None
        try:
            self._decompress = decoder(content_encoding)
        except ValueError as exc:
            self._broken = f"{exc} is not decoded by the capture"
            self._parser = self._body = None

    def watch(self, obj: Any) -> None:
        """Finish as ``abandoned`` if ``obj`` is garbage collected before the end."""
        finalizer = weakref.finalize(obj, self.abandon)
        finalizer.atexit = False  # at exit, the trace is long written
        self._finalizers.append(finalizer)

    # ---- what the body reports

    def feed(self, chunk: bytes) -> None:
        """Bytes read from the body (raw: still content-encoded)."""
        generation = self._generation
        if generation.finished or not chunk:
            return
        if generation.stream:
            generation.first_chunk()
        if self._parser is None and self._body is None:
            return  # nothing to parse (an encoding the capture cannot read)
        try:
            data = self._decompress.decompress(chunk) if self._decompress else chunk
            if self._parser is not None:
                self._events(self._parser.feed(data))
            elif self._body is not None:
                if len(self._body) + len(data) > MAX_BODY_BYTES:
                    self._body = None
                    self._broken = f"body over {MAX_BODY_BYTES} bytes not parsed"
                else:
                    self._body += data
        except Exception as exc:
            self._broken = capture_failed(self._provider.name, "stream", exc)
            self._parser = self._body = None

    def _events(self, events: list[tuple[str | None, str]]) -> None:
        """Fold events; finish at the last. After a failure of the provider's fold, only
        watch for the last event (:meth:`Provider.is_last`), so the stream still ends as it
        did (``ok``, not ``closed`` when the SDK closes it after its last event)."""
        accumulator = self._accumulator
        for name, data in events:
            if self._broken is None and accumulator is not None:
                try:
                    last = accumulator.event(name, data)
                except Exception as exc:
                    self._broken = capture_failed(self._provider.name, "stream", exc)
                    last = self._provider.is_last(name, data)
            else:
                last = self._provider.is_last(name, data)
            if last:
                self._finish()
                return

    def ended(self) -> None:
        """The body was read to its end."""
        if self._generation.finished:
            return self._detach()
        try:
            if self._parser is not None:
                self._events(self._parser.close())
        except Exception as exc:
            self._broken = capture_failed(self._provider.name, "stream", exc)
        self._finish()

    def closed(self) -> None:
        """The body was closed (before its end, if the generation is still open)."""
        self._finish(status="closed")

    def failed(self, exc: BaseException) -> None:
        """Reading the body raised ``exc`` (the SDK re-raises it, wrapped or not)."""
        self._finish(error=exc)

    def abandon(self) -> None:
        """The response (or its stream object) was garbage collected unfinished."""
        self._finish(status="abandoned")

    # ---- ending

    def _reply(self) -> Reply:
        if self._broken is not None:
            return Reply()
        if self._accumulator is not None:
            return self._accumulator.reply()
        if self._body is not None:
            return reply_from_body(
                self._provider, bytes(self._body), self._content_type, self._content
            )
        return Reply()

    def _finish(
        self, *, error: BaseException | None = None, status: GenerationStatus | None = None
    ) -> None:
        generation = self._generation
        if generation.finished:
            return self._detach()
        try:
            reply = self._reply()
        except Exception as exc:
            self._broken = capture_failed(self._provider.name, "stream", exc)
            reply = Reply()
        extra = dict(self._extra)
        if self._broken is not None:
            extra["capture_error"] = self._broken
        failure: BaseException | str | None = error if error is not None else reply.error
        generation.finish(
            output=reply.output,
            model=reply.model,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            error=failure,
            status=None if failure is not None else status,
            extra=extra,
        )
        self._detach()

    def _detach(self) -> None:
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers.clear()


class _ObservedBody:
    """What both observing mixins share: the wrapped body and its observer, and every other
    attribute read through to the wrapped body."""

    def __init__(self, inner: Any, observer: BodyObserver) -> None:
        self._fluxloop_inner = inner
        self._fluxloop_observer = observer

    def __getattr__(self, name: str) -> Any:
        # What httpx or the SDK read from the body they know (httpx's ``elapsed``,
        # anthropic's ``stream_observer``) is the wrapped body's.
        if name.startswith("_fluxloop_"):
            raise AttributeError(name)
        return getattr(self._fluxloop_inner, name)


class _ObservedSyncStream(_ObservedBody):
    """Mixed into the SDK's httpx ``SyncByteStream`` by :func:`_observed_class`: the body as
    before, every chunk and the close also reported to a :class:`StreamObserver`."""

    def __iter__(self) -> Iterator[bytes]:
        observer = self._fluxloop_observer
        chunks = iter(self._fluxloop_inner)
        try:
            for chunk in chunks:
                observer.feed(chunk)
                yield chunk
        except GeneratorExit:  # the reader stopped; its close() says how
            raise
        except BaseException as exc:
            observer.failed(exc)
            raise
        else:
            observer.ended()
        finally:
            if inspect.isgenerator(chunks):
                chunks.close()

    def close(self) -> None:
        try:
            self._fluxloop_inner.close()
        finally:
            self._fluxloop_observer.closed()


class _ObservedAsyncStream(_ObservedBody):
    """The ``AsyncByteStream`` counterpart of :class:`_ObservedSyncStream`."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        observer = self._fluxloop_observer
        chunks = self._fluxloop_inner.__aiter__()
        try:
            async for chunk in chunks:
                observer.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            observer.failed(exc)
            raise
        else:
            observer.ended()
        finally:
            if inspect.isasyncgen(chunks):
                await chunks.aclose()

    async def aclose(self) -> None:
        try:
            await self._fluxloop_inner.aclose()
        finally:
            self._fluxloop_observer.closed()


_observed_classes: dict[type, type] = {}


def _observed_class(base: type, asynchronous: bool) -> type:
    """A subclass of ``base`` (the SDK's httpx byte stream class, so httpx's own
    ``isinstance`` checks hold) with the observing mixin first in its MRO."""
    cls = _observed_classes.get(base)
    if cls is None:
        mixin = _ObservedAsyncStream if asynchronous else _ObservedSyncStream
        cls = type(f"Fluxloop{base.__name__}", (mixin, base), {"__module__": __name__})
        _observed_classes[base] = cls
    return cls


def httpx_module(obj: Any) -> Any:
    """The httpx module an SDK object (a request, a response) comes from: ``httpx2`` today,
    ``httpx`` in older SDKs, found where its class lives (nothing here imports httpx)."""
    return sys.modules.get(type(obj).__module__.split(".")[0])


def wrap_body(response: Any, observer: BodyObserver) -> None:
    """Make ``response``'s unread body report to ``observer`` as it is read (a subclass of
    the body's own httpx byte-stream class replaces it, so httpx's checks still hold)."""
    module = httpx_module(response)
    sync_base = getattr(module, "SyncByteStream", None)
    async_base = getattr(module, "AsyncByteStream", None)
    body = response.stream
    if isinstance(async_base, type) and isinstance(body, async_base):
        cls = _observed_class(async_base, asynchronous=True)
    elif isinstance(sync_base, type) and isinstance(body, sync_base):
        cls = _observed_class(sync_base, asynchronous=False)
    else:
        raise TypeError(f"unknown response body type {type(body).__name__}")
    response.stream = cls(body, observer)


def observe(provider: Provider, call: ObservedCall, response: Any, owner: Any) -> None:
    """Observe ``response``'s unread body; ``owner``: the stream object returned for it."""
    headers = response.headers
    observer = StreamObserver(
        provider,
        call,
        str(headers.get("content-type") or "").lower(),
        str(headers.get("content-encoding") or ""),
    )
    observer.watch(response)
    if owner is not None:
        observer.watch(owner)
    wrap_body(response, observer)
