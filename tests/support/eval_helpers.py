"""Trace records and evaluator results for the evaluation tests."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pytest_fluxloop.records import EvaluatorResult, TraceRecord

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def make_record(**fields: Any) -> TraceRecord:
    """A successful single-turn trace; ``fields`` replace or add to its fields."""
    data: dict[str, Any] = {
        "trace_id": "t-1",
        "case_id": "case-1",
        "iteration": 0,
        "input": "Where is my order?",
        "output": "It ships tomorrow.",
        "duration_ms": 120.0,
        "success": True,
        "status": "success",
        "started_at": NOW,
        "completed_at": NOW,
    }
    data.update(fields)
    return TraceRecord.model_validate(data)


def evaluator_result(
    name: str, status: str | None = None, score: float | None = None, **fields: Any
) -> EvaluatorResult:
    """A ``rule_based`` result unless ``fields`` say another ``type``. Given only a score, the
    status is ``passed`` from 0.5 up, else ``failed``; given only ``passed``/``failed``, the
    score is 1.0/0.0."""
    if status is None:
        status = "passed" if score is not None and score >= 0.5 else "failed"
    elif score is None and status in ("passed", "failed"):
        score = 1.0 if status == "passed" else 0.0
    fields.setdefault("type", "rule_based")
    return EvaluatorResult(name=name, status=status, score=score, **fields)
