"""The timeline of one trace for ``fluxloop parse``: its observations as one entry per step.

A trace records a span as two observations (``span_start`` and ``span_end``, the same
``observation_id``); here they become one entry with the start's input and the end's output,
error and duration. Point observations (``turn``, ``supervisor_decision``, ``retry``,
``notice``, events) are one entry each; the harness writes them when the step is over, so a
step with a duration started that long before its timestamp. Entries are ordered by when
they started, as an offset in milliseconds from the trace's start.

Older lines lack ``kind`` and ``role`` (and some any timestamp): every field is read with a
default, and a step without a usable time keeps its place in the file.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ..artifacts.resume import parse_time

__all__ = ["build_timeline"]

_SPAN_START = "span_start"
_SPAN_END = "span_end"


def _when(value: Any) -> datetime | None:
    parsed = parse_time(value)
    # Times written without a zone are UTC (every artifact timestamp is).
    return parsed.replace(tzinfo=timezone.utc) if parsed and parsed.tzinfo is None else parsed


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _metadata(*observations: dict[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for obs in observations:
        if obs is not None and isinstance(obs.get("metadata"), dict):
            merged.update(obs["metadata"])
    return merged


class _Step:
    """One timeline entry being built: a span's start and end, or one point observation."""

    __slots__ = ("end", "point", "position", "start")

    def __init__(
        self,
        position: int,
        *,
        start: dict[str, Any] | None = None,
        end: dict[str, Any] | None = None,
        point: dict[str, Any] | None = None,
    ) -> None:
        self.position = position
        self.start = start
        self.end = end
        self.point = point

    def first(self) -> dict[str, Any]:
        found = self.point or self.start or self.end
        assert found is not None
        return found

    def times(self) -> tuple[datetime | None, datetime | None, float | None]:
        """(started, ended, duration in ms)."""
        if self.point is not None:
            ended = _when(self.point.get("timestamp"))
            duration = _number(self.point.get("duration_ms"))
            started = ended - timedelta(milliseconds=duration) if ended and duration else ended
            return started, ended if duration is not None else None, duration
        started = _when(self.start.get("timestamp")) if self.start else None
        ended = _when(self.end.get("timestamp")) if self.end else None
        duration = _number(self.end.get("duration_ms")) if self.end else None
        if duration is None and started and ended:
            duration = (ended - started).total_seconds() * 1000
        if started is None and ended is not None:
            # The start was dropped (capture.max_observations): placed by its duration.
            started = ended - timedelta(milliseconds=duration or 0)
        return started, ended, duration

    def entry(self, origin: datetime | None) -> dict[str, Any]:
        first = self.first()
        started, ended, duration = self.times()
        span = self.point is None
        kind = first.get("kind") or _metadata(first).get("kind") or ("span" if span else "event")
        if span:
            source_out = self.end or {}
            status = "unfinished" if self.end is None else "ok"
        else:
            source_out = self.point or {}
            status = "ok"
        error = source_out.get("error")
        if error:
            status = "error"
        offset = None
        if origin is not None and started is not None:
            offset = round((started - origin).total_seconds() * 1000, 3)
        return {
            "type": "span" if span else str(first.get("type") or "event"),
            "name": first.get("name"),
            "kind": str(kind),
            "role": first.get("role") or (self.end or {}).get("role"),
            "observation_id": first.get("observation_id"),
            "parent_id": first.get("parent_id"),
            "depth": 0,
            "start_time": _iso(started),
            "end_time": _iso(ended),
            "offset_ms": offset,
            "duration_ms": round(duration, 3) if duration is not None else None,
            "input": (self.start or self.point or {}).get("input"),
            "output": source_out.get("output"),
            "error": error or None,
            "status": status,
            "metadata": _metadata(self.start, self.end, self.point),
        }


def build_timeline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The timeline entries of a trace record (``traces.jsonl`` line, in JSON form).

    Each entry: ``type`` (``span`` for a start/end pair, else the observation's type),
    ``name, kind, role, observation_id, parent_id, depth`` (how many of its ancestors are in
    the timeline), ``start_time, end_time, offset_ms`` (from the trace's ``started_at``, else
    its first observation), ``duration_ms, input, output, error, status`` (``ok``, ``error``,
    ``unfinished`` for a span that never ended) and ``metadata`` (the start's and the end's
    merged, so a generation has its ``model`` and its ``usage``).
    """
    observations = record.get("observations")
    if not isinstance(observations, list):
        return []
    steps: list[_Step] = []
    open_spans: dict[str, _Step] = {}
    for position, obs in enumerate(observations):
        if not isinstance(obs, dict):
            continue
        kind_of = obs.get("type")
        oid = obs.get("observation_id")
        if kind_of == _SPAN_START:
            step = _Step(position, start=obs)
            steps.append(step)
            if isinstance(oid, str):
                open_spans[oid] = step
        elif kind_of == _SPAN_END:
            opened = open_spans.pop(oid, None) if isinstance(oid, str) else None
            if opened is not None:
                opened.end = obs
            else:
                steps.append(_Step(position, end=obs))
        else:
            steps.append(_Step(position, point=obs))
    origin = _when(record.get("started_at"))
    if origin is None:
        found = [t for t in (s.times()[0] for s in steps) if t is not None]
        origin = min(found, default=None)
    entries = [step.entry(origin) for step in steps]
    order = sorted(
        range(len(entries)),
        key=lambda i: (
            entries[i]["offset_ms"] if entries[i]["offset_ms"] is not None else float("inf"),
            steps[i].position,
        ),
    )
    timeline = [entries[i] for i in order]
    _set_depths(timeline)
    return timeline


def _set_depths(timeline: list[dict[str, Any]]) -> None:
    """Each entry's depth: the number of its ancestors (by ``parent_id``) in the timeline."""
    parents = {
        e["observation_id"]: e.get("parent_id")
        for e in timeline
        if isinstance(e.get("observation_id"), str)
    }
    for entry in timeline:
        depth = 0
        # Its own id counts as seen: a step may name itself as its parent (a turn that
        # ended in an agent error is recorded so).
        seen: set[Any] = {entry.get("observation_id")}
        parent = entry.get("parent_id")
        while parent in parents and parent not in seen and depth < 50:
            seen.add(parent)
            depth += 1
            parent = parents[parent]
        entry["depth"] = depth
