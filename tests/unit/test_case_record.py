"""Records and planned cases are built unvalidated: they must be what validation makes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from support.engine_helpers import make_case

from pytest_fluxloop.engine.drivers import DriverOutcome
from pytest_fluxloop.engine.record import case_record, crashed_record
from pytest_fluxloop.plan.cases import Case, expand_cases
from pytest_fluxloop.plan.inputs import InputItem, InputSet
from pytest_fluxloop.records import ErrorInfo, MultiTurnInfo, Observation, TraceRecord


def _records() -> list[TraceRecord]:
    case = make_case("hello", persona="novice", metadata={"k": [1, "\udc80"]})
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    outcome = DriverOutcome(
        output={"answer": 42},
        multi_turn=MultiTurnInfo(enabled=True, turn_count=2),
        conversation_state={"turns": [{"role": "user", "content": "hi"}]},
        token_usage={"supervisor": {"total_tokens": 7}},
        persona="expert",
    )
    observation = Observation(trace_id="t" * 32, type="span_end", name="llm")
    return [
        case_record(case, status="success", output="ok", duration_ms=1.23456),
        case_record(
            case,
            status="error",
            error=ErrorInfo(kind="agent", type="ValueError", message="bad"),
            attempts=3,
            started_at=at,
            completed_at=at,
            observations=[observation],
            observations_dropped=2,
            test_outcome="failed",
            worker="gw1",
        ),
        case_record(case, status="success", outcome=outcome, output=outcome.output),
        crashed_record(case, "worker died", "gw0"),
    ]


@pytest.mark.parametrize("index", range(4))
def test_an_unvalidated_record_is_the_validated_one(index: int) -> None:
    record = _records()[index]
    assert set(record.__dict__) == set(TraceRecord.model_fields)  # every field, none extra
    validated = TraceRecord.model_validate(record.__dict__)
    assert validated == record
    assert validated.model_dump(mode="json") == record.model_dump(mode="json")
    assert validated.model_dump_json() == record.model_dump_json()


def test_planned_cases_are_the_validated_ones() -> None:
    items = [
        InputItem(0, "a", "p", "a persona", {"k": 1}, {"name": "p"}),
        InputItem(1, "b", None, None, {}),
    ]
    inputs = InputSet(items=items, source="test", n_inputs=2, n_personas=1, factored=False)
    cases = expand_cases(inputs, iterations=2, seed=7)
    assert len(cases) == 4
    for case in cases:
        assert set(case.__dict__) == set(Case.model_fields)
        assert Case.model_validate(case.__dict__) == case
