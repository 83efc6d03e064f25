"""A trace's verdict from its evaluators' results, and the text a failure shows:
``pytest_fluxloop.evaluation.verdict`` (``aggregate``, ``describe_evaluation``)."""

from __future__ import annotations

from ast import literal_eval
from typing import Any

import pytest
from support import eval_helpers
from support.eval_helpers import evaluator_result

from pytest_fluxloop.evaluation.spec import EvaluationSpec
from pytest_fluxloop.evaluation.verdict import aggregate, describe_evaluation
from pytest_fluxloop.records import (
    CaseEvaluation,
    ErrorInfo,
    EvaluatorResult,
    RuleResult,
    TraceRecord,
)


def make_record(**fields: Any) -> TraceRecord:
    """The shared successful trace, as the third iteration of a named case with a persona."""
    defaults = {
        "case_id": "in00-where-novice-it2",
        "iteration": 2,
        "persona": "novice",
        "input": "Where is my parcel?",
        "output": "It is on its way.",
        "duration_ms": 12.0,
    }
    return eval_helpers.make_record(**{**defaults, **fields})


def scored(name: str, score: float, weight: float = 1.0, **fields: Any) -> EvaluatorResult:
    return evaluator_result(name, score=score, weight=weight, **fields)


def unscored(name: str, weight: float = 1.0, reason: str = "timeout") -> EvaluatorResult:
    return EvaluatorResult(
        name=name,
        type="llm_judge",
        status="unscored",
        weight=weight,
        unscored_reason=reason,
        model="judge-m",
    )


def skipped(name: str, weight: float = 1.0) -> EvaluatorResult:
    return EvaluatorResult(
        name=name, type="llm_judge", status="skipped", weight=weight, reason="not sampled"
    )


def spec(**fields: Any) -> EvaluationSpec:
    return EvaluationSpec(**fields)


# ----------------------------------------------------------------------- the aggregate


def test_weighted_sum_and_average_differ_and_decide_the_verdict() -> None:
    results = [scored("a", 1.0, weight=3), scored("b", 0.0, weight=1)]
    weighted = aggregate(spec(method="weighted_sum", threshold=0.6), results, make_record())
    average = aggregate(spec(method="average", threshold=0.6), results, make_record())
    # (1·3 + 0·1) / 4 = 0.75 against (1 + 0) / 2 = 0.5
    assert weighted.score == pytest.approx(0.75)
    assert weighted.verdict == "passed"
    assert weighted.reason == "score 0.75 >= threshold 0.6"
    assert average.score == pytest.approx(0.5)
    assert average.verdict == "failed"
    assert average.reason == "score 0.50 < threshold 0.6"
    assert (weighted.method, weighted.threshold) == ("weighted_sum", 0.6)
    assert weighted.evaluators == results


def test_the_threshold_is_inclusive() -> None:
    results = [scored("a", 0.8), scored("b", 0.4)]
    assert aggregate(spec(threshold=0.6), results, make_record()).verdict == "passed"
    assert aggregate(spec(threshold=0.61), results, make_record()).verdict == "failed"


def test_zero_weights() -> None:
    # A weight-0 evaluator is shown but does not count...
    results = [scored("a", 1.0, weight=1), scored("b", 0.0, weight=0)]
    result = aggregate(spec(threshold=0.9), results, make_record())
    assert (result.verdict, result.score) == ("passed", 1.0)
    # ...and when every weight is 0 the plain mean is used, never a division by zero.
    zeros = [scored("a", 1.0, weight=0), scored("b", 0.2, weight=0)]
    result = aggregate(spec(threshold=0.5), zeros, make_record())
    assert result.score == pytest.approx(0.6)
    assert result.verdict == "passed"


def test_skipped_evaluators_do_not_count_and_all_skipped_is_skipped() -> None:
    result = aggregate(spec(threshold=0.9), [scored("a", 1.0), skipped("j")], make_record())
    assert (result.verdict, result.score) == ("passed", 1.0)
    assert "whatever" not in result.reason  # nothing was unscored
    nothing = aggregate(spec(threshold=0.5), [skipped("j"), skipped("k")], make_record())
    assert (nothing.verdict, nothing.score) == ("skipped", None)
    assert nothing.reason == "no evaluator applied"
    assert aggregate(spec(), [], make_record()).verdict == "skipped"


# ------------------------------------------------------------- unscored is never 0


def test_unscored_passes_when_it_would_pass_whatever_it_scored() -> None:
    # weighted: lowest (1·1 + 0·1)/2 = 0.5 >= 0.5
    result = aggregate(spec(threshold=0.5), [scored("a", 1.0), unscored("j")], make_record())
    assert result.verdict == "passed"
    assert result.score == 1.0  # the scored evaluators' own aggregate
    assert result.reason == "score 1.00 >= threshold 0.5 (whatever j would have scored)"


def test_unscored_fails_when_it_would_fail_whatever_it_scored() -> None:
    # weighted: highest (0·3 + 1·1)/4 = 0.25 < 0.5
    results = [scored("a", 0.0, weight=3), unscored("j", weight=1)]
    result = aggregate(spec(threshold=0.5), results, make_record())
    assert result.verdict == "failed"
    assert result.score == 0.0
    assert result.reason == "score 0.00 < threshold 0.5 (even if j had scored full marks)"


def test_unscored_stays_unscored_when_it_would_decide() -> None:
    # lowest (0.6 + 0)/2 = 0.3 < 0.5 <= highest (0.6 + 1)/2 = 0.8
    result = aggregate(spec(threshold=0.5), [scored("a", 0.6), unscored("j")], make_record())
    assert result.verdict == "unscored"
    assert result.score == pytest.approx(0.6)
    assert "j could not score" in result.reason


def test_unscored_bounds_follow_the_method() -> None:
    results = [scored("a", 0.9, weight=1), scored("b", 0.9, weight=1), unscored("j", weight=8)]
    # average: lowest (0.9 + 0.9 + 0)/3 = 0.6, exactly the threshold: passes.
    assert aggregate(spec(method="average", threshold=0.6), results, make_record()).verdict == (
        "passed"
    )
    # weighted: lowest 1.8/10 = 0.18, highest 9.8/10 = 0.98: j's weight makes it decide.
    assert aggregate(spec(threshold=0.6), results, make_record()).verdict == "unscored"
    # weighted, threshold above the highest: fails.
    assert aggregate(spec(threshold=0.99), results, make_record()).verdict == "failed"


def test_every_evaluator_unscored() -> None:
    result = aggregate(spec(threshold=0.5), [unscored("j"), unscored("k")], make_record())
    assert (result.verdict, result.score) == ("unscored", None)
    assert "j, k could not score" in result.reason
    assert "n/a" not in result.reason
    # A threshold of 0 is met whatever they score.
    assert aggregate(spec(threshold=0.0), [unscored("j")], make_record()).verdict == "passed"


# --------------------------------------------------------------------- required


def test_a_required_evaluator_that_failed_fails_the_case() -> None:
    results = [scored("a", 1.0, weight=9), scored("polite", 0.0, weight=1)]
    free = aggregate(spec(threshold=0.5), results, make_record())
    assert free.verdict == "passed"
    bound = aggregate(spec(threshold=0.5, required=("polite",)), results, make_record())
    assert bound.verdict == "failed"
    assert bound.score == pytest.approx(0.9)
    assert bound.reason == "required evaluator(s) failed: polite"


def test_a_required_evaluator_fails_by_its_status_not_its_score() -> None:
    # A rule evaluator with pass_score can fail with a fair score.
    results = [scored("polite", 0.8, status="failed"), scored("b", 1.0)]
    result = aggregate(spec(threshold=0.5, required=("polite",)), results, make_record())
    assert result.verdict == "failed"
    assert "polite" in result.reason
    other = aggregate(spec(threshold=0.5, required=("b",)), results, make_record())
    assert other.verdict == "passed"


def test_a_required_evaluator_that_could_not_score_leaves_the_case_unscored() -> None:
    results = [scored("a", 1.0, weight=9), unscored("judge", weight=1)]
    free = aggregate(spec(threshold=0.5), results, make_record())
    assert free.verdict == "passed"  # lowest 0.9 >= 0.5
    bound = aggregate(spec(threshold=0.5, required=("judge",)), results, make_record())
    assert bound.verdict == "unscored"
    # ...but a case that fails whatever it scored still fails.
    low = [scored("a", 0.0, weight=9), unscored("judge", weight=1)]
    assert aggregate(spec(threshold=0.5, required=("judge",)), low, make_record()).verdict == (
        "failed"
    )


# ---------------------------------------------------------------- agent failure


def failed_record() -> TraceRecord:
    return make_record(
        success=False,
        status="error",
        output=None,
        error=ErrorInfo(type="ValueError", message="boom"),
    )


def test_an_agent_failure_is_failed_whatever_the_evaluators_say() -> None:
    results = [scored("a", 1.0)]
    result = aggregate(spec(threshold=0.5), results, failed_record())
    assert result.verdict == "failed"
    assert result.score is None
    assert result.reason == "the agent did not succeed (error)"
    assert result.evaluators == results
    timed_out = make_record(success=False, status="timeout")
    assert "(timeout)" in aggregate(spec(), results, timed_out).reason


def test_without_require_success_the_evaluators_decide() -> None:
    results = [scored("a", 1.0)]
    result = aggregate(spec(threshold=0.5, require_success=False), results, failed_record())
    assert (result.verdict, result.score) == ("passed", 1.0)
    bad = aggregate(spec(threshold=0.5, require_success=False), [scored("a", 0.0)], failed_record())
    assert bad.verdict == "failed"


# ------------------------------------------------------------- the failure text


def test_describe_lists_failing_evaluators_first_with_scores_and_reasons() -> None:
    rules = [
        RuleResult(check="output_not_empty", passed=True, score=1.0),
        RuleResult(check="not_contains", passed=False, score=0.0, reason="output contains 'no'"),
        RuleResult(check="latency_under", passed=None, reason="not applicable"),
    ]
    results = [
        skipped("sampled_out"),
        scored("fine", 1.0, reason=""),
        unscored("flaky_judge", reason="rate_limited"),
        EvaluatorResult(
            name="helpful",
            type="llm_judge",
            model="gpt-4o-mini",
            status="failed",
            score=0.2,
            raw_score=2,
            max_score=10,
            weight=2,
            cached=True,
            reason="The answer refuses.",
            evidence=[
                {"turn": 1, "quote": "no"},
                {"quote": "unnumbered"},
                {"turn": 3, "quote": "third"},
                {"turn": 4, "quote": "fourth, not shown"},
            ],
        ),
        scored("answered", 0.5, status="failed", rules=rules, reason="output contains 'no'"),
    ]
    record = make_record(output={"answer": "no"})
    evaluation = CaseEvaluation(
        verdict="failed",
        score=0.31,
        threshold=0.7,
        reason="score 0.31 < threshold 0.7",
        evaluators=results,
    )
    text = describe_evaluation(record, evaluation)
    lines = text.splitlines()
    assert lines[:4] == [
        "FluxLoop case in00-where-novice-it2 failed evaluation: score 0.31 < threshold 0.7",
        "  input: 'Where is my parcel?'",
        "  persona: novice, iteration: 2",
        """  output: '{"answer": "no"}'""",
    ]
    heads = [line.split()[1] for line in lines[4:] if not line.startswith("             ")]
    assert heads == ["helpful", "answered", "flaky_judge", "fine", "sampled_out"]
    assert (
        "  FAIL     helpful (llm_judge gpt-4o-mini, weight 2, cached): score 0.20 (2/10) - "
        "The answer refuses." in lines
    )
    assert "             evidence (turn 1): 'no'" in lines
    assert "             evidence: 'unnumbered'" in lines
    assert "             evidence (turn 3): 'third'" in lines
    assert "fourth" not in text  # three quotes at most
    assert "  FAIL     answered (rule_based, weight 1): score 0.50 - output contains 'no'" in lines
    # Only the rules that failed are listed under their evaluator.
    assert "             - not_contains: output contains 'no'" in lines
    assert "output_not_empty" not in text and "latency_under" not in text
    assert "  UNSCORED flaky_judge (llm_judge judge-m, weight 1): unscored (rate_limited)" in lines
    assert "  PASS     fine (rule_based, weight 1): score 1.00" in lines
    assert "  SKIP     sampled_out (llm_judge, weight 1): skipped - not sampled" in lines


def test_describe_cuts_long_text_and_shows_a_missing_persona() -> None:
    record = make_record(persona=None, input="word " * 100, output="x" * 1000)
    evaluation = CaseEvaluation(verdict="failed", reason="r", evaluators=[])
    lines = describe_evaluation(record, evaluation).splitlines()
    assert lines[2] == "  persona: -, iteration: 2"
    shown_input = lines[1].removeprefix("  input: ")
    assert shown_input.endswith("…'")
    assert len(literal_eval(shown_input)) == 160
    assert "  " not in literal_eval(shown_input)  # whitespace collapsed
    assert len(literal_eval(lines[3].removeprefix("  output: "))) == 160
    unscored_case = CaseEvaluation(verdict="unscored", reason="no verdict", evaluators=[])
    assert describe_evaluation(record, unscored_case).startswith(
        "FluxLoop case in00-where-novice-it2 unscored evaluation: no verdict"
    )
