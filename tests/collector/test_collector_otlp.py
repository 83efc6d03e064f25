"""``POST /v1/traces``: OTLP/HTTP from the OpenTelemetry SDK's own exporter and from raw
requests, protobuf and JSON, gzip, partial success, idempotence (SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.collector_server import TOKEN, Collector, make_trace

from pytest_fluxloop.shipping.wire import make_batch, trace_items

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def _exporter(collector: Collector, token: str = TOKEN, gzip_it: bool = True) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=f"{collector.url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        compression=Compression.Gzip if gzip_it else Compression.NoCompression,
        timeout=10,
    )


def _agent_run(provider: TracerProvider, conversation_id: str) -> None:
    """An agent call as the GenAI conventions shape it: the root span carries the
    conversation id, its children do not."""
    tracer = provider.get_tracer("fluxloop-test", "1.2.3")
    with tracer.start_as_current_span(
        "invoke_agent support-bot",
        attributes={
            "gen_ai.conversation.id": conversation_id,
            "gen_ai.operation.name": "invoke_agent",
        },
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 12,
                "ratio": 0.5,
                "tags": ["a", "b"],
                "cached": False,
            },
        ) as chat:
            chat.add_event("gen_ai.choice", {"index": 0})
        with tracer.start_as_current_span("execute_tool search"):
            pass


def _spans(collector: Collector, trace_id: str) -> list[dict[str, Any]]:
    reply = collector.get(f"/api/traces/{trace_id}")
    assert reply.status == 200, reply.body
    spans: list[dict[str, Any]] = reply.json()["spans"]
    return spans


def test_the_sdk_exporter_sends_spans_that_the_api_returns(collector: Collector) -> None:
    conversation = "conv-" + uuid.uuid4().hex
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(_exporter(collector)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _agent_run(provider, conversation)
    provider.shutdown()
    finished = memory.get_finished_spans()
    otlp_trace_id = format(finished[0].context.trace_id, "032x")

    spans = _spans(collector, otlp_trace_id)
    assert sorted(s["name"] for s in spans) == [
        "chat gpt-4o",
        "execute_tool search",
        "invoke_agent support-bot",
    ]
    by_name = {s["name"]: s for s in spans}
    root = by_name["invoke_agent support-bot"]
    assert root["parent_span_id"] is None
    assert root["span_id"] == format(
        next(s for s in finished if s.parent is None).context.span_id, "016x"
    )
    chat = by_name["chat gpt-4o"]
    assert chat["parent_span_id"] == root["span_id"]
    assert chat["trace_id"] == otlp_trace_id
    assert chat["kind"] == "internal"
    assert chat["attributes"] == {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 12,
        "ratio": 0.5,
        "tags": ["a", "b"],
        "cached": False,
    }
    assert chat["events"][0]["name"] == "gen_ai.choice"
    assert chat["events"][0]["attributes"] == {"index": 0}
    assert chat["resource"]["attributes"]["service.name"] == "support-bot"
    assert chat["scope"]["name"] == "fluxloop-test"
    assert chat["scope"]["version"] == "1.2.3"
    assert int(chat["end_time_unix_nano"]) >= int(chat["start_time_unix_nano"]) > 0
    # Found by its conversation id too: the whole OTLP trace, children included.
    assert {s["span_id"] for s in _spans(collector, conversation)} == {s["span_id"] for s in spans}

    # Exported again (a retry): nothing stored twice.
    assert _exporter(collector, gzip_it=False).export(finished) == SpanExportResult.SUCCESS
    assert len(_spans(collector, otlp_trace_id)) == 3


def test_the_exporter_with_a_wrong_token_fails(collector: Collector) -> None:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _agent_run(provider, "conv-" + uuid.uuid4().hex)
    finished = memory.get_finished_spans()
    assert _exporter(collector, token="nope").export(finished) == SpanExportResult.FAILURE
    assert (
        collector.get(f"/api/traces/{format(finished[0].context.trace_id, '032x')}").status == 404
    )


def _json_request(trace_hex: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "raw-json"}}]
                },
                "scopeSpans": [{"scope": {"name": "raw", "version": "0"}, "spans": spans}],
            }
        ]
    }


def _json_span(trace_hex: str, span_hex: str, parent_hex: str = "", **extra: Any) -> dict[str, Any]:
    span = {
        "traceId": trace_hex,
        "spanId": span_hex,
        "name": f"span {span_hex}",
        "kind": 3,
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601500000000",
        "status": {"code": 2, "message": "boom"},
        **extra,
    }
    if parent_hex:
        span["parentSpanId"] = parent_hex
    return span


def test_otlp_json_children_first_then_parent(collector: Collector) -> None:
    trace_hex = uuid.uuid4().hex.upper()  # OTLP JSON hex, any case
    root, child = "a1" * 8, "b2" * 8
    fluxloop_id = "flux-" + uuid.uuid4().hex
    child_body = _json_request(
        trace_hex,
        [
            _json_span(
                trace_hex,
                child,
                root,
                attributes=[
                    {"key": "fluxloop.trace_id", "value": {"stringValue": fluxloop_id}},
                    {"key": "n", "value": {"intValue": "7"}},
                    {"key": "blob", "value": {"bytesValue": "AAE="}},
                    {
                        "key": "map",
                        "value": {
                            "kvlistValue": {"values": [{"key": "k", "value": {"doubleValue": 1.5}}]}
                        },
                    },
                ],
            )
        ],
    )
    reply = collector.request("POST", "/v1/traces", json.dumps(child_body).encode(), JSON)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    assert json.loads(reply.body) == {}
    # The parent, gzip-compressed, later.
    parent_body = gzip.compress(
        json.dumps(_json_request(trace_hex, [_json_span(trace_hex, root)])).encode()
    )
    reply = collector.request(
        "POST", "/v1/traces", parent_body, {**JSON, "Content-Encoding": "gzip"}
    )
    assert reply.status == 200, reply.body

    spans = _spans(collector, trace_hex.lower())
    assert [s["span_id"] for s in spans] == [child, root] or [s["span_id"] for s in spans] == [
        root,
        child,
    ]
    by_id = {s["span_id"]: s for s in spans}
    assert by_id[child]["parent_span_id"] == root
    assert by_id[child]["kind"] == "client"
    assert by_id[child]["status"] == {"code": 2, "message": "boom"}
    assert by_id[child]["start_time"] == "2026-01-01T00:00:00+00:00"
    assert by_id[child]["end_time_unix_nano"] == "1767225601500000000"
    assert by_id[child]["attributes"] == {
        "fluxloop.trace_id": fluxloop_id,
        "n": 7,
        "blob": "AAE=",
        "map": {"k": 1.5},
    }
    # Found by the FluxLoop trace id it carries.
    assert {s["span_id"] for s in _spans(collector, fluxloop_id)} == {root, child}


def test_a_fluxloop_trace_and_its_spans_come_back_together(collector: Collector) -> None:
    fluxloop_id = "t-" + uuid.uuid4().hex
    batch = make_batch(trace_items(make_trace(fluxloop_id, observations=1)), {"experiment": "x"})
    assert collector.post_batch(batch).status == 200
    trace_hex = uuid.uuid4().hex
    span = _json_span(
        trace_hex,
        "c3" * 8,
        attributes=[{"key": "gen_ai.conversation.id", "value": {"stringValue": fluxloop_id}}],
    )
    body = json.dumps(_json_request(trace_hex, [span])).encode()
    assert collector.request("POST", "/v1/traces", body, JSON).status == 200
    found = collector.get(f"/api/traces/{fluxloop_id}").json()
    assert found["trace"]["trace_id"] == fluxloop_id
    assert len(found["observations"]) == 1
    assert [s["span_id"] for s in found["spans"]] == ["c3" * 8]


def test_bad_spans_are_a_partial_success_in_both_encodings(collector: Collector) -> None:
    trace_hex = uuid.uuid4().hex
    spans = [
        _json_span(trace_hex, "d4" * 8),
        _json_span("zz" * 16, "d5" * 8),  # not hex
        _json_span(trace_hex[:16], "d6" * 8),  # 8 bytes
        _json_span(trace_hex, "00" * 8),  # all zero
        _json_span(trace_hex, "d7" * 8, parent_hex="abcd"),
    ]
    body = json.dumps(_json_request(trace_hex, spans)).encode()
    reply = collector.request("POST", "/v1/traces", body, JSON)
    assert reply.status == 200
    answer = json_format.Parse(reply.body, ExportTraceServiceResponse())
    assert answer.partial_success.rejected_spans == 4
    message = answer.partial_success.error_message
    assert "4 span(s) rejected" in message
    assert "spans[1]: traceId 'zz" in message
    assert "spans[2]: trace_id must be 16 bytes" in message
    assert "spans[3]: span_id" in message
    assert "spans[4]: parent_span_id" in message
    assert [s["span_id"] for s in _spans(collector, trace_hex)] == ["d4" * 8]

    # The same in protobuf (ids are bytes there): the answer is protobuf.
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    trace_id = uuid.uuid4().bytes
    for span_trace, span_id, parent in [
        (trace_id, b"\xe1" * 8, b""),
        (bytes(16), b"\xe2" * 8, b""),
        (trace_id[:8], b"\xe3" * 8, b""),
        (trace_id, bytes(8), b""),
        (trace_id, b"\xe4" * 8, b"\x01\x02"),
        (trace_id, b"\xe5" * 8, b"\xe1" * 8),
    ]:
        span = scope_spans.spans.add(trace_id=span_trace, span_id=span_id, name="p")
        span.parent_span_id = parent
    reply = collector.request("POST", "/v1/traces", request.SerializeToString(), PROTOBUF)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(reply.body)
    assert answer.partial_success.rejected_spans == 3 + 1
    assert "spans[1]: trace_id must be 16 bytes" in answer.partial_success.error_message
    spans = _spans(collector, trace_id.hex())
    assert sorted(s["span_id"] for s in spans) == ["e1" * 8, "e5" * 8]


def test_otlp_that_is_not_a_request_is_a_400_with_a_status(collector: Collector) -> None:
    reply = collector.request("POST", "/v1/traces", b"\xff\xff\xff not protobuf", PROTOBUF)
    assert reply.status == 400
    assert reply.headers["content-type"] == "application/x-protobuf"
    status = Status()
    status.ParseFromString(reply.body)
    assert status.code == 3
    assert "ExportTraceServiceRequest" in status.message

    for body, reason in [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"resourceSpans": 5}', "ExportTraceServiceRequest"),
    ]:
        reply = collector.request("POST", "/v1/traces", body, JSON)
        assert reply.status == 400, body
        assert reason in reply.json()["message"]
        assert reply.json()["code"] == 3


def test_otlp_in_another_media_type_is_a_415(collector: Collector) -> None:
    body = ExportTraceServiceRequest().SerializeToString()
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/grpc"}, {}):
        reply = collector.request("POST", "/v1/traces", body, headers)
        assert reply.status == 415
        assert "application/x-protobuf" in reply.json()["error"]
    # An empty request is a valid, empty export.
    reply = collector.request("POST", "/v1/traces", body, PROTOBUF)
    assert reply.status == 200
    assert reply.body == b""
