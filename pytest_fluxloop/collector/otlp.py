"""``POST /v1/traces``: OTLP/HTTP trace export, in protobuf or in the OTLP JSON mapping.

A request (``ExportTraceServiceRequest``) is read with the OpenTelemetry protocol classes;
JSON goes through ``google.protobuf.json_format`` after its hex ``traceId`` / ``spanId`` are
turned into the base64 that protobuf's JSON mapping expects (OTLP JSON differs there). Each
span becomes a :class:`~.store.SpanRow`; a span with a bad id is rejected and the others are
stored, and the answer (``ExportTraceServiceResponse``, in the request's content type) carries
``partial_success`` with the number rejected and why. A body that is not a request at all is
a 400 whose body is a ``google.rpc.Status`` with the reason.

A span is linked to a FluxLoop trace by its ``gen_ai.conversation.id`` or ``fluxloop.trace_id``
attribute (:data:`LINK_ATTRIBUTES`): ``GET /api/traces/{id}`` lists those spans' OTLP traces.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from .store import SpanRow

__all__ = [
    "JSON",
    "LINK_ATTRIBUTES",
    "MEDIA_TYPES",
    "PROTOBUF",
    "OTLPError",
    "SpanBatch",
    "decode_request",
    "error_body",
    "response_body",
    "spans_of",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, "application/protobuf", JSON)
"""What ``/v1/traces`` reads (``application/protobuf`` is accepted as protobuf too)."""

CONVERSATION_ATTRIBUTE = "gen_ai.conversation.id"
FLUXLOOP_ATTRIBUTES = ("fluxloop.trace_id", "fluxloop.trace.id")
LINK_ATTRIBUTES = (CONVERSATION_ATTRIBUTE, *FLUXLOOP_ATTRIBUTES)
"""Span attributes that link a span to a FluxLoop trace id."""

_MAX_REASONS = 5
_UINT63 = 2**63 - 1


class OTLPError(ValueError):
    """The body is not an ``ExportTraceServiceRequest`` (the 400)."""


@dataclass
class SpanBatch:
    """The spans of one request to store, and the reasons of those rejected."""

    rows: list[SpanRow] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def message(self) -> str:
        """``partial_success.error_message``: how many were rejected and the first reasons."""
        if not self.rejected:
            return ""
        shown = "; ".join(self.rejected[:_MAX_REASONS])
        more = len(self.rejected) - _MAX_REASONS
        tail = f"; and {more} more" if more > 0 else ""
        return f"{len(self.rejected)} span(s) rejected: {shown}{tail}"


def is_protobuf(media: str) -> bool:
    """Whether a request media type is one of the protobuf ones."""
    return media != JSON


def decode_request(body: bytes, media: str) -> tuple[ExportTraceServiceRequest, dict[str, str]]:
    """The request, and for JSON the spans whose hex ids could not be read (by their
    ``resourceSpans[i].scopeSpans[j].spans[k]`` path, with the reason).

    Raises:
        OTLPError: not a request (bad protobuf, bad JSON, wrong shape).
    """
    request = ExportTraceServiceRequest()
    if is_protobuf(media):
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OTLPError(f"the body is not an OTLP ExportTraceServiceRequest: {exc}") from None
        return request, {}
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise OTLPError(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OTLPError("the body is not an OTLP ExportTraceServiceRequest: not a JSON object")
    bad_ids = _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise OTLPError(f"the body is not an OTLP ExportTraceServiceRequest: {exc}") from None
    return request, bad_ids


def _items(parent: Mapping[str, Any], *keys: str) -> list[Any]:
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return value
    return []


def _hex_ids_to_base64(document: dict[str, Any]) -> dict[str, str]:
    """Rewrite OTLP JSON's hex ids as base64 in place (protobuf's JSON mapping of bytes);
    an id that is not hex becomes empty, and its span is rejected later with the reason."""
    bad: dict[str, str] = {}
    id_keys = (
        ("traceId", "trace_id"),
        ("spanId", "span_id"),
        ("parentSpanId", "parent_span_id"),
    )
    for i, resource in enumerate(_items(document, "resourceSpans", "resource_spans")):
        if not isinstance(resource, dict):
            continue
        for j, scope in enumerate(_items(resource, "scopeSpans", "scope_spans")):
            if not isinstance(scope, dict):
                continue
            for k, span in enumerate(_items(scope, "spans")):
                if not isinstance(span, dict):
                    continue
                path = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                targets = [span] + [
                    link for link in _items(span, "links") if isinstance(link, dict)
                ]
                for target in targets:
                    for names in id_keys:
                        for name in names:
                            if name not in target:
                                continue
                            value = target[name]
                            try:
                                raw = bytes.fromhex(value) if isinstance(value, str) else None
                            except ValueError:
                                raw = None
                            if raw is None:
                                bad.setdefault(path, f"{name} {str(value)[:40]!r} is not hex")
                                raw = b""
                            target[name] = base64.b64encode(raw).decode()
    return bad


def _value(value: AnyValue) -> Any:
    """An attribute value as JSON: arrays and maps kept, bytes as base64, a non-finite double
    as its name (JSON has no NaN)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    return getattr(value, which)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def _kind(kind: int) -> str:
    try:
        name = Span.SpanKind.Name(kind)
    except ValueError:
        return str(kind)
    return name.removeprefix("SPAN_KIND_").lower()


def _check_ids(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"trace_id must be 16 bytes, not all zero (got {len(span.trace_id)} bytes)"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span_id must be 8 bytes, not all zero (got {len(span.span_id)} bytes)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"parent_span_id must be 8 bytes or empty (got {len(span.parent_span_id)})"
    if span.start_time_unix_nano > _UINT63 or span.end_time_unix_nano > _UINT63:
        return "start/end time is out of range"
    return None


def _link_id(attributes: Mapping[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def spans_of(request: ExportTraceServiceRequest, bad_ids: Mapping[str, str]) -> SpanBatch:
    """The rows of a request's spans and the reasons of the rejected ones."""
    batch = SpanBatch()
    for i, resource_spans in enumerate(request.resource_spans):
        resource = _dump(
            {
                "attributes": _attributes(resource_spans.resource.attributes),
                "dropped_attributes_count": resource_spans.resource.dropped_attributes_count,
                "schema_url": resource_spans.schema_url,
            }
        )
        for j, scope_spans in enumerate(resource_spans.scope_spans):
            scope_message = scope_spans.scope
            scope = _dump(
                {
                    "name": scope_message.name,
                    "version": scope_message.version,
                    "attributes": _attributes(scope_message.attributes),
                    "schema_url": scope_spans.schema_url,
                }
            )
            for k, span in enumerate(scope_spans.spans):
                path = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                reason = bad_ids.get(path) or _check_ids(span)
                if reason:
                    batch.rejected.append(f"{path}: {reason}")
                    continue
                batch.rows.append(_row(span, resource, scope))
    return batch


def _row(span: Span, resource: str, scope: str) -> SpanRow:
    attributes = _attributes(span.attributes)
    detail = {
        "status_message": span.status.message,
        "trace_state": span.trace_state,
        "flags": span.flags,
        "events": [
            {
                "name": event.name,
                "time_unix_nano": str(event.time_unix_nano),
                "attributes": _attributes(event.attributes),
            }
            for event in span.events
        ],
        "links": [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "trace_state": link.trace_state,
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ],
        "dropped_attributes_count": span.dropped_attributes_count,
        "dropped_events_count": span.dropped_events_count,
        "dropped_links_count": span.dropped_links_count,
    }
    return SpanRow(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        name=span.name,
        kind=_kind(span.kind),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_code=span.status.code,
        conversation_id=_link_id(attributes, (CONVERSATION_ATTRIBUTE,)),
        fluxloop_trace_id=_link_id(attributes, FLUXLOOP_ATTRIBUTES),
        resource=resource,
        scope=scope,
        attributes=_dump(attributes),
        detail=_dump(detail),
    )


def response_body(batch: SpanBatch, media: str) -> bytes:
    """The ``ExportTraceServiceResponse`` in the request's encoding (``partial_success`` set
    when spans were rejected)."""
    response = ExportTraceServiceResponse()
    if batch.rejected:
        response.partial_success.rejected_spans = len(batch.rejected)
        response.partial_success.error_message = batch.message()
    if is_protobuf(media):
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode()


def error_body(code: int, message: str, media: str) -> bytes:
    """A ``google.rpc.Status`` (OTLP's error body) in the request's encoding. Written by hand
    (two fields) so the collector needs no googleapis package."""
    if not is_protobuf(media):
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
