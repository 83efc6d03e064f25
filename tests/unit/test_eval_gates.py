"""Run-level gates: parsing their text, and checking them against the run's figures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_fluxloop.evaluation.gates import (
    METRICS,
    Gate,
    RunFigures,
    evaluate_gates,
    gate_ks,
    latency_stats,
    parse_gate,
)
from pytest_fluxloop.evaluation.reliability import ReliabilityTally

# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "k", "op", "threshold"),
    [
        ("pass^3>=0.8", "pass_hat_k", 3, ">=", 0.8),
        ("pass@1 > 0.5", "pass_at_k", 1, ">", 0.5),
        ("  pass_hat_10   <=   1  ", "pass_hat_k", 10, "<=", 1.0),
        ("pass_at_2==.5", "pass_at_k", 2, "==", 0.5),
        ("Pass^3>=80%", "pass_hat_k", 3, ">=", 0.8),
        ("success_rate>=90%", "success_rate", None, ">=", 0.9),
        ("success_rate >= 90 %", "success_rate", None, ">=", 0.9),
        ("error_rate<0.05", "error_rate", None, "<", 0.05),
        ("error_rate<5%", "error_rate", None, "<", 0.05),
        ("avg_latency_ms<1500", "avg_latency_ms", None, "<", 1500.0),
        ("p95_latency_ms <= 2e3", "p95_latency_ms", None, "<=", 2000.0),
        ("tokens_per_case<5000", "tokens_per_case", None, "<", 5000.0),
        ("flaky==0", "flaky", None, "==", 0.0),
        ("unscored<=2", "unscored", None, "<=", 2.0),
    ],
)
def test_parse_valid(text: str, metric: str, k: int | None, op: str, threshold: float) -> None:
    gate = parse_gate(text)
    assert (gate.metric, gate.k, gate.op) == (metric, k, op)
    assert gate.threshold == pytest.approx(threshold)
    assert gate.text == text.strip()


def test_metric_name_is_canonical() -> None:
    assert parse_gate("pass_hat_3>=0.8").metric_name == "pass^3"
    assert parse_gate("pass_at_2>=0.8").metric_name == "pass@2"
    assert parse_gate("flaky==0").metric_name == "flaky"


def test_gate_is_frozen() -> None:
    gate = parse_gate("flaky==0")
    with pytest.raises(AttributeError):
        gate.threshold = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("pass^3", "no comparison operator"),
        ("pass^3 0.8", "no comparison operator"),
        ("success_rate=0.9", "unknown operator '=' (use '==' "),
        ("success_rate=>0.9", "unknown operator '=>'"),
        ("success_rate!=0.9", "unknown operator '!='"),
        ("success_rate>>0.9", "unknown operator '>>'"),
        (">=0.9", "the metric is missing"),
        ("pass^3>=", "the threshold is missing"),
        ("pass^3>=%", "the threshold is missing"),
        ("pass^3>=abc", "'abc' is not a number"),
        ("pass^3>=0.8x", "'0.8x' is not a number"),
        ("pass^3>=nan", "'nan' is not a number"),
        ("pass^3>=inf", "'inf' is not a number"),
        ("avg_latency_ms<-5", "negative"),
        ("pass^0>=0.5", "K in pass@K / pass^K must be a positive integer, got 0"),
        ("pass@>=0.5", "must be a positive integer, got nothing"),
        ("pass^x>=0.5", "must be a positive integer, got x"),
        ("pass^1.5>=0.5", "must be a positive integer, got 1.5"),
        ("pass_at_k>=0.5", "must be a positive integer, got k"),
        ("passk>=0.5", "unknown metric 'passk'"),
        ("pass3>=0.5", "(did you mean pass^K?)"),
        ("succes_rate>=0.5", "(did you mean success_rate?)"),
        ("latency>=5", "unknown metric 'latency'"),
        ("success_rate>=90", "success_rate is a fraction from 0 to 1; write 0.9 or 90%"),
        ("pass^3>=1.5", "pass^3 is a fraction from 0 to 1"),
        ("pass_hat_3>=150%", "pass^3 is a fraction from 0 to 1"),
        ("flaky<=5%", "flaky is not a rate, so it takes no percentage"),
        ("p95_latency_ms<10%", "not a rate"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_gate(text)
    message = str(info.value)
    assert problem in message
    assert f"invalid gate {text!r}" in message
    # Every error shows an example and the valid metrics and operators.
    assert "e.g. 'pass^3>=0.8'" in message
    assert all(metric in message for metric in METRICS)
    assert ">=, >, <=, <, ==" in message


def test_gate_ks() -> None:
    gates = [parse_gate(t) for t in ("pass^3>=0.5", "pass@1>0", "pass_hat_3>0", "flaky==0")]
    assert gate_ks(gates) == [1, 3]


@pytest.mark.parametrize(
    ("op", "value", "holds"),
    [
        (">=", 0.8, True),
        (">=", 0.8 - 1e-15, True),  # a rounding error below the threshold still meets it
        (">=", 0.79, False),
        (">", 0.8, False),
        (">", 0.81, True),
        ("<=", 0.8, True),
        ("<=", 0.81, False),
        ("<", 0.8, False),
        ("<", 0.79, True),
        ("==", 0.8, True),
        ("==", 0.81, False),
    ],
)
def test_comparisons(op: str, value: float, holds: bool) -> None:
    assert parse_gate(f"success_rate{op}0.8").holds(value) is holds


# --- latency statistics ----------------------------------------------------------------------


def test_latency_stats_nearest_rank() -> None:
    stats = latency_stats([float(v) for v in range(100, 0, -1)])  # 1..100, unsorted
    assert stats == {"count": 100, "avg": 50.5, "p50": 50.0, "p95": 95.0, "max": 100.0}
    # Nearest rank never interpolates: with 3 values p95 is the largest, p50 the middle.
    assert latency_stats([10, 30, 20]) == {
        "count": 3,
        "avg": 20.0,
        "p50": 20.0,
        "p95": 30.0,
        "max": 30.0,
    }
    assert latency_stats([7.0])["p95"] == 7.0
    assert latency_stats([]) == {"count": 0, "avg": None, "p50": None, "p95": None, "max": None}


# --- evaluation ------------------------------------------------------------------------------


def _line(input: str, persona: str, success: bool, case_id: str) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "input": input,
        "persona": persona,
        "success": success,
        "status": "success" if success else "error",
        "error_kind": None if success else "agent",
    }


def _report(groups: dict[tuple[str, str], str], ks: list[int]) -> dict[str, Any]:
    """A reliability report of groups given as 'pfp' strings (p pass, f fail)."""
    tally = ReliabilityTally()
    for (input, persona), runs in groups.items():
        for i, letter in enumerate(runs):
            tally.add(_line(input, persona, letter == "p", f"{persona}-{i}"))
    return tally.report(ks)


def _check(text: str, figures: RunFigures) -> Any:
    (result,) = evaluate_gates([parse_gate(text)], figures)
    return result


def test_pass_hat_k_gate_uses_overall_mean() -> None:
    report = _report({("refund", "alice"): "pppp", ("cancel", "bob"): "pppf"}, [3])
    # alice pass^3 = 1, bob pass^3 = C(3,3)/C(4,3) = 0.25: mean 0.625.
    passed = _check("pass^3>=0.6", RunFigures(report))
    assert passed.passed and passed.value == pytest.approx(0.625)
    assert passed.message == "pass^3>=0.6: measured 0.625"
    failed = _check("pass^3>=0.8", RunFigures(report))
    assert not failed.passed and failed.value == pytest.approx(0.625)
    assert failed.message.startswith("pass^3>=0.8 failed: measured 0.625")
    # The worst group comes first, named by persona / input / c of n.
    assert "worst: bob / 'cancel' 3 of 4, alice / 'refund' 4 of 4" in failed.message


def test_pass_at_k_gate_for_k_not_in_report() -> None:
    report = _report({("refund", "alice"): "pfff"}, [1])
    result = _check("pass@2>=0.5", RunFigures(report))
    # pass@2 = 1 - C(3,2)/C(4,2) = 0.5, computed from the group's counts.
    assert result.passed and result.value == pytest.approx(0.5)


def test_insufficient_runs_fail_the_gate() -> None:
    report = _report({("refund", "alice"): "pp", ("cancel", "bob"): "p"}, [3])
    result = _check("pass^3>=0.1", RunFigures(report))
    assert not result.passed and result.value is None
    assert result.message == (
        "pass^3>=0.1: insufficient runs: pass^3 needs at least 3 iterations per input and "
        "persona; the most any has is 2"
    )
    empty = _check("pass@1>=0", RunFigures(_report({}, [1])))
    assert not empty.passed and "the most any has is 0" in empty.message


def test_partly_insufficient_says_what_was_left_out() -> None:
    report = _report({("refund", "alice"): "ppp", ("cancel", "bob"): "ff"}, [3])
    result = _check("pass^3>=0.9", RunFigures(report))
    assert result.passed and result.value == pytest.approx(1.0)
    assert "(1 of 2 groups with fewer than 3 runs left out)" in result.message


def test_success_rate_and_flaky_gates_name_worst_groups() -> None:
    report = _report(
        {("a", "p1"): "pppp", ("b", "p2"): "pfpf", ("c", "p3"): "ffff", ("d", "p4"): "pppf"},
        [1],
    )
    rate = _check("success_rate>=90%", RunFigures(report))
    assert not rate.passed and rate.value == pytest.approx(9 / 16)
    assert "worst: p3 / 'c' 0 of 4, p2 / 'b' 2 of 4, p4 / 'd' 3 of 4" in rate.message
    assert "p1" not in rate.message  # at most three groups are named
    flaky = _check("flaky==0", RunFigures(report))
    assert not flaky.passed and flaky.value == 2.0
    assert flaky.message == "flaky==0 failed: measured 2; worst: p2 / 'b' 2 of 4, p4 / 'd' 3 of 4"
    assert _check("flaky<=2", RunFigures(report)).passed


def test_long_inputs_are_cut_in_messages() -> None:
    long_input = "word " * 30
    report = _report({(long_input, ""): "f"}, [1])
    message = _check("success_rate>0.5", RunFigures(report)).message
    assert "- / 'word word" in message and "…' 0 of 1" in message
    assert long_input.strip() not in message


def test_latency_tokens_unscored_and_error_rate_gates() -> None:
    report = _report({("a", "x"): "p"}, [1])
    figures = RunFigures(
        report,
        latencies_ms=[100.0, 200.0, 300.0, 4000.0],
        tokens_per_case=1234.5,
        unscored=3,
        error_rate=0.1,
    )
    results = evaluate_gates(
        [
            parse_gate("avg_latency_ms<2000"),
            parse_gate("p95_latency_ms<2000"),
            parse_gate("tokens_per_case<=1234.5"),
            parse_gate("unscored<=2"),
            parse_gate("error_rate<=10%"),
        ],
        figures,
    )
    assert [r.passed for r in results] == [True, False, True, False, True]
    assert [r.value for r in results] == [1150.0, 4000.0, 1234.5, 3.0, 0.1]
    assert results[1].message == "p95_latency_ms<2000 failed: measured 4000.0"
    assert results[3].message == "unscored<=2 failed: measured 3"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("success_rate>=0", "no counted runs"),
        ("avg_latency_ms>=0", "no counted runs to time"),
        ("p95_latency_ms<=1e9", "no counted runs to time"),
        ("tokens_per_case>=0", "no token counts were reported by the agent"),
        ("error_rate<=1", "no cases to count errors in"),
    ],
)
def test_missing_figures_fail_never_pass(text: str, why: str) -> None:
    result = _check(text, RunFigures(_report({}, [1])))
    assert not result.passed and result.value is None
    assert result.message == f"{text}: not measurable: {why}"


def test_results_keep_gate_order_and_serialize() -> None:
    report = _report({("a", "x"): "ppp"}, [1, 3])
    gates = [parse_gate("flaky==0"), parse_gate("pass^3 >= 80%")]
    results = evaluate_gates(gates, RunFigures(report))
    assert [r.gate for r in results] == gates
    data = results[1].to_json()
    assert data == {
        "gate": "pass^3 >= 80%",
        "metric": "pass^3",
        "op": ">=",
        "threshold": 0.8,
        "value": 1.0,
        "passed": True,
        "message": "pass^3 >= 80%: measured 1",
    }
    json.dumps([r.to_json() for r in results])


def test_gate_built_directly() -> None:
    gate = Gate(text="pass^2>=0.5", metric="pass_hat_k", k=2, op=">=", threshold=0.5)
    report = _report({("a", "x"): "ppf"}, [1])
    result = _check(gate.text, RunFigures(report))
    (direct,) = evaluate_gates([gate], RunFigures(report))
    # pass^2 = C(2,2)/C(3,2) = 1/3.
    assert direct.value == pytest.approx(1 / 3) and not direct.passed
    assert direct == result
