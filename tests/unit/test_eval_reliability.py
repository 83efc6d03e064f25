"""pass@k, pass^k, the Wilson interval, which runs count, and the reliability report."""

from __future__ import annotations

import itertools
import json
import math
import threading
from fractions import Fraction
from typing import Any

import pytest
from support.eval_helpers import make_record

from pytest_fluxloop.evaluation import reliability as rel
from pytest_fluxloop.evaluation.reliability import (
    EXCLUSION_REASONS,
    FAIL,
    MAX_FAILED_CASE_IDS,
    PASS,
    ReliabilityTally,
    case_outcome,
    group_key,
    pass_at_k,
    pass_hat_k,
    reliability_table,
    wilson_interval,
)
from pytest_fluxloop.records import CaseEvaluation, ErrorInfo, TraceRecord


def record(
    *,
    case_id: str = "c0",
    input: str = "refund my order",
    persona: str | None = "alice",
    status: str = "success",
    kind: str | None = None,
    verdict: str | None = None,
) -> TraceRecord:
    error = None if kind is None else ErrorInfo(kind=kind, type="E", message="boom")
    evaluation = None if verdict is None else CaseEvaluation(verdict=verdict)
    return make_record(
        trace_id=f"t-{case_id}",
        case_id=case_id,
        persona=persona,
        input=input,
        output=None,
        duration_ms=10.0,
        success=status == "success",
        status=status,
        error=error,
        evaluation=evaluation,
    )


def line(**kwargs: Any) -> dict[str, Any]:
    """The ``trace_summary.jsonl`` line of the same record (the real projection)."""
    return record(**kwargs).summary_line()


# --- estimators ------------------------------------------------------------------------------


def test_hand_computed_values() -> None:
    # n=5, c=3, k=2: C(5,2)=10 pairs, C(2,2)=1 all-fail pair, C(3,2)=3 all-pass pairs.
    assert pass_at_k(5, 3, 2) == pytest.approx(0.9)
    assert pass_hat_k(5, 3, 2) == pytest.approx(0.3)
    # k=1 is the plain success rate for both.
    assert pass_at_k(5, 3, 1) == pytest.approx(0.6)
    assert pass_hat_k(5, 3, 1) == pytest.approx(0.6)
    # k=n: pass^n is 1 only when every run passed; pass@n is 1 when any did.
    assert pass_hat_k(4, 3, 4) == 0.0
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(4, 0, 4) == 0.0


def _subset_means(n: int, c: int, k: int) -> tuple[Fraction, Fraction]:
    """Over every k-subset of n runs (c of them passes): P(any passes), P(all pass)."""
    runs = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(runs, k))
    any_pass = Fraction(sum(any(s) for s in subsets), len(subsets))
    all_pass = Fraction(sum(all(s) for s in subsets), len(subsets))
    return any_pass, all_pass


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(n, c, k) for n in range(1, 8) for c in range(n + 1) for k in range(1, n + 1)],
)
def test_estimators_equal_enumeration_over_all_subsets(n: int, c: int, k: int) -> None:
    any_pass, all_pass = _subset_means(n, c, k)
    assert pass_at_k(n, c, k) == pytest.approx(float(any_pass), abs=1e-12)
    assert pass_hat_k(n, c, k) == pytest.approx(float(all_pass), abs=1e-12)


@pytest.mark.parametrize(("n", "k"), [(0, 1), (2, 3), (4, 5), (3, 0), (3, -1)])
def test_insufficient_runs_give_none(n: int, k: int) -> None:
    assert pass_at_k(n, 0, k) is None
    assert pass_hat_k(n, 0, k) is None


def test_large_n_stays_finite() -> None:
    value = pass_hat_k(2000, 1900, 50)
    assert value is not None and 0.0 < value < 1.0 and math.isfinite(value)


@pytest.mark.parametrize(("n", "c"), [(3, 4), (3, -1), (-1, 0)])
def test_impossible_counts_are_rejected(n: int, c: int) -> None:
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(n, c, 1)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_hat_k(n, c, 1)


def test_wilson_known_values() -> None:
    lo, hi = wilson_interval(8, 10) or (None, None)
    assert lo == pytest.approx(0.4902, abs=5e-4)
    assert hi == pytest.approx(0.9433, abs=5e-4)
    # All passes: the upper bound is 1 but the lower bound is not (no zero-width interval).
    lo, hi = wilson_interval(10, 10) or (None, None)
    assert hi == pytest.approx(1.0)
    assert lo == pytest.approx(0.7225, abs=5e-4)
    lo, hi = wilson_interval(0, 10) or (None, None)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(0.2775, abs=5e-4)


def test_wilson_confidence_widens_interval_and_empty_is_none() -> None:
    narrow = wilson_interval(8, 10, confidence=0.80)
    wide = wilson_interval(8, 10, confidence=0.99)
    assert narrow is not None and wide is not None
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


# --- which runs count ------------------------------------------------------------------------

OUTCOMES = [
    ({"status": "success"}, PASS),
    ({"status": "success", "verdict": "passed"}, PASS),
    ({"status": "success", "verdict": "skipped"}, PASS),
    ({"status": "success", "verdict": "failed"}, FAIL),
    ({"status": "success", "verdict": "unscored"}, "judge"),
    ({"status": "error", "kind": "agent"}, FAIL),
    ({"status": "timeout", "kind": "timeout"}, FAIL),
    ({"status": "error", "kind": "agent", "verdict": "unscored"}, FAIL),
    ({"status": "error", "kind": "infrastructure"}, "infrastructure"),
    ({"status": "crashed", "kind": "infrastructure"}, "infrastructure"),
    ({"status": "crashed"}, "infrastructure"),
    ({"status": "supervisor_error", "kind": "supervisor"}, "supervisor"),
    ({"status": "supervisor_error"}, "supervisor"),
    ({"status": "error", "kind": "supervisor"}, "supervisor"),
]


@pytest.mark.parametrize(("fields", "expected"), OUTCOMES)
def test_outcome_of_record_and_of_summary_line(fields: dict[str, Any], expected: str) -> None:
    rec = record(**fields)
    assert case_outcome(rec) == expected
    assert case_outcome(rec.summary_line()) == expected
    # A traces.jsonl line (the full record as JSON) keeps the error kind inside ``error``.
    assert case_outcome(rec.model_dump(mode="json")) == expected


def test_exclusion_reasons_are_the_documented_set() -> None:
    assert set(EXCLUSION_REASONS) == {"infrastructure", "supervisor", "judge"}
    excluded = {expected for _, expected in OUTCOMES} - {PASS, FAIL}
    assert excluded == set(EXCLUSION_REASONS)


def test_legacy_line_without_status_uses_success() -> None:
    assert case_outcome({"success": False, "input": "x"}) == FAIL
    assert case_outcome({"success": True, "input": "x"}) == PASS


def test_group_key() -> None:
    assert group_key(record(persona=None, input="hi")) == ("hi", "")
    assert group_key(line(persona="bob", input="hi")) == ("hi", "bob")
    assert group_key(line(persona=None, input="hi")) == ("hi", "")
    # Two long inputs cut to the same prefix stay apart through their hashes.
    a = {"input": "same start", "input_truncated": {"length": 99, "sha256": "a" * 64}}
    b = {"input": "same start", "input_truncated": {"length": 99, "sha256": "b" * 64}}
    assert group_key(a) != group_key(b)
    assert group_key(a)[0].startswith("same start")


# --- the tally and its report ----------------------------------------------------------------


def _fill(tally: ReliabilityTally, input: str, persona: str, outcomes: str) -> None:
    """Add one run per letter: p pass, f agent error, F failed verdict, i/s/j excluded."""
    fields = {
        "p": {"status": "success"},
        "f": {"status": "error", "kind": "agent"},
        "F": {"status": "success", "verdict": "failed"},
        "i": {"status": "crashed", "kind": "infrastructure"},
        "s": {"status": "supervisor_error", "kind": "supervisor"},
        "j": {"status": "success", "verdict": "unscored"},
    }
    for i, letter in enumerate(outcomes):
        case_id = f"{persona}-{input}-{i}"
        tally.add(line(case_id=case_id, input=input, persona=persona, **fields[letter]))


def test_report_per_group() -> None:
    tally = ReliabilityTally()
    _fill(tally, "refund", "alice", "ppfpiFj")
    report = tally.report([1, 3])
    assert report["k"] == [1, 3]
    (group,) = report["groups"]
    assert (group["input"], group["persona"], group["n"], group["c"]) == ("refund", "alice", 5, 3)
    assert group["success_rate"] == pytest.approx(0.6)
    assert group["wilson"] == pytest.approx(list(wilson_interval(3, 5) or ()))
    assert group["pass_at_k"] == {"1": pytest.approx(0.6), "3": pytest.approx(1 - 0 / 10)}
    assert group["pass_hat_k"] == {"1": pytest.approx(0.6), "3": pytest.approx(1 / 10)}
    assert group["flaky"] is True
    assert group["excluded"] == {"infrastructure": 1, "judge": 1}
    assert group["failed_case_ids"] == ["alice-refund-2", "alice-refund-5"]
    json.dumps(report)  # JSON-ready


def test_flaky_only_when_mixed() -> None:
    tally = ReliabilityTally()
    _fill(tally, "a", "x", "ppp")
    _fill(tally, "b", "x", "fff")
    _fill(tally, "c", "x", "pfp")
    flaky = {g["input"]: g["flaky"] for g in tally.report([1])["groups"]}
    assert flaky == {"a": False, "b": False, "c": True}
    assert tally.report([1])["overall"]["flaky_groups"] == 1


def test_overall_means_only_sufficient_groups() -> None:
    tally = ReliabilityTally()
    _fill(tally, "a", "x", "ppp")  # pass^3 = 1
    _fill(tally, "b", "x", "pppf")  # pass^3 = C(3,3)/C(4,3) = 0.25
    _fill(tally, "c", "x", "ff")  # n=2 < 3: left out of pass^3, counted as insufficient
    overall = tally.report([1, 3])["overall"]
    assert overall["pass_hat_k"]["3"] == pytest.approx((1 + 0.25) / 2)
    assert overall["pass_at_k"]["3"] == pytest.approx(1.0)
    assert overall["pass_hat_k"]["1"] == pytest.approx((1 + 0.75 + 0) / 3)
    assert overall["insufficient"] == {"1": 0, "3": 1}
    assert (overall["groups"], overall["runs"], overall["passes"]) == (3, 9, 6)
    assert overall["success_rate"] == pytest.approx(6 / 9)
    assert overall["wilson"] == pytest.approx(list(wilson_interval(6, 9) or ()))


def test_no_group_with_enough_runs_gives_none_not_zero() -> None:
    tally = ReliabilityTally()
    _fill(tally, "a", "x", "pp")
    overall = tally.report([5])["overall"]
    assert overall["pass_hat_k"] == {"5": None}
    assert overall["pass_at_k"] == {"5": None}
    assert overall["insufficient"] == {"5": 1}


def test_all_excluded_group() -> None:
    tally = ReliabilityTally()
    _fill(tally, "a", "x", "iisj")
    report = tally.report([1])
    (group,) = report["groups"]
    assert (group["n"], group["success_rate"], group["wilson"]) == (0, None, None)
    assert group["pass_hat_k"] == {"1": None}
    assert report["overall"]["excluded"] == {"infrastructure": 2, "judge": 1, "supervisor": 1}
    assert report["overall"]["success_rate"] is None


def test_groups_worst_first() -> None:
    tally = ReliabilityTally()
    _fill(tally, "good", "x", "pppp")  # pass^3 1.0
    _fill(tally, "ok", "x", "pppf")  # pass^3 0.25, rate 0.75
    _fill(tally, "bad", "x", "ppff")  # pass^3 0.0, rate 0.5
    _fill(tally, "worse", "x", "pfff")  # pass^3 0.0, rate 0.25
    # n<3: ranked by the success rate (0.5, 0.0) in place of pass^3, not sent to the end.
    _fill(tally, "short", "x", "pf")
    _fill(tally, "zero", "x", "ff")
    _fill(tally, "none", "x", "ii")  # nothing counted: last
    order = [g["input"] for g in tally.report([1, 3])["groups"]]
    assert order == ["zero", "worse", "bad", "ok", "short", "good", "none"]


def test_failed_case_ids_are_bounded() -> None:
    tally = ReliabilityTally()
    _fill(tally, "a", "x", "f" * (MAX_FAILED_CASE_IDS + 4))
    (group,) = tally.report([1])["groups"]
    assert group["n"] == MAX_FAILED_CASE_IDS + 4
    assert len(group["failed_case_ids"]) == MAX_FAILED_CASE_IDS


def test_records_and_lines_tally_alike() -> None:
    from_records, from_lines = ReliabilityTally(), ReliabilityTally()
    for i, fields in enumerate(f for f, _ in OUTCOMES):
        from_records.add(record(case_id=str(i), **fields))
        from_lines.add(line(case_id=str(i), **fields))
    assert from_records.report([1, 2]) == from_lines.report([1, 2])


def test_add_returns_outcome_and_bad_k_is_rejected() -> None:
    tally = ReliabilityTally()
    assert tally.add(line(status="crashed")) == "infrastructure"
    with pytest.raises(ValueError, match="positive"):
        tally.report([0])


def test_concurrent_adds_lose_nothing() -> None:
    tally = ReliabilityTally()
    items = [line(case_id=str(i), input=f"in{i % 4}") for i in range(200)]

    def feed() -> None:
        for item in items:
            tally.add(item)

    threads = [threading.Thread(target=feed) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    overall = tally.report([1])["overall"]
    assert (overall["groups"], overall["runs"], overall["passes"]) == (4, 1600, 1600)


# --- the terminal table ----------------------------------------------------------------------


def test_table() -> None:
    tally = ReliabilityTally()
    _fill(tally, "a very long input that goes on and on well past forty characters", "al", "pf")
    _fill(tally, "fine", "bo", "ppp")
    lines = reliability_table(tally.report([1, 3]))
    assert lines[0].split() == ["persona", "input", "n", "c", "success", "pass^1", "pass^3"]
    worst, best, overall = lines[1], lines[2], lines[3]
    assert worst.startswith("al ")
    assert "a very long input that goes on and on " in worst
    assert "well past" not in worst and "…" in worst
    assert "50% [" in worst and "n<3" in worst and worst.endswith("flaky")
    assert "1.00" in best and "flaky" not in best
    assert overall.startswith("overall: 2 groups, 5 runs, 4 passed (80% [")
    assert "pass^3 1.00 (1 with n<3)" in overall and "1 flaky" in overall
    assert "\x1b" not in "".join(lines)
    # Columns line up: each row's n sits under the header's n.
    at = lines[0].index("  n  ") + 2
    assert (worst[at], best[at]) == ("2", "3")


def test_table_limit_and_exclusions() -> None:
    tally = ReliabilityTally()
    for i in range(5):
        _fill(tally, f"in{i}", "", "pfi")
    lines = reliability_table(tally.report([2]), limit=2)
    assert len(lines) == 1 + 2 + 2
    assert lines[3] == "… 3 more groups"
    assert lines[1].startswith("- ")
    assert lines[-1].endswith("excluded: infrastructure 5")


def test_constants_are_exported() -> None:
    assert set(rel.__all__) >= {"PASS", "FAIL", "EXCLUSION_REASONS", "ReliabilityTally"}
