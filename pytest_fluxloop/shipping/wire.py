"""The collector's batch format, version 1: one copy for every sender and the collector.

What the HTTP sink, ``FluxLoopClient(storage="http")`` and ``fluxloop collector push`` send
to ``POST /api/v1/batches`` (``Content-Type: application/json``, usually with
``Content-Encoding: gzip``; ``Authorization: Bearer <token>``)::

    {
      "fluxloop_batch": 1,
      "batch_id": "3f2c...",                   # uuid4 hex; the spool file's name too
      "sent_at": "2026-12-01T03:50:00+00:00",
      "source": {"experiment": "support-bot", "run_id": "exp_20261201_035000",
                 "host": "ci-7", "sender": "pytest-fluxloop 0.1.0"},
      "items": [
        {"kind": "trace", "id": "<trace_id>", "data": {...TraceRecord, no observations...}},
        {"kind": "observation", "id": "<trace_id>/<n>", "data": {...Observation...}},
        {"kind": "summary", "id": "<run_id>", "data": {...ExperimentSummary...}}
      ]
    }

``data`` is what the artifact files hold (``traces.jsonl`` line without ``observations``,
``observations.jsonl`` line, ``summary.json``) and is validated against the same JSON
Schemas (``pytest_fluxloop/artifacts/schemas``). An observation's id is its trace id and
its position in the trace, so ids never depend on the sender; each ``(kind, id)`` is stored
once, and a batch sent twice (a retry, a spooled batch pushed again) changes nothing. A
summary is stored again when its run sends a newer one (a run's summary changes as it ends).

The collector answers 200 with one result per item, in order::

    {"batch_id": "3f2c...", "results": [{"kind": "trace", "id": "...",
                                          "status": "stored" | "duplicate" | "rejected",
                                          "error": "why, when rejected"}]}

and otherwise: 400 (not a batch: bad JSON, another ``fluxloop_batch`` version, no items;
``{"error": ...}``, nothing stored), 401 (no or wrong token), 413 (over the size limit),
415 (not JSON), 429 / 503 (busy: retry after ``Retry-After`` seconds).

Standard library only (the SDK sends with it): no pydantic objects cross this module.
"""

from __future__ import annotations

import gzip
import json
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

__all__ = [
    "BATCHES_PATH",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "ITEM_KINDS",
    "BatchError",
    "ItemResult",
    "decode_batch",
    "encode_batch",
    "item",
    "make_batch",
    "observation_items",
    "parse_results",
    "trace_items",
]

FORMAT_KEY = "fluxloop_batch"
FORMAT_VERSION = 1
BATCHES_PATH = "/api/v1/batches"
ITEM_KINDS = ("trace", "observation", "summary")

ItemKind = Literal["trace", "observation", "summary"]
ItemStatus = Literal["stored", "duplicate", "rejected"]


class BatchError(ValueError):
    """Not a batch of this format (the collector's 400, a spool file that is not one)."""


@dataclass(frozen=True)
class ItemResult:
    """The collector's answer for one item."""

    kind: str
    id: str
    status: ItemStatus
    error: str | None = None


def item(kind: ItemKind, item_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """One batch item."""
    return {"kind": kind, "id": item_id, "data": data}


def trace_items(trace: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The items of one trace (``TraceRecord`` JSON, observations included): the trace
    without its observations, then each observation (id ``<trace_id>/<n>``)."""
    trace_id = str(trace["trace_id"])
    body = {k: v for k, v in trace.items() if k != "observations"}
    items = [item("trace", trace_id, body)]
    items.extend(observation_items(trace_id, trace.get("observations") or ()))
    return items


def observation_items(
    trace_id: str, observations: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The items of a trace's observations, in order."""
    return [
        item("observation", f"{trace_id}/{n}", observation)
        for n, observation in enumerate(observations)
    ]


def make_batch(
    items: Sequence[Mapping[str, Any]],
    source: Mapping[str, Any],
    batch_id: str | None = None,
) -> dict[str, Any]:
    """A batch of ``items`` from ``source`` (``experiment``, ``run_id``, ``host``, ``sender``;
    ``host`` defaults to this machine's name)."""
    return {
        FORMAT_KEY: FORMAT_VERSION,
        "batch_id": batch_id or uuid.uuid4().hex,
        "sent_at": datetime.now(timezone.utc).isoformat(),
        "source": {"host": socket.gethostname(), **source},
        "items": list(items),
    }


def encode_batch(batch: Mapping[str, Any], compress: bool = True) -> bytes:
    """The request body (gzip-compressed unless ``compress`` is false)."""
    raw = json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=5) if compress else raw


def decode_batch(body: bytes | str) -> dict[str, Any]:
    """A batch from its JSON text (already decompressed), checked for shape only: the
    version, the batch id, and items that each have a known kind, an id and an object.

    Raises:
        BatchError: what is wrong, for a 400 answer.
    """
    try:
        batch = json.loads(body)
    except ValueError as exc:
        raise BatchError(f"the body is not JSON: {exc}") from None
    if not isinstance(batch, dict) or FORMAT_KEY not in batch:
        raise BatchError(f"not a FluxLoop batch: no {FORMAT_KEY!r} key")
    if batch[FORMAT_KEY] != FORMAT_VERSION:
        raise BatchError(
            f"{FORMAT_KEY} {batch[FORMAT_KEY]!r} is not supported (this collector reads "
            f"version {FORMAT_VERSION}): upgrade the collector"
        )
    if not isinstance(batch.get("batch_id"), str) or not batch["batch_id"]:
        raise BatchError("batch_id is missing or not a string")
    items = batch.get("items")
    if not isinstance(items, list) or not items:
        raise BatchError("items is missing, empty or not a list")
    if not isinstance(batch.get("source", {}), dict):
        raise BatchError("source is not an object")
    return batch


def parse_results(body: bytes | str) -> list[ItemResult]:
    """The per-item results of a 200 answer.

    Raises:
        BatchError: the answer is not a results document.
    """
    try:
        data = json.loads(body)
        return [
            ItemResult(
                kind=str(r["kind"]),
                id=str(r["id"]),
                status=r["status"],
                error=r.get("error"),
            )
            for r in data["results"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise BatchError(f"the collector's answer is not a results document: {exc}") from None
