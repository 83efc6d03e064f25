"""A small OTLP/HTTP trace receiver on 127.0.0.1 for the OpenTelemetry export tests.

It parses what it is sent (``ExportTraceServiceRequest`` protobuf, gzip or not, with the
OpenTelemetry protocol classes) and keeps every span as a plain :class:`ReceivedSpan`; a
body it cannot parse is a 400 and any other media type a 415, never a silent 200. Use it as
``with running_otlp_receiver() as receiver:`` and point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at
:attr:`OtlpReceiver.url`.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from support.http_servers import serve_in_thread

PROTOBUF = "application/x-protobuf"
MAX_BODY_BYTES = 20_000_000


@dataclass
class ReceivedEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass
class ReceivedSpan:
    """One span as it arrived (ids as hex, attributes decoded)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[ReceivedEvent]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    scope: str
    schema_url: str
    extra: dict[str, Any] = field(default_factory=dict)


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue``."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(pairs: Iterator[KeyValue] | Any) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def spans_of(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Every span of one export request."""
    found = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            schema_url = scope_spans.schema_url or resource_spans.schema_url
            for span in scope_spans.spans:
                found.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=attributes(span.attributes),
                        events=[
                            ReceivedEvent(e.name, e.time_unix_nano, attributes(e.attributes))
                            for e in span.events
                        ],
                        status_code=span.status.code,
                        status_message=span.status.message,
                        resource=resource,
                        scope=scope_spans.scope.name,
                        schema_url=schema_url,
                    )
                )
    return found


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def do_POST(self) -> None:
        server: OtlpReceiver = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return self._answer(413, b"too large", "text/plain")
        body = self.rfile.read(length)
        if self.path.split("?", 1)[0] != "/v1/traces":
            return self._answer(404, b"not found", "text/plain")
        media = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip()
        if media != PROTOBUF:
            return self._answer(415, b"only application/x-protobuf", "text/plain")
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:
            return self._answer(400, b"not an ExportTraceServiceRequest", "text/plain")
        received = spans_of(request)
        with server.lock:
            server.requests += 1
            server.spans.extend(received)
        self._answer(200, ExportTraceServiceResponse().SerializeToString(), PROTOBUF)

    def _answer(self, status: int, payload: bytes, media: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class OtlpReceiver(ThreadingHTTPServer):
    """The running receiver: :attr:`url` (the ``OTEL_EXPORTER_OTLP_ENDPOINT``),
    :attr:`spans` (every span received) and :attr:`requests` (export requests parsed)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.spans: list[ReceivedSpan] = []
        self.requests = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def received(self) -> list[ReceivedSpan]:
        """A copy of the spans received so far."""
        with self.lock:
            return list(self.spans)


def running_otlp_receiver() -> AbstractContextManager[OtlpReceiver]:
    """Start an :class:`OtlpReceiver` on a free port for the block."""
    return serve_in_thread(OtlpReceiver(), "otlp-receiver")
