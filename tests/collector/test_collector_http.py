"""The collector over raw ``http.client``: the token, media types, size caps, routes, and the
read API's filters and pages (SQLite and PostgreSQL)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlencode

import pytest
from support.collector_server import TOKEN, Collector, make_trace

from pytest_fluxloop.shipping.wire import encode_batch, make_batch, trace_items


def _send(collector: Collector, uid: str, traces: list[dict], experiment: str = "") -> None:
    items = [item for trace in traces for item in trace_items(trace)]
    batch = make_batch(items, {"experiment": experiment or f"exp-{uid}", "run_id": f"run-{uid}"})
    reply = collector.post_batch(batch)
    assert reply.status == 200, reply.body
    assert {r["status"] for r in reply.json()["results"]} == {"stored"}


def test_every_route_but_health_needs_the_token(collector: Collector, uid: str) -> None:
    batch = encode_batch(make_batch(trace_items(make_trace(f"{uid}-a")), {"experiment": uid}))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    for token in (None, "wrong-" + TOKEN, TOKEN[:-1], TOKEN + "x"):
        for method, path, body in [
            ("POST", "/api/v1/batches", batch),
            ("POST", "/v1/traces", b""),
            ("GET", "/api/experiments", None),
            ("GET", "/api/traces", None),
            ("GET", f"/api/traces/{uid}-a", None),
            ("GET", "/no/such/route", None),
        ]:
            reply = collector.request(method, path, body, headers, token=token)
            assert reply.status == 401, (token, path)
            assert reply.headers["www-authenticate"].startswith("Bearer")
    # Not a bearer scheme at all.
    reply = collector.request(
        "GET", "/api/traces", headers={"Authorization": f"Basic {TOKEN}"}, token=None
    )
    assert reply.status == 401
    assert collector.get(f"/api/traces/{uid}-a").status == 404  # nothing was stored
    health = collector.get("/health", token=None)
    assert health.status == 200
    assert health.json()["status"] == "ok"
    assert health.json()["schema_version"] == 2
    # The scheme is case-insensitive; the token is not.
    reply = collector.request(
        "GET", "/api/traces?limit=1", headers={"Authorization": f"bearer {TOKEN}"}, token=None
    )
    assert reply.status == 200
    reply = collector.request(
        "GET", "/api/traces", headers={"Authorization": f"Bearer {TOKEN.upper()}"}, token=None
    )
    assert reply.status == 401


def test_unknown_routes_and_methods(collector: Collector) -> None:
    reply = collector.get("/api/nothing")
    assert reply.status == 404
    assert "error" in reply.json()
    reply = collector.get("/api/v1/batches")
    assert reply.status == 405
    reply = collector.request("DELETE", "/api/traces")
    assert reply.status == 405


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/x-protobuf"],
)
def test_a_batch_in_another_media_type_is_a_415(
    collector: Collector, uid: str, content_type: str | None
) -> None:
    body = json.dumps(make_batch(trace_items(make_trace(f"{uid}-m")), {})).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    reply = collector.request("POST", "/api/v1/batches", body, headers)
    assert reply.status == 415
    assert "application/json" in reply.json()["error"]
    assert collector.get(f"/api/traces/{uid}-m").status == 404


def test_bodies_over_the_cap_are_a_413(collector: Collector) -> None:
    # A declared length over the cap (10 MiB) is refused before the body is read: send the
    # headers and a little of it, then read the answer.
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/v1/batches")
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(50 * 1024 * 1024))
        conn.endheaders()
        conn.send(b"{" * 1024)
        resp = conn.getresponse()
        assert resp.status == 413
        assert "limit" in json.loads(resp.read())["error"]
    finally:
        conn.close()
    # Chunked, with no length: cut off once it passes the cap.
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
    try:
        chunks = (b" " * (1024 * 1024) for _ in range(11))
        conn.request(
            "POST",
            "/v1/traces",
            body=chunks,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        assert resp.status == 413
        resp.read()
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the collector closed the connection instead of answering 413")
    finally:
        conn.close()


def test_the_token_is_never_echoed_nor_logged(collector: Collector, uid: str) -> None:
    replies = [
        collector.get("/api/traces?limit=nope"),
        collector.get("/api/traces?cursor=garbage"),
        collector.request("POST", "/api/v1/batches", b"{", {"Content-Type": "application/json"}),
        collector.request("POST", "/v1/traces", b"\xff", {"Content-Type": "application/protobuf"}),
        collector.get("/nope"),
        collector.get("/api/traces", token="wrong"),
    ]
    for reply in replies:
        assert reply.status >= 400
        assert TOKEN not in reply.body.decode("latin-1")
        assert TOKEN not in json.dumps(reply.headers)
    assert TOKEN not in collector.log()
    assert "Bearer" not in collector.log()


def test_traces_are_filtered_by_experiment_persona_status_and_time(
    collector: Collector, uid: str
) -> None:
    traces = [
        make_trace(f"{uid}-1", persona="novice", started_at="2026-03-01T10:00:00Z"),
        make_trace(f"{uid}-2", persona="expert", started_at="2026-03-01T11:00:00+00:00"),
        make_trace(
            f"{uid}-3", persona="novice", status="error", started_at="2026-03-01T13:00:00+01:00"
        ),  # 12:00 UTC
        make_trace(f"{uid}-4", persona=None, status="timeout", started_at="2026-03-02T00:00:00"),
    ]
    _send(collector, uid, traces[:2])
    _send(collector, uid, traces[2:], experiment=f"other-{uid}")

    def ids(**filters: str) -> list[str]:
        return [
            t["trace_id"].removeprefix(f"{uid}-")
            for t in collector.all_traces(**filters)
            if t["trace_id"].startswith(uid)
        ]

    assert ids(experiment=f"exp-{uid}") == ["2", "1"]  # newest first
    assert ids(experiment=f"other-{uid}") == ["4", "3"]
    assert ids(run_id=f"run-{uid}") == ["4", "3", "2", "1"]
    assert ids(run_id=f"run-{uid}", persona="novice") == ["3", "1"]
    assert ids(run_id=f"run-{uid}", status="error") == ["3"]
    assert ids(experiment=f"other-{uid}", status="timeout") == ["4"]
    assert ids(run_id=f"run-{uid}", since="2026-03-01T11:00:00Z") == ["4", "3", "2"]
    assert ids(run_id=f"run-{uid}", until="2026-03-01T12:00:00Z") == ["2", "1"]
    assert ids(
        run_id=f"run-{uid}", since="2026-03-01T11:30:00+00:00", until="2026-03-02T00:00:00"
    ) == ["3"]
    listed = collector.all_traces(run_id=f"run-{uid}")
    assert listed[0]["started_at"] == "2026-03-02T00:00:00+00:00"
    assert listed[1]["started_at"] == "2026-03-01T12:00:00+00:00"
    assert listed[1]["persona"] == "novice"
    assert listed[1]["success"] is False
    assert listed[0]["persona"] is None


def test_pages_cover_every_trace_once_in_a_stable_order(collector: Collector, uid: str) -> None:
    # Equal start times (ties broken by trace id) and distinct ones.
    traces = [
        make_trace(f"{uid}-{n:03d}", started_at=f"2026-04-01T00:00:0{n % 3}+00:00")
        for n in range(23)
    ]
    _send(collector, uid, traces)
    whole = [t["trace_id"] for t in collector.all_traces(experiment=f"exp-{uid}")]
    assert sorted(whole) == sorted(t["trace_id"] for t in traces)
    newest_first = sorted(traces, key=lambda t: (t["started_at"], t["trace_id"]), reverse=True)
    expected = [t["trace_id"] for t in newest_first]
    assert whole == expected
    for size in (1, 4, 7):
        paged = [t["trace_id"] for t in collector.all_traces(limit=size, experiment=f"exp-{uid}")]
        assert paged == whole
    # A page is at most `limit` long.
    first = collector.get(f"/api/traces?experiment=exp-{uid}&limit=5").json()
    assert len(first["traces"]) == 5
    assert first["next_cursor"]
    # New traces do not shift a cursor: the next page still starts after the same trace.
    _send(collector, uid, [make_trace(f"{uid}-zzz", started_at="2026-04-02T00:00:00Z")])
    params = urlencode({"experiment": f"exp-{uid}", "limit": 5, "cursor": first["next_cursor"]})
    second = collector.get(f"/api/traces?{params}").json()
    assert [t["trace_id"] for t in second["traces"]] == whole[5:10]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("limit=0", "limit"),
        ("limit=501", "500"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
    ],
)
def test_bad_query_parameters_are_a_400(collector: Collector, query: str, reason: str) -> None:
    reply = collector.get(f"/api/traces?{query}")
    assert reply.status == 400
    assert reason in reply.json()["error"]


def test_a_trace_id_with_odd_characters(collector: Collector, uid: str) -> None:
    trace_id = f"{uid} ü:%"
    _send(collector, uid, [make_trace(trace_id)])
    reply = collector.get(f"/api/traces/{quote(trace_id, safe='')}")
    assert reply.status == 200
    assert reply.json()["trace"]["trace_id"] == trace_id
