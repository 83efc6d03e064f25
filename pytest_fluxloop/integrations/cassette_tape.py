"""LLM-call cassettes at the SDKs' request path: replay a recorded response, or record one.

The capture hooks (:mod:`.capture_hooks`) ask the case's tape
(:class:`~pytest_fluxloop.cassettes.session.CaseTape`) what to do with each call before
the SDK's ``request`` runs, from the request's ``options`` (so a miss is raised before the
SDK could retry it as a connection error). The answer is carried to the SDK's HTTP client,
whose ``send`` is wrapped once per client (an instance attribute, so no other client of the
process is touched, and the wrapper does nothing unless this context is serving a call):

* **replay**: ``send`` returns an HTTP response built from the recording, never touching
  the network; the SDK parses it with its own code, so a stream is read chunk by chunk by
  the SDK's own ``Stream`` / ``AsyncStream`` (and usage accounting, the capture's
  generation, ``with_raw_response`` ... behave exactly as live);
* **record**: ``send`` goes to the server and the body is kept as it is read (a stream
  event by event, once it ends or is closed); only 2xx responses are recorded (an error the
  SDK retries is not an answer).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..cassettes.errors import CassetteMiss
from ..cassettes.session import CallPlan, CaseTape
from .capture_bodies import SSEParser
from .capture_provider import Provider, request_body
from .capture_streams import decoder, httpx_module, wrap_body

__all__ = ["Served", "plan_call", "response_chunks", "response_entry", "serving"]

_MARK = "__fluxloop_cassette__"


class Served(NamedTuple):
    """A call a tape decided, and the provider of the SDK making it."""

    plan: CallPlan
    provider: Provider


serving: ContextVar[Served | None] = ContextVar("fluxloop_cassette_call", default=None)
"""The call whose ``request`` is running in this context, when a tape decided it."""


# --------------------------------------------------------------------------- bodies


def response_entry(
    status: int, content_type: str, body: bytes, complete: bool = True
) -> dict[str, Any]:
    """The cassette ``response`` of a body: events for a stream, parsed JSON, else text."""
    entry: dict[str, Any] = {"status": status, "content_type": content_type}
    if "event-stream" in content_type:
        parser = SSEParser()
        events: list[dict[str, Any]] = []
        for name, data in [*parser.feed(body), *parser.close()]:
            event: dict[str, Any] = {"event": name} if name else {}
            try:
                event["json"] = json.loads(data)
            except ValueError:
                event["data"] = data
            events.append(event)
        entry["events"] = events
        entry["complete"] = complete
        return entry
    try:
        entry["json"] = json.loads(body)
    except ValueError:
        entry["text"] = body.decode("utf-8", "replace")
    return entry


def response_chunks(entry: Mapping[str, Any]) -> list[bytes]:
    """The body of a cassette ``response`` as it is replayed: one chunk per event."""
    if "events" in entry:
        chunks: list[bytes] = []
        for event in entry["events"]:
            lines = [f"event: {event['event']}"] if event.get("event") else []
            data = (
                json.dumps(event["json"], ensure_ascii=False, separators=(",", ":"))
                if "json" in event
                else str(event.get("data", ""))
            )
            lines.extend(f"data: {line}" for line in data.split("\n"))
            chunks.append(("\n".join(lines) + "\n\n").encode("utf-8"))
        return chunks
    if "json" in entry:
        return [json.dumps(entry["json"], ensure_ascii=False).encode("utf-8")]
    return [str(entry.get("text", "")).encode("utf-8")]


# --------------------------------------------------------------------------- replay


_body_classes: dict[tuple[type, bool], type] = {}


def _replay_body_class(base: type, asynchronous: bool) -> type:
    """A subclass of the SDK's httpx byte-stream base yielding recorded chunks."""
    cls = _body_classes.get((base, asynchronous))
    if cls is None:

        def __init__(self: Any, chunks: list[bytes]) -> None:
            self._chunks = chunks

        if asynchronous:

            async def __aiter__(self: Any) -> AsyncIterator[bytes]:
                for chunk in self._chunks:
                    yield chunk

            body = {"__init__": __init__, "__aiter__": __aiter__}
        else:

            def __iter__(self: Any) -> Iterator[bytes]:
                yield from self._chunks

            body = {"__init__": __init__, "__iter__": __iter__}
        cls = type(f"FluxloopReplay{base.__name__}", (base,), {**body, "__module__": __name__})
        _body_classes[(base, asynchronous)] = cls
    return cls


def _replayed(plan: CallPlan, request: Any, asynchronous: bool) -> Any:
    """The HTTP response of a recording, for ``request`` (unread)."""
    assert plan.interaction is not None
    entry = plan.interaction.response
    module = httpx_module(request)
    base = module.AsyncByteStream if asynchronous else module.SyncByteStream
    stream = _replay_body_class(base, asynchronous)(response_chunks(entry))
    response = module.Response(
        entry["status"],
        headers={"content-type": str(entry.get("content_type") or "application/json")},
        stream=stream,
        request=request,
    )
    # httpx sets it once a sent body is read; a version without the setter only
    # disappoints readers of .elapsed.
    with contextlib.suppress(Exception):
        response.elapsed = timedelta(0)
    return response


# --------------------------------------------------------------------------- record


class _Recorder:
    """Keeps a streamed 2xx body as it is read; records it once it ends or is closed."""

    def __init__(self, served: Served, status: int, content_type: str, encoding: str) -> None:
        self._plan = served.plan
        self._provider = served.provider
        self._status = status
        self._content_type = content_type
        self._decompress = decoder(encoding)
        self._body = bytearray()
        self._over = False

    def feed(self, chunk: bytes) -> None:
        self._body += self._decompress.decompress(chunk) if self._decompress else chunk

    def _keep(self, complete: bool) -> None:
        if self._over:
            return
        self._over = True
        entry = response_entry(self._status, self._content_type, bytes(self._body), complete)
        if not complete and _reached_last(self._provider, entry):
            # The SDK closed the body after the stream's last event (the openai SDK stops
            # reading at ``[DONE]``): the recording is whole.
            entry["complete"] = True
        self._plan.record(entry)

    def ended(self) -> None:
        self._keep(True)

    def closed(self) -> None:
        self._keep(False)

    def failed(self, exc: BaseException) -> None:
        self._over = True  # a body that broke is no answer to replay


def _reached_last(provider: Provider, entry: Mapping[str, Any]) -> bool:
    """Whether a recorded stream holds its provider's last event (``[DONE]``,
    ``message_stop`` ...)."""
    for event in entry.get("events") or ():
        data = "" if "json" in event else str(event.get("data", ""))
        if provider.is_last(event.get("event"), data):
            return True
    return False


def _record(served: Served, response: Any, streamed: bool) -> None:
    plan = served.plan
    status = int(response.status_code)
    if not 200 <= status < 300:
        return
    headers = response.headers
    content_type = str(headers.get("content-type") or "").lower()
    if not streamed:
        plan.record(response_entry(status, content_type, response.content))
        return
    encoding = str(headers.get("content-encoding") or "")
    try:
        recorder = _Recorder(served, status, content_type, encoding)
    except ValueError as exc:
        plan.tape.fail(f"a {plan.call.provider} response was not recorded: {exc} cannot be decoded")
        return
    wrap_body(response, recorder)


# --------------------------------------------------------------------------- the send hook


def _sync_send(original: Any) -> Any:
    @functools.wraps(original)
    def send(request: Any, *args: Any, **kwargs: Any) -> Any:
        served = serving.get()
        if served is None:
            return original(request, *args, **kwargs)
        if served.plan.replay:
            response = _replayed(served.plan, request, asynchronous=False)
            if not kwargs.get("stream"):
                response.read()
            return response
        response = original(request, *args, **kwargs)
        _record(served, response, bool(kwargs.get("stream")))
        return response

    return send


def _async_send(original: Any) -> Any:
    @functools.wraps(original)
    async def send(request: Any, *args: Any, **kwargs: Any) -> Any:
        served = serving.get()
        if served is None:
            return await original(request, *args, **kwargs)
        if served.plan.replay:
            response = _replayed(served.plan, request, asynchronous=True)
            if not kwargs.get("stream"):
                await response.aread()
            return response
        response = await original(request, *args, **kwargs)
        _record(served, response, bool(kwargs.get("stream")))
        return response

    return send


def _hook_send(sdk_client: Any, asynchronous: bool) -> None:
    """Wrap the ``send`` of ``sdk_client``'s HTTP client, once (an instance attribute)."""
    http = sdk_client._client
    current = http.send
    if getattr(current, _MARK, False):
        return
    wrapper = (_async_send if asynchronous else _sync_send)(current)
    setattr(wrapper, _MARK, True)
    http.send = wrapper


# --------------------------------------------------------------------------- one call


def _endpoint(options: Any) -> str:
    method = str(getattr(options, "method", "") or "post").upper()
    path = urlsplit(str(getattr(options, "url", "") or "")).path or "/"
    return path if method == "POST" else f"{method} {path}"


def plan_call(
    provider: Provider,
    tape: CaseTape,
    sdk_client: Any,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    asynchronous: bool,
) -> CallPlan:
    """The tape's decision on one ``request(cast_to, options, ...)`` call, with the SDK
    client's ``send`` ready to carry it out.

    Raises:
        CassetteMiss: the call must not be made (no recording matches while replaying, or
            the client cannot be served from the tape).
    """
    options = kwargs["options"] if "options" in kwargs else args[1]
    plan = tape.plan(provider.name, _endpoint(options), request_body(options))
    try:
        _hook_send(sdk_client, asynchronous)
    except Exception as exc:
        if plan.replay:
            message = (
                f"the {provider.name} client's HTTP client cannot be served from cassette "
                f"{tape.path} ({type(exc).__name__}: {exc}); replay never calls the network"
            )
            tape.fail(message)
            raise CassetteMiss(message) from None
        tape.fail(f"a {provider.name} call was not recorded ({type(exc).__name__}: {exc})")
    return plan
