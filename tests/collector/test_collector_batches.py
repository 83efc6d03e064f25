"""``POST /api/v1/batches`` on the real collector (SQLite and PostgreSQL): per-item results,
idempotence, schema checks, summaries, and what is refused before anything is stored."""

from __future__ import annotations

import gzip
import json
from typing import Any

from support.collector_server import Collector, make_summary, make_trace

from pytest_fluxloop.shipping.wire import encode_batch, make_batch, parse_results, trace_items


def _batch(uid: str, items: list[dict[str, Any]], **source: Any) -> dict[str, Any]:
    return make_batch(
        items, {"experiment": f"exp-{uid}", "run_id": f"run-{uid}", "host": "ci-7", **source}
    )


def _statuses(reply: Any) -> list[tuple[str, str, str]]:
    assert reply.status == 200, reply.body
    return [(r.kind, r.id, r.status) for r in parse_results(reply.body)]


def test_a_batch_is_stored_once_and_read_back(collector: Collector, uid: str) -> None:
    trace = make_trace(f"{uid}-t1", observations=3)
    batch = _batch(uid, trace_items(trace))
    first = _statuses(collector.post_batch(batch))
    assert first == [
        ("trace", f"{uid}-t1", "stored"),
        ("observation", f"{uid}-t1/0", "stored"),
        ("observation", f"{uid}-t1/1", "stored"),
        ("observation", f"{uid}-t1/2", "stored"),
    ]
    # A retry of the same batch (and the same items in a new batch) changes nothing.
    assert [s for *_, s in _statuses(collector.post_batch(batch))] == ["duplicate"] * 4
    again = _batch(uid, trace_items(trace))
    assert [s for *_, s in _statuses(collector.post_batch(again, compress=False))] == [
        "duplicate"
    ] * 4

    reply = collector.get(f"/api/traces/{uid}-t1")
    assert reply.status == 200, reply.body
    found = reply.json()
    assert found["experiment"] == f"exp-{uid}"
    assert found["run_id"] == f"run-{uid}"
    assert found["host"] == "ci-7"
    expected = {k: v for k, v in trace.items() if k != "observations"}
    assert found["trace"] == expected
    assert [o["name"] for o in found["observations"]] == ["step-0", "step-1", "step-2"]
    assert found["observations"] == trace["observations"]
    assert found["spans"] == []

    assert [t["trace_id"] for t in collector.all_traces(experiment=f"exp-{uid}")] == [f"{uid}-t1"]
    experiment = collector.experiment(f"exp-{uid}")
    assert experiment is not None
    assert experiment["trace_count"] == 1
    assert [(r["run_id"], r["host"], r["trace_count"]) for r in experiment["runs"]] == [
        (f"run-{uid}", "ci-7", 1)
    ]


def test_observations_may_arrive_before_their_trace(collector: Collector, uid: str) -> None:
    trace = make_trace(f"{uid}-late", observations=2)
    items = trace_items(trace)
    assert _statuses(collector.post_batch(_batch(uid, items[1:])))[0][2] == "stored"
    assert _statuses(collector.post_batch(_batch(uid, items[:1])))[0][2] == "stored"
    found = collector.get(f"/api/traces/{uid}-late").json()
    assert found["trace"]["trace_id"] == f"{uid}-late"
    assert len(found["observations"]) == 2


def test_a_whole_trace_line_with_its_observations_is_one_item(
    collector: Collector, uid: str
) -> None:
    trace = make_trace(f"{uid}-whole", observations=2)
    assert _statuses(
        collector.post_batch(
            _batch(uid, [{"kind": "trace", "id": trace["trace_id"], "data": trace}])
        )
    ) == [("trace", f"{uid}-whole", "stored")]
    found = collector.get(f"/api/traces/{uid}-whole").json()
    assert "observations" not in found["trace"]
    assert found["observations"] == trace["observations"]


def test_bad_items_are_rejected_with_a_reason_and_the_rest_stored(
    collector: Collector, uid: str
) -> None:
    good = make_trace(f"{uid}-good")
    no_case = {k: v for k, v in make_trace(f"{uid}-nocase").items() if k != "case_id"}
    bad_status = make_trace(f"{uid}-badstatus", status="exploded")
    extra_key = {**make_trace(f"{uid}-extra"), "surprise": 1}
    bad_time = make_trace(f"{uid}-badtime", started_at="yesterday")
    items = [
        {"kind": "trace", "id": f"{uid}-nocase", "data": no_case},
        {"kind": "trace", "id": f"{uid}-badstatus", "data": bad_status},
        {"kind": "trace", "id": f"{uid}-extra", "data": extra_key},
        {"kind": "trace", "id": f"{uid}-badtime", "data": bad_time},
        {"kind": "trace", "id": "another-id", "data": make_trace(f"{uid}-mismatch")},
        {"kind": "span", "id": "x", "data": {}},
        {"kind": "trace", "data": good},
        {"kind": "trace", "id": f"{uid}-nodata"},
        "not an object",
        {
            "kind": "observation",
            "id": f"{uid}-good",
            "data": {"trace_id": f"{uid}-good", "type": "event", "name": "n"},
        },
        {
            "kind": "observation",
            "id": f"{uid}-good/0",
            "data": {"trace_id": "other", "type": "event", "name": "n"},
        },
        {"kind": "summary", "id": "wrong-run", "data": make_summary(f"exp-{uid}", f"run-{uid}")},
        {"kind": "trace", "id": f"{uid}-good", "data": good},
    ]
    reply = collector.post_batch(_batch(uid, items))
    results = parse_results(reply.body)
    assert [r.status for r in results] == ["rejected"] * 12 + ["stored"]
    reasons = [r.error or "" for r in results[:12]]
    assert "case_id" in reasons[0] and "required" in reasons[0]
    assert "exploded" in reasons[1]
    assert "surprise" in reasons[2]
    assert "started_at" in reasons[3]
    assert "trace_id" in reasons[4]
    assert "kind 'span'" in reasons[5]
    assert "id is missing" in reasons[6]
    assert "data is missing" in reasons[7]
    assert "object" in reasons[8]
    assert "<trace_id>/<position>" in reasons[9]
    assert "trace_id 'other'" in reasons[10]
    assert "run_id" in reasons[11]
    assert all(len(r) <= 400 for r in reasons)
    # Only the good trace is there; no rejected one was half-stored.
    stored = {t["trace_id"] for t in collector.all_traces(experiment=f"exp-{uid}")}
    assert stored == {f"{uid}-good"}
    assert collector.get(f"/api/traces/{uid}-nocase").status == 404


def test_a_number_json_cannot_hold_is_rejected(collector: Collector, uid: str) -> None:
    trace = make_trace(f"{uid}-nan")
    raw = json.dumps(_batch(uid, trace_items(trace))).replace(
        '"duration_ms": 12.5', '"duration_ms": NaN'
    )
    assert "NaN" in raw
    reply = collector.request(
        "POST", "/api/v1/batches", raw.encode(), {"Content-Type": "application/json"}
    )
    [result] = parse_results(reply.body)
    assert result.status == "rejected"
    assert "finite" in (result.error or "")


def test_a_summary_is_replaced_only_by_a_newer_one(collector: Collector, uid: str) -> None:
    run_id = f"run-{uid}"

    def send(status: str, sent_at: str) -> str:
        batch = _batch(
            uid,
            [{"kind": "summary", "id": run_id, "data": make_summary(f"exp-{uid}", run_id, status)}],
        )
        batch["sent_at"] = sent_at
        return _statuses(collector.post_batch(batch))[0][2]

    def run_status() -> str:
        experiment = collector.experiment(f"exp-{uid}")
        assert experiment is not None
        [run] = experiment["runs"]
        return str(run["status"])

    assert send("running", "2026-01-01T00:00:00+00:00") == "stored"
    assert run_status() == "running"
    assert send("running", "2026-01-01T00:00:30+00:00") == "stored"
    assert send("complete", "2026-01-01T00:01:00+00:00") == "stored"
    assert run_status() == "complete"
    # The same summary again, an older one pushed late, a "running" one after the end.
    assert send("complete", "2026-01-01T00:01:00+00:00") == "duplicate"
    assert send("incomplete", "2026-01-01T00:00:50+00:00") == "duplicate"
    assert send("running", "2026-01-01T00:05:00+00:00") == "duplicate"
    assert run_status() == "complete"
    assert send("interrupted", "2026-01-01T00:02:00+00:00") == "stored"
    assert run_status() == "interrupted"


def test_what_is_not_a_batch_is_a_400_and_stores_nothing(collector: Collector, uid: str) -> None:
    trace = make_trace(f"{uid}-never")
    good = _batch(uid, trace_items(trace))
    cases = {
        b"{not json": "not JSON",
        json.dumps({**good, "fluxloop_batch": 2}).encode(): "not supported",
        json.dumps({**good, "items": []}).encode(): "items",
        json.dumps({k: v for k, v in good.items() if k != "batch_id"}).encode(): "batch_id",
        json.dumps({"items": good["items"]}).encode(): "fluxloop_batch",
        json.dumps({**good, "source": "me"}).encode(): "source",
    }
    for body, reason in cases.items():
        reply = collector.request(
            "POST", "/api/v1/batches", body, {"Content-Type": "application/json; charset=utf-8"}
        )
        assert reply.status == 400, (body[:60], reply.body)
        assert reason in reply.json()["error"]
    assert collector.get(f"/api/traces/{uid}-never").status == 404


def test_gzip_bodies_broken_or_too_large_are_refused(collector: Collector, uid: str) -> None:
    trace = make_trace(f"{uid}-gz")
    body = encode_batch(_batch(uid, trace_items(trace)))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    reply = collector.request("POST", "/api/v1/batches", body[:-12], headers)
    assert reply.status == 400
    assert "gzip" in reply.json()["error"]
    reply = collector.request("POST", "/api/v1/batches", b"plain text", headers)
    assert reply.status == 400
    # About 16 KiB on the wire, 16 MiB inflated (the cap is 10 MiB): refused without
    # inflating it all.
    bomb = gzip.compress(b"[" + b" " * (16 * 1024 * 1024) + b"]", compresslevel=1)
    assert len(bomb) < 200_000
    reply = collector.request("POST", "/api/v1/batches", bomb, headers)
    assert reply.status == 413
    assert "decompressed" in reply.json()["error"]
    reply = collector.request(
        "POST", "/api/v1/batches", body, {**headers, "Content-Encoding": "br"}
    )
    assert reply.status == 415
    assert collector.get(f"/api/traces/{uid}-gz").status == 404
    assert collector.request("POST", "/api/v1/batches", body, headers).status == 200
    assert collector.get(f"/api/traces/{uid}-gz").status == 200


def test_an_application_s_traces_are_grouped_under_its_service(
    collector: Collector, uid: str
) -> None:
    # FluxLoopClient(storage="http") names its service and environment, not an experiment.
    batch = make_batch(
        trace_items(make_trace(f"{uid}-app")),
        {"service": f"svc-{uid}", "environment": "prod", "host": "web-1"},
    )
    assert _statuses(collector.post_batch(batch))[0][2] == "stored"
    found = collector.experiment(f"svc-{uid}")
    assert found is not None
    assert found["trace_count"] == 1
    assert found["runs"] == []
    assert collector.get(f"/api/traces/{uid}-app").json()["host"] == "web-1"
