"""``POST /api/v1/batches``: a batch (``shipping.wire``, version 1) checked item by item.

:func:`decode_batch` checks the batch's shape (a 400 when it is not a batch); then each item
is checked here against the artifact JSON Schemas and its id: a bad item is ``rejected`` with
the reason and the others are stored. Nothing is written until every item is checked, and
the valid ones are written in one transaction (:meth:`~.store.Store.write_batch`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..artifacts.schemas import load_schema
from ..shipping.wire import ITEM_KINDS, decode_batch
from .moments import parse_utc
from .store import ObservationRow, Row, Source, Store, SummaryRow, TraceRow

__all__ = ["MAX_ERROR_CHARS", "Rejected", "ingest_batch", "prepare_batch"]

MAX_ERROR_CHARS = 400
"""A rejection's reason is cut to this length (a schema error quotes the bad value)."""

_INT64 = 2**63 - 1


@dataclass(frozen=True)
class Rejected:
    """An item that is not stored, and why."""

    kind: str
    id: str
    error: str


class _Bad(ValueError):
    """One item's reason for rejection."""


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def _check_schema(name: str, data: Mapping[str, Any]) -> None:
    error = best_match(_validator(name).iter_errors(data))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(the item)"
        raise _Bad(f"not a valid {name}: at {where}: {error.message}")


def _moment(value: Any, name: str) -> datetime:
    """A date-time field as an aware UTC datetime (a naive one is taken as UTC)."""
    if not isinstance(value, str):
        raise _Bad(f"{name} is not a date-time string")
    try:
        return parse_utc(value)
    except ValueError:
        raise _Bad(f"{name} {value[:40]!r} is not an ISO 8601 date-time") from None


def _dump(data: Any) -> str:
    try:
        # Standard JSON only: NaN and Infinity (which Python's json reads) are not JSON.
        return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise _Bad("numbers must be finite (NaN and Infinity are not JSON)") from None


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or not -_INT64 <= value <= _INT64:
        raise _Bad(f"{name} is out of range")
    return value


def _observation(trace_id: str, position: int, data: Mapping[str, Any]) -> ObservationRow:
    _check_schema("observation", data)
    if data["trace_id"] != trace_id:
        raise _Bad(f"the observation's trace_id {data['trace_id']!r} is not {trace_id!r}")
    if "timestamp" in data:
        _moment(data["timestamp"], "timestamp")
    return ObservationRow(
        trace_id=trace_id,
        position=_int(position, "the observation's position"),
        type=data["type"],
        name=data["name"],
        data=_dump(data),
    )


def _trace(item_id: str, data: Mapping[str, Any]) -> TraceRow:
    _check_schema("trace", data)
    if data["trace_id"] != item_id:
        raise _Bad(f"the item id is not the trace's trace_id {data['trace_id']!r}")
    duration = data["duration_ms"]
    if not math.isfinite(duration):
        raise _Bad("duration_ms must be finite")
    # A sender may embed the observations (a whole traces.jsonl line): stored with the trace.
    embedded = data.get("observations") or []
    observations = tuple(_observation(item_id, n, obs) for n, obs in enumerate(embedded))
    body = {k: v for k, v in data.items() if k != "observations"}
    return TraceRow(
        trace_id=item_id,
        case_id=data["case_id"],
        iteration=_int(data["iteration"], "iteration"),
        persona=data.get("persona"),
        status=data["status"],
        success=bool(data["success"]),
        started_at=_moment(data["started_at"], "started_at"),
        completed_at=_moment(data["completed_at"], "completed_at"),
        duration_ms=float(duration),
        data=_dump(body),
        observations=observations,
    )


def _summary(item_id: str, data: Mapping[str, Any], sent_at: datetime) -> SummaryRow:
    _check_schema("summary", data)
    if data["run_id"] != item_id:
        raise _Bad(f"the item id is not the summary's run_id {data['run_id']!r}")
    _moment(data["started_at"], "started_at")
    # Newer wins: a finished run's summary over a running one, then the later sent_at (a
    # spooled batch keeps the time it was first sent, so an old summary pushed late loses).
    finished = 0 if data["status"] == "running" else 1
    rank = f"{finished}|{sent_at.isoformat(timespec='microseconds')}"
    return SummaryRow(
        run_id=item_id,
        experiment=data["experiment_name"],
        status=data["status"],
        rank=rank,
        data=_dump(data),
    )


def _source(batch: Mapping[str, Any], received: datetime) -> Source:
    source = batch.get("source") or {}

    def text(key: str) -> str | None:
        value = source.get(key)
        return value if isinstance(value, str) and value else None

    try:
        sent_at = _moment(batch.get("sent_at"), "sent_at")
    except _Bad:
        sent_at = received  # a sender without a clock: the collector's own time
    return Source(
        # FluxLoopClient (a production app) names its service instead of an experiment: its
        # traces are grouped under the service's name.
        experiment=text("experiment") or text("service"),
        run_id=text("run_id"),
        host=text("host"),
        sender=text("sender"),
        sent_at=sent_at,
    )


def prepare_batch(
    batch: Mapping[str, Any],
) -> tuple[Source, list[tuple[str, str, Row | Rejected]]]:
    """The batch's source, and for each item (in order) its kind, its id and the row to
    store or why not."""
    received = datetime.now(timezone.utc)
    source = _source(batch, received)
    prepared: list[tuple[str, str, Row | Rejected]] = []
    for raw in batch["items"]:
        kind = str(raw.get("kind", "")) if isinstance(raw, dict) else ""
        item_id = raw.get("id") if isinstance(raw, dict) else None
        shown_id = item_id if isinstance(item_id, str) else ""
        try:
            if not isinstance(raw, dict):
                raise _Bad("an item is an object with kind, id and data")
            if kind not in ITEM_KINDS:
                raise _Bad(f"kind {kind!r} is not one of {', '.join(ITEM_KINDS)}")
            if not isinstance(item_id, str) or not item_id:
                raise _Bad("id is missing or not a string")
            data = raw.get("data")
            if not isinstance(data, dict):
                raise _Bad("data is missing or not an object")
            row: Row
            if kind == "trace":
                row = _trace(item_id, data)
            elif kind == "observation":
                trace_id, _, position = item_id.rpartition("/")
                if not trace_id or not position.isdigit():
                    raise _Bad("an observation's id is <trace_id>/<position>")
                row = _observation(trace_id, int(position), data)
            else:
                row = _summary(item_id, data, source.sent_at)
            prepared.append((kind, item_id, row))
        except _Bad as bad:
            prepared.append((kind, shown_id, Rejected(kind, shown_id, _clip(str(bad)))))
    return source, prepared


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def ingest_batch(store: Store, body: bytes) -> dict[str, Any]:
    """Check and store one batch; the 200 answer (``batch_id`` and one result per item).

    Raises:
        shipping.wire.BatchError: not a batch (the 400).
        store.StoreError: the store failed; nothing of the batch was stored.
    """
    batch = decode_batch(body)
    source, prepared = prepare_batch(batch)
    rows = [row for _, _, row in prepared if not isinstance(row, Rejected)]
    stored = iter(store.write_batch(source, rows) if rows else [])
    results: list[dict[str, Any]] = []
    for kind, item_id, row in prepared:
        if isinstance(row, Rejected):
            results.append({"kind": kind, "id": item_id, "status": "rejected", "error": row.error})
        else:
            status = "stored" if next(stored) else "duplicate"
            results.append({"kind": kind, "id": item_id, "status": status})
    return {"batch_id": batch["batch_id"], "results": results}
