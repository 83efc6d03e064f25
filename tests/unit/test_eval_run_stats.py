"""The run's evaluation block and gates: ``pytest_fluxloop.evaluation.run_stats.RunEvaluation``.

Fed the records of a run as they are written (or, when a run is resumed, the
``trace_summary.jsonl`` lines of the run before), it must give the figures
docs/evaluation.md describes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.eval_helpers import evaluator_result, make_record

from pytest_fluxloop.evaluation import run_stats
from pytest_fluxloop.evaluation.gates import parse_gate
from pytest_fluxloop.evaluation.run_stats import EvaluationOutcome, RunEvaluation
from pytest_fluxloop.evaluation.spec import EfficiencySpec, EvaluationSpec, MetricSpec
from pytest_fluxloop.records import (
    CaseEvaluation,
    ErrorInfo,
    EvaluatorResult,
    TraceRecord,
)


def record(
    number: int,
    *,
    input: str = "q",
    persona: str | None = "p",
    verdict: str | None = "passed",
    evaluators: list[EvaluatorResult] | None = None,
    score: float | None = None,
    **fields: Any,
) -> TraceRecord:
    if verdict is not None:
        if score is None and verdict in ("passed", "failed"):
            score = 1.0 if verdict == "passed" else 0.0
        fields["evaluation"] = CaseEvaluation(
            verdict=verdict,  # type: ignore[arg-type]
            score=score,
            threshold=0.5,
            evaluators=evaluators or [],
        )
    defaults = {
        "trace_id": f"t{number}",
        "case_id": f"c{number:03d}",
        "input": input,
        "persona": persona,
        "output": "ok",
        "duration_ms": 10.0,
    }
    return make_record(**{**defaults, **fields})


def error(kind: str = "agent", type_: str = "ValueError") -> ErrorInfo:
    return ErrorInfo(kind=kind, type=type_, message="boom")  # type: ignore[arg-type]


def finish(spec: EvaluationSpec, records: list[TraceRecord], **kwargs: Any) -> dict[str, Any]:
    run = RunEvaluation(spec, **kwargs)
    for item in records:
        run.add(item)
    return run.finish().block


def mixed_run() -> list[TraceRecord]:
    """A run with every kind of outcome: passes, evaluation failures, an agent error, a
    timeout, a crash, an unscored judge, a skipped verdict and a trace without evaluation."""
    return [
        record(1, input="a", persona="p1", evaluators=[evaluator_result("rules", "passed")]),
        record(
            2,
            input="a",
            persona="p1",
            verdict="failed",
            evaluators=[evaluator_result("rules", "failed")],
        ),
        record(
            3,
            input="a",
            persona="p1",
            evaluators=[evaluator_result("rules", "passed", 0.8)],
            score=0.8,
        ),
        record(
            4,
            input="b",
            persona="p2",
            duration_ms=50.0,
            verdict="failed",
            success=False,
            status="error",
            error=error(),
            token_usage={"agent": {"total_tokens": 40}},
        ),
        record(
            5,
            input="b",
            persona="p2",
            status="timeout",
            success=False,
            verdict="failed",
            error=error(type_="TimeoutError"),
        ),
        record(
            6,
            input="b",
            persona="p2",
            status="crashed",
            success=False,
            verdict=None,
            error=error(kind="infrastructure", type_="WorkerCrash"),
        ),
        record(
            7,
            input="c",
            persona=None,
            verdict="unscored",
            score=None,
            evaluators=[evaluator_result("judge", "unscored", unscored_reason="timeout")],
            token_usage={"agent": {"total_tokens": 60}},
        ),
        record(8, input="c", persona=None, verdict="skipped"),
        record(9, input="c", persona=None, verdict=None, duration_ms=30.0),
    ]


# --------------------------------------------------------------- records and lines


def test_summary_lines_give_the_same_figures_as_the_records() -> None:
    """What a resumed run is seeded with (``trace_summary.jsonl``) must count as the records
    themselves did: verdicts, evaluator statuses and scores, personas, reliability, latency,
    tokens, errors and gates."""
    spec = EvaluationSpec(
        gates=[parse_gate("success_rate>=0.5"), parse_gate("pass^2>=0.3")],
        ks=(1, 2, 3),
        by_persona=True,
        trend_analysis=True,
    )
    records = mixed_run()
    from_records = finish(spec, records)
    lines = RunEvaluation(spec)
    full = RunEvaluation(spec)
    for item in records:
        lines.add_line(item.summary_line())
        full.add_line(item.model_dump(mode="json"))  # a traces.jsonl line
    from_lines = lines.finish().block
    from_full = full.finish().block
    assert from_full == from_records
    for key in (
        "verdicts",
        "by_persona",
        "reliability",
        "latency_ms",
        "tokens_per_case",
        "error_rate",
        "unscored",
        "gates",
        "latency_trend",
    ):
        assert from_lines[key] == from_records[key], key
    for name, stats in from_records["evaluators"].items():
        counts = {k: v for k, v in stats.items() if k != "unscored_reasons"}
        assert {
            k: v for k, v in from_lines["evaluators"][name].items() if k != "unscored_reasons"
        } == (counts)


def test_summary_lines_keep_what_the_run_summary_reports() -> None:
    """A resumed run must report the earlier session's unscored reasons, judge cache hits and
    budget refusals, conversation depths and agent error types as the records gave them."""
    spec = EvaluationSpec(
        categorize_failures=True, efficiency=[EfficiencySpec("conversation_depth")]
    )
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 3
    records = [
        record(
            1,
            verdict="unscored",
            score=None,
            evaluators=[evaluator_result("judge", "unscored", unscored_reason="budget")],
        ),
        record(2, evaluators=[evaluator_result("judge", "passed", cached=True)]),
        record(3, success=False, status="error", error=error(), verdict="failed"),
        record(
            4, multi_turn={"enabled": True, "turn_count": 3}, conversation_state={"turns": turns}
        ),
    ]
    from_records = finish(spec, records)
    lines = RunEvaluation(spec)
    for item in records:
        lines.add_line(item.summary_line())
    from_lines = lines.finish().block
    assert from_records["evaluators"]["judge"]["unscored_reasons"] == {"budget": 1}
    assert from_records["judge"] == {"cached": 1, "budget_refused": 1}
    assert from_records["efficiency"]["conversation_depth"]["mean"] == 3.0
    assert list(from_records["failure_categories"]) == ["agent: ValueError"]
    keys = ("evaluators", "judge", "efficiency", "failure_categories")
    assert {k: from_lines[k] for k in keys} == {k: from_records[k] for k in keys}


# ------------------------------------------------------------------- the counts


def test_verdicts_evaluators_personas_and_errors() -> None:
    spec = EvaluationSpec(focus_personas=("p2",), ks=(1,), by_persona=True)
    block = finish(spec, mixed_run())
    assert block["verdicts"] == {"passed": 2, "failed": 3, "unscored": 1, "skipped": 1, "none": 2}
    assert block["evaluators"] == {
        "rules": {
            "passed": 2,
            "failed": 1,
            "unscored": 0,
            "skipped": 0,
            "mean_score": pytest.approx((1.0 + 0.0 + 0.8) / 3, abs=1e-4),
            "unscored_reasons": {},
        },
        "judge": {
            "passed": 0,
            "failed": 0,
            "unscored": 1,
            "skipped": 0,
            "mean_score": None,
            "unscored_reasons": {"timeout": 1},
        },
    }
    assert block["unscored"] == 1
    # Focus personas first, then by name; the crash and the unscored run are excluded.
    assert list(block["by_persona"]) == ["p2", "-", "p1"]
    assert block["by_persona"]["p1"] == {
        "passed": 2,
        "failed": 1,
        "excluded": 0,
        "success_rate": pytest.approx(0.6667, abs=1e-4),
        "mean_score": pytest.approx(0.6, abs=1e-4),
        "focus": False,
    }
    assert block["by_persona"]["p2"] == {
        "passed": 0,
        "failed": 2,
        "excluded": 1,
        "success_rate": 0.0,
        "mean_score": 0.0,
        "focus": True,
    }
    assert block["by_persona"]["-"]["passed"] == 2  # skipped and no verdict count as passes
    assert block["by_persona"]["-"]["excluded"] == 1
    # Counted runs: 7 (the crash and the unscored run are left out); 2 agent errors.
    # The unscored trace is the agent's run too: 2 agent errors in 8 runs the agent made.
    assert block["error_rate"] == pytest.approx(2 / 8)
    # Latency and tokens are the agent's: the unscored run counts (the crash does not).
    assert block["latency_ms"]["count"] == 8
    assert block["latency_ms"]["max"] == 50.0
    assert block["tokens_per_case"] == 50.0  # 40 and the unscored run's 60
    overall = block["reliability"]["overall"]
    assert (overall["runs"], overall["passes"]) == (7, 4)
    assert overall["excluded"] == {"infrastructure": 1, "judge": 1}


def test_tokens_per_case_is_the_mean_over_counted_runs_that_report_tokens() -> None:
    records = [
        record(1, token_usage={"agent": {"total_tokens": 100}, "judge": {"total_tokens": 999}}),
        record(2, token_usage={"agent": {"total_tokens": 300}}),
        record(3),
    ]
    block = finish(EvaluationSpec(), records)
    assert block["tokens_per_case"] == 200.0  # judge tokens are never the agent's


# ------------------------------------------------------------------- efficiency


def latency_run() -> list[TraceRecord]:
    # Nine at 10 ms and one at 100 ms: mean 19, population std 27.
    durations = [10.0] * 9 + [100.0]
    return [record(i, duration_ms=d) for i, d in enumerate(durations)]


def test_statistical_outliers_are_beyond_mean_plus_k_std() -> None:
    two = finish(
        EvaluationSpec(efficiency=[EfficiencySpec("latency", std_multiplier=2)]), latency_run()
    )
    latency = two["efficiency"]["latency"]
    assert (latency["mean"], latency["std"]) == (19.0, 27.0)
    assert (latency["outliers"], latency["outlier_case_ids"]) == (1, ["c009"])  # 100 > 73
    four = finish(
        EvaluationSpec(efficiency=[EfficiencySpec("latency", std_multiplier=4)]), latency_run()
    )
    assert four["efficiency"]["latency"]["outliers"] == 0  # 100 < 127


def test_absolute_outliers_and_other_series() -> None:
    spec = EvaluationSpec(
        efficiency=[
            EfficiencySpec("latency", mode="absolute", absolute_threshold=10.0),
            EfficiencySpec("output_tokens", mode="absolute", absolute_threshold=150),
            EfficiencySpec("conversation_depth", mode="absolute", absolute_threshold=2),
        ]
    )
    records = [
        record(1, duration_ms=10.0, token_usage={"agent": {"total_tokens": 100}}),
        record(
            2,
            duration_ms=10.5,
            token_usage={"agent": {"total_tokens": 200}},
            multi_turn={"enabled": True, "turn_count": 5},
        ),
        record(3, duration_ms=9.0, multi_turn={"enabled": True, "turn_count": 2}),
    ]
    block = finish(spec, records)["efficiency"]
    assert (block["latency"]["outliers"], block["latency"]["outlier_case_ids"]) == (1, ["c002"])
    assert block["output_tokens"]["outliers"] == 1
    assert block["output_tokens"]["mean"] == 150.0
    assert block["output_tokens"]["outlier_case_ids"] == []  # ids are kept for latency only
    assert (block["conversation_depth"]["mean"], block["conversation_depth"]["outliers"]) == (
        3.5,
        1,
    )


def test_too_few_or_equal_values_have_no_statistical_outliers() -> None:
    spec = EvaluationSpec(efficiency=[EfficiencySpec("latency", std_multiplier=0.1)])
    assert (
        finish(spec, [record(1, duration_ms=1.0), record(2, duration_ms=100.0)])["efficiency"][
            "latency"
        ]["outliers"]
        == 0
    )
    same = [record(i, duration_ms=5.0) for i in range(5)]
    assert finish(spec, same)["efficiency"]["latency"]["outliers"] == 0


def test_removed_outliers_leave_the_latency_figures_and_gates() -> None:
    gates = [parse_gate("max_latency_ms<50")]
    efficiency = [EfficiencySpec("latency")]
    kept = RunEvaluation(EvaluationSpec(efficiency=efficiency, gates=gates))
    removed = RunEvaluation(
        EvaluationSpec(efficiency=efficiency, gates=gates, outlier_handling="remove")
    )
    for item in latency_run():
        kept.add(item)
        removed.add(item)
    with_outlier, without = kept.finish(), removed.finish()
    assert with_outlier.block["latency_ms"]["max"] == 100.0
    assert with_outlier.failed_gates and with_outlier.fails_run
    assert without.block["latency_ms"] == {
        "count": 9,
        "avg": 10.0,
        "p50": 10.0,
        "p95": 10.0,
        "max": 10.0,
    }
    assert not without.failed_gates
    assert without.block["efficiency"]["latency"]["handling"] == "remove"
    assert without.block["efficiency"]["latency"]["outliers"] == 1  # still reported


# ----------------------------------------------------------------- metric ratings


@pytest.mark.parametrize(
    ("passed", "failed", "good", "fair", "rating", "rate"),
    [
        (9, 1, 80, 60, "good", 90.0),
        (8, 2, 80, 60, "good", 80.0),
        (7, 3, 80, 60, "fair", 70.0),
        (5, 5, 80, 60, "poor", 50.0),
        (5, 5, None, None, "unrated", 50.0),
        (0, 0, 80, 60, "insufficient data", None),
    ],
)
def test_metric_ratings(
    passed: int,
    failed: int,
    good: float | None,
    fair: float | None,
    rating: str,
    rate: float | None,
) -> None:
    spec = EvaluationSpec(metrics=[MetricSpec("task_completion", good=good, fair=fair)])
    statuses = ["passed"] * passed + ["failed"] * failed + ["unscored"]  # unscored: not counted
    records = [
        record(i, evaluators=[evaluator_result("task_completion", status)])
        for i, status in enumerate(statuses)
    ]
    block = finish(spec, records)["metrics"]["task_completion"]
    assert (block["rating"], block["pass_rate_percent"]) == (rating, rate)
    assert block["thresholds"] == {"good": good, "fair": fair}


# -------------------------------------------------------- failures, trend, baseline


def test_failure_categories() -> None:
    spec = EvaluationSpec(categorize_failures=True)
    records = [
        record(i, success=False, status="error", verdict="failed", error=error()) for i in range(7)
    ]
    records += [
        record(
            10, success=False, status="timeout", verdict="failed", error=error(type_="TimeoutError")
        ),
        record(
            11,
            verdict="failed",
            evaluators=[
                evaluator_result("tone", "failed"),
                evaluator_result("facts", "failed"),
                evaluator_result("ok", "passed"),
            ],
        ),
        record(12, verdict="failed", evaluators=[evaluator_result("ok", "passed")], score=0.4),
        record(13, verdict="unscored", score=None),  # not a failure
        record(14),
    ]
    categories = finish(spec, records)["failure_categories"]
    assert list(categories) == [
        "agent: ValueError",
        "agent: TimeoutError",
        "evaluation: facts, tone",
        "evaluation: below threshold",
    ]
    assert categories["agent: ValueError"]["count"] == 7
    assert categories["agent: ValueError"]["case_ids"] == [f"c{i:03d}" for i in range(5)]
    assert categories["evaluation: facts, tone"] == {"count": 1, "case_ids": ["c011"]}
    assert "failure_categories" not in finish(EvaluationSpec(), records)


def test_latency_trend_compares_the_halves_in_written_order() -> None:
    spec = EvaluationSpec(trend_analysis=True)
    durations = [10.0, 20.0, 30.0, 30.0, 50.0]  # halves: [10, 20] and [30, 30, 50]
    trend = finish(spec, [record(i, duration_ms=d) for i, d in enumerate(durations)])[
        "latency_trend"
    ]
    assert trend == {
        "first_half_avg_ms": 15.0,
        "second_half_avg_ms": pytest.approx(36.667, abs=1e-3),
        "change_percent": pytest.approx(144.44, abs=1e-2),
    }
    short = finish(spec, [record(i) for i in range(3)])["latency_trend"]
    assert short == {"first_half_avg_ms": None, "second_half_avg_ms": None, "change_percent": None}


def test_baseline_comparison(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"total_traces": 10, "successful": 9, "avg_duration_ms": 20.0}))
    records = [record(1, duration_ms=10.0), record(2, duration_ms=30.0, verdict="failed")]
    block = finish(EvaluationSpec(baseline_path=path), records)["baseline"]
    assert block == {
        "path": str(path),
        "success_rate": {"baseline": 0.9, "current": 0.5, "delta": -0.4},
        "avg_latency_ms": {"baseline": 20.0, "current": 20.0, "delta": 0.0},
    }
    # A baseline that was evaluated: its reliability's success rate is the one compared.
    path.write_text(
        json.dumps(
            {
                "total_traces": 10,
                "successful": 10,
                "avg_duration_ms": 15.0,
                "evaluation": {"reliability": {"overall": {"success_rate": 0.25}}},
            }
        )
    )
    block = finish(EvaluationSpec(baseline_path=path), records)["baseline"]
    assert block["success_rate"] == {"baseline": 0.25, "current": 0.5, "delta": 0.25}
    assert block["avg_latency_ms"]["delta"] == 5.0
    path.write_text("{not json")
    broken = finish(EvaluationSpec(baseline_path=path), records)["baseline"]
    assert broken["path"] == str(path) and "could not read it" in broken["error"]


# ------------------------------------------------------------------ groups, gates


def test_at_most_groups_kept_groups_are_listed_and_gates_count_them_all() -> None:
    kept = run_stats.GROUPS_KEPT
    failing = kept * 3 // 5  # worst first: every failing group is listed...
    passing = failing  # ...and only some of the passing ones
    spec = EvaluationSpec(gates=[parse_gate("pass^1>=0.5")], ks=(1,))
    records = [
        record(i, input=f"q{i}", verdict="failed" if i < failing else "passed")
        for i in range(failing + passing)
    ]
    outcome_run = RunEvaluation(spec)
    for item in records:
        outcome_run.add(item)
    outcome = outcome_run.finish()
    reliability = outcome.block["reliability"]
    assert len(reliability["groups"]) == kept
    assert reliability["groups_total"] == failing + passing
    assert all(g["c"] == 0 for g in reliability["groups"][:failing])
    assert reliability["overall"]["groups"] == failing + passing
    assert reliability["overall"]["pass_hat_k"]["1"] == 0.5  # every group; the listed ones: 0.4
    [gate] = outcome.gates
    assert gate.passed and gate.value == 0.5


def test_a_run_under_the_cap_has_no_groups_total() -> None:
    block = finish(EvaluationSpec(), [record(i, input=f"q{i}") for i in range(3)])
    assert len(block["reliability"]["groups"]) == 3
    assert "groups_total" not in block["reliability"]


def test_gates_and_alerts() -> None:
    spec = EvaluationSpec(
        gates=[parse_gate("success_rate>=0.9"), parse_gate("error_rate<=50%")],
        alerts=[parse_gate("error_rate<=10%"), parse_gate("avg_latency_ms<1000")],
    )
    records = [record(1), record(2, success=False, status="error", error=error(), verdict="failed")]
    outcome = RunEvaluation(spec)
    for item in records:
        outcome.add(item)
    done = outcome.finish()
    assert [g.passed for g in done.gates] == [False, True]
    assert [g["gate"] for g in done.block["gates"]] == ["success_rate>=0.9", "error_rate<=50%"]
    assert done.block["gates"][0]["value"] == 0.5
    assert done.fails_run
    assert done.messages() == [f"gate failed: {done.gates[0].message}"]
    # An alert warns (listed when it fires), it never fails the run.
    assert [a["gate"] for a in done.block["alerts"]] == ["error_rate<=10%"]


def test_strict_judges_fail_the_run_on_unscored_results() -> None:
    records = [
        record(
            1,
            verdict="unscored",
            score=None,
            evaluators=[evaluator_result("judge", "unscored", unscored_reason="invalid_output")],
        )
    ]
    lenient = RunEvaluation(EvaluationSpec())
    strict = RunEvaluation(EvaluationSpec(), strict_judges=True)
    for item in records:
        lenient.add(item)
        strict.add(item)
    relaxed, hard = lenient.finish(), strict.finish()
    assert not relaxed.fails_run and relaxed.messages() == []
    assert hard.fails_run and hard.unscored == 1
    [message] = hard.messages()
    assert message.startswith("--fluxloop-strict-judges: 1 evaluator result(s) unscored")
    clean = RunEvaluation(EvaluationSpec(), strict_judges=True)
    clean.add(record(2))
    assert not clean.finish().fails_run


def test_by_persona_is_reported_only_when_asked() -> None:
    # aggregate.by_persona (or additional_analysis.persona) turns the persona table on.
    assert "by_persona" not in finish(EvaluationSpec(ks=(1,)), mixed_run())
    assert "by_persona" in finish(EvaluationSpec(ks=(1,), by_persona=True), mixed_run())


def test_a_budget_refusal_is_told_once_in_a_note() -> None:
    spec = EvaluationSpec(ks=(1,))
    assert finish_outcome(spec, mixed_run()).notes() == []
    refused = [
        record(n, evaluators=[evaluator_result("judge", "unscored", unscored_reason="budget")])
        for n in range(2)
    ]
    (note,) = finish_outcome(spec, refused).notes()
    assert "2 judgement(s)" in note and "unscored (budget)" in note


def finish_outcome(spec: EvaluationSpec, records: list[TraceRecord]) -> EvaluationOutcome:
    run = RunEvaluation(spec)
    for item in records:
        run.add(item)
    return run.finish()
