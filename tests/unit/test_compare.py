"""``compare_experiments``: two hand-written experiment folders, every figure worked out here.

Each folder is written as a run leaves it (``summary.json``, ``metadata.json``,
``trace_summary.jsonl`` with one line per case); the expected deltas, pass^k values and
latency percentiles are computed by hand in each test, never copied from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_fluxloop.artifacts.reader import ExperimentFolder
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.report.compare import (
    COMPARE_FORMAT,
    TOLERANCE_KEYS,
    Comparison,
    Tolerance,
    ToleranceError,
    compare_experiments,
    parse_tolerance,
)
from pytest_fluxloop.report.compare_text import FOLDED, TOP

Q1, Q2, Q3 = "How do I get a refund?", "When are you open?", "Where is my parcel?"


def line(
    text: str,
    persona: str | None,
    iteration: int,
    verdict: str | None = "passed",
    *,
    success: bool = True,
    status: str = "success",
    duration: float | None = 100.0,
    tokens: Any = None,
    index: int = 0,
    case_id: str | None = None,
) -> dict[str, Any]:
    """One ``trace_summary.jsonl`` line (``tokens``: the agent's total, or a raw usage)."""
    usage = tokens if isinstance(tokens, dict) or tokens is None else None
    if isinstance(tokens, int | float):
        usage = {"agent": {"input_tokens": 1, "output_tokens": 1, "total_tokens": tokens}}
    slug = "_".join(text.lower().strip("?").split())
    return {
        "trace_id": f"t-{index}-{slug}-{persona}-{iteration}",
        "case_id": case_id or f"in{index:02d}-{slug}-{persona or 'none'}-it{iteration}",
        "iteration": iteration,
        "persona": persona,
        "input": text,
        "output": "an answer",
        "duration_ms": duration,
        "success": success,
        "status": status,
        "token_usage": usage,
        "error_kind": None if success else "agent",
        "evaluation": None if verdict is None else {"verdict": verdict, "score": 1.0},
    }


def write_run(
    path: Path,
    lines: list[dict[str, Any]],
    *,
    name: str = "support_bot",
    summary: bool = True,
    status: str = "complete",
) -> ExperimentFolder:
    """An experiment folder at ``path`` with these lines; ``summary=False``: an old or dead
    run with only its lines."""
    path.mkdir(parents=True)
    body = "".join(json.dumps(item) + "\n" for item in lines)
    (path / "trace_summary.jsonl").write_text(body, encoding="utf-8")
    if summary:
        data = {
            "experiment_name": name,
            "status": status,
            "total_traces": len(lines),
            "config_snapshot": {"simulation": {"name": name, "iterations": 3}},
        }
        (path / "summary.json").write_text(json.dumps(data), encoding="utf-8")
        meta = {"experiment_name": name, "artifact_format": 1}
        (path / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return ExperimentFolder.open(path)


def compare(
    tmp_path: Path,
    base: list[dict[str, Any]],
    new: list[dict[str, Any]],
    tolerance: Tolerance | None = None,
    **kwargs: Any,
) -> Comparison:
    base_kw = {k[5:]: v for k, v in kwargs.items() if k.startswith("base_")}
    new_kw = {k[4:]: v for k, v in kwargs.items() if k.startswith("new_")}
    return compare_experiments(
        write_run(tmp_path / "exp_base", base, **base_kw),
        write_run(tmp_path / "exp_new", new, **new_kw),
        tolerance,
    )


def group(result: Comparison, text: str, persona: str) -> dict[str, Any]:
    (found,) = [g for g in result.groups if (g["input"], g["persona"]) == (text, persona)]
    return found


def outcomes(text: str, persona: str, verdicts: str, **kwargs: Any) -> list[dict[str, Any]]:
    """One line per iteration; ``verdicts`` like ``"PFP"`` (pass, fail, pass)."""
    durations = kwargs.pop("durations", None)
    tokens = kwargs.pop("tokens", None)
    return [
        line(
            text,
            persona,
            i,
            "passed" if v == "P" else "failed",
            duration=durations[i] if durations else 100.0,
            tokens=tokens[i] if tokens else None,
            **kwargs,
        )
        for i, v in enumerate(verdicts)
    ]


# ------------------------------------------------------------------ the scenario by hand

# base: Q1/novice passes 3 of 3, Q2/expert passes 2 of 3 (flaky)
# new:  Q1/novice passes 1 of 3, Q2/expert passes 3 of 3
BASE = outcomes(Q1, "novice", "PPP", durations=[100, 200, 300], tokens=[10, 20, 30]) + outcomes(
    Q2, "expert", "PFP", durations=[10, 20, 30], index=1
)
NEW = outcomes(Q1, "novice", "PFF", durations=[150, 250, 450], tokens=[20, 20, 20]) + outcomes(
    Q2, "expert", "PPP", durations=[10, 20, 30], index=1
)


def test_overall_figures_and_their_changes(tmp_path: Path) -> None:
    result = compare(tmp_path, BASE, NEW)
    overall = result.overall
    assert result.k == 3
    # pass rate: 5 of 6 -> 4 of 6
    assert overall["pass_rate"]["base"] == pytest.approx(5 / 6)
    assert overall["pass_rate"]["new"] == pytest.approx(4 / 6)
    assert overall["pass_rate"]["delta"] == pytest.approx(-1 / 6)
    # pass^3 per group: base 1 and 0 (2 of 3), new 0 and 1: mean 0.5 both
    assert overall["pass_hat_k"]["base"] == pytest.approx(0.5)
    assert overall["pass_hat_k"]["delta"] == pytest.approx(0.0)
    # pass^1: mean of the groups' rates: (1 + 2/3) / 2 -> (1/3 + 1) / 2
    assert overall["pass_hat_1"]["base"] == pytest.approx(5 / 6)
    assert overall["pass_hat_1"]["new"] == pytest.approx(2 / 3)
    # p95 by nearest rank of 6 values is the largest: 300 -> 450 (+50 %)
    assert overall["latency_p95_ms"]["base"] == 300
    assert overall["latency_p95_ms"]["new"] == 450
    assert overall["latency_p95_ms"]["relative"] == pytest.approx(0.5)
    assert overall["latency_mean_ms"]["base"] == pytest.approx(660 / 6)
    assert overall["latency_mean_ms"]["new"] == pytest.approx(910 / 6)
    # tokens: only Q1 reports them: mean 20 -> 20; Q2's unknown counts are no zeros
    assert overall["tokens_mean"] == {"base": 20, "new": 20, "delta": 0, "relative": 0}
    assert overall["flaky_groups"] == {"base": 1, "new": 1, "delta": 0}
    assert overall["cases"] == {"base": 6, "new": 6, "delta": 0}


def test_group_figures(tmp_path: Path) -> None:
    result = compare(tmp_path, BASE, NEW)
    refund = group(result, Q1, "novice")
    assert refund["status"] == "compared"
    assert refund["base"]["n"] == refund["new"]["n"] == 3
    assert refund["changes"]["pass_rate"]["delta"] == pytest.approx(-2 / 3)
    assert refund["changes"]["pass_hat_k"] == {"base": 1.0, "new": 0.0, "delta": -1.0}
    assert refund["changes"]["pass_hat_1"]["new"] == pytest.approx(1 / 3)
    assert refund["changes"]["latency_p95_ms"]["relative"] == pytest.approx(0.5)
    assert refund["changes"]["latency_mean_ms"]["base"] == pytest.approx(200)
    assert refund["changes"]["tokens_mean"]["base"] == pytest.approx(20)
    assert refund["newly_flaky"] and not refund["no_longer_flaky"]
    hours = group(result, Q2, "expert")
    assert hours["changes"]["pass_rate"]["delta"] == pytest.approx(1 / 3)
    assert hours["no_longer_flaky"] and not hours["newly_flaky"]
    assert hours["base"]["tokens_mean"] is None and hours["new"]["tokens_mean"] is None
    assert hours["changes"]["tokens_mean"]["delta"] is None
    # The biggest change first: Q1 moved by 1.0 (pass^3), Q2 by 1/3.
    assert [g["input"] for g in result.groups] == [Q1, Q2]


def test_case_diff(tmp_path: Path) -> None:
    result = compare(tmp_path, BASE, NEW)
    failing = result.cases["newly_failing"]
    assert [(c["input"], c["persona"], c["iteration"]) for c in failing] == [
        (Q1, "novice", 1),
        (Q1, "novice", 2),
    ]
    assert failing[0]["case_id"] == "in00-how_do_i_get_a_refund-novice-it1"
    assert "base_case_id" not in failing[0]
    passing = result.cases["newly_passing"]
    assert [(c["input"], c["iteration"]) for c in passing] == [(Q2, 1)]
    assert result.cases["still_failing"] == []


def test_default_tolerance_breaches(tmp_path: Path) -> None:
    result = compare(tmp_path, BASE, NEW)
    assert result.regressed
    by_check = {r.check: r for r in result.regressions}
    assert set(by_check) == {"pass_rate", "latency", "new_failures"}
    assert by_check["pass_rate"].change == pytest.approx(-1 / 6)
    assert by_check["pass_rate"].allowed == 0.0
    assert "83.3% to 66.7%" in by_check["pass_rate"].message
    assert by_check["latency"].change == pytest.approx(0.5)
    assert "300 ms to 450 ms" in by_check["latency"].message
    assert by_check["new_failures"].new == 2
    assert result.unchecked == []


def test_a_looser_tolerance_passes(tmp_path: Path) -> None:
    tolerance = parse_tolerance("pass_rate=0.2, latency=0.5, new_failures=2")
    result = compare(tmp_path, BASE, NEW, tolerance)
    assert result.regressions == []
    assert not result.regressed
    assert "✅" in result.to_markdown().splitlines()[0]


def test_same_run_against_itself(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "exp_a", BASE)
    result = compare_experiments(folder, folder)
    assert not result.regressed
    assert all(f["delta"] in (0, None) for f in result.overall.values())
    assert result.cases["newly_failing"] == result.cases["newly_passing"] == []
    assert len(result.cases["still_failing"]) == 1
    assert result.warnings == []


# ------------------------------------------------------------------ tolerances


def test_parse_tolerance_values() -> None:
    assert parse_tolerance("") == Tolerance()
    tol = parse_tolerance("pass_rate=0.05,latency=50%,tokens=off,new_failures=2")
    assert tol == Tolerance(
        pass_rate_drop=0.05, latency_increase=0.5, tokens_increase=None, new_failures=2
    )
    # Repeated --tolerance options, field names and pass^k are read too.
    tol = parse_tolerance(["pass^k=0.1", "latency_floor_ms=0", "tokens_increase=1e-1"])
    assert (tol.pass_hat_k_drop, tol.latency_floor_ms, tol.tokens_increase) == (0.1, 0.0, 0.1)
    assert set(Tolerance().to_json()) == set(TOLERANCE_KEYS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latncy=0.5", "unknown key 'latncy' (did you mean 'latency'?); valid keys: pass_rate"),
        ("speed=1", "unknown key 'speed'; valid keys: pass_rate, pass_hat_k, latency"),
        ("latency", "'latency' has no value"),
        ("latency=", "'latency' has no value"),
        ("latency=0.1,latency=0.2", "'latency' is given twice"),
        ("latency=fast", "latency='fast': give a number (0.05 or 5%) at least 0, or 'off'"),
        ("pass_rate=-0.1", "pass_rate='-0.1'"),
        ("new_failures=1.5", "new_failures='1.5': give a whole number"),
        ("latency_floor_ms=5%", "give milliseconds"),
        ("tokens=inf", "tokens='inf'"),
    ],
)
def test_parse_tolerance_errors(text: str, expected: str) -> None:
    with pytest.raises(ToleranceError) as info:
        parse_tolerance(text)
    assert expected in str(info.value)
    assert isinstance(info.value, ConfigError)  # the CLI shows it and exits 4


def rates(passes: int, runs: int, text: str = Q1) -> list[dict[str, Any]]:
    return outcomes(text, "novice", "P" * passes + "F" * (runs - passes))


def test_a_drop_of_exactly_the_tolerance_is_within_it(tmp_path: Path) -> None:
    base, new = rates(4, 4), rates(3, 4)  # 100 % -> 75 %: a drop of 0.25
    within = parse_tolerance("pass_rate=0.25,pass_hat_k=off,new_failures=off")
    assert not compare(tmp_path / "a", base, new, within).regressed
    beyond = parse_tolerance("pass_rate=0.24,pass_hat_k=off,new_failures=off")
    (regression,) = compare(tmp_path / "b", base, new, beyond).regressions
    assert regression.check == "pass_rate"
    assert regression.change == pytest.approx(-0.25)


def test_pass_hat_k_drop(tmp_path: Path) -> None:
    # pass^4 of 4 of 4 is 1, of 3 of 4 is 0: a drop of 1
    tolerance = parse_tolerance("pass_rate=1,new_failures=off")
    (regression,) = compare(tmp_path, rates(4, 4), rates(3, 4), tolerance).regressions
    assert regression.check == "pass_hat_k"
    assert regression.base == 1.0 and regression.new == 0.0
    assert regression.message.startswith("pass^4 fell from 100.0% to 0.0%")


def test_latency_floor(tmp_path: Path) -> None:
    # 1 ms -> 3 ms is +200 %, but 2 ms is scheduler noise under the default 10 ms floor.
    base = outcomes(Q1, "novice", "PPP", durations=[1, 1, 1])
    new = outcomes(Q1, "novice", "PPP", durations=[3, 3, 3])
    assert not compare(tmp_path / "a", base, new).regressed
    strict = parse_tolerance("latency_floor_ms=0")
    (regression,) = compare(tmp_path / "b", base, new, strict).regressions
    assert regression.check == "latency"
    assert regression.change == pytest.approx(2.0)
    off = parse_tolerance("latency_floor_ms=0,latency=off")
    assert not compare(tmp_path / "c", base, new, off).regressed


def test_tokens_rise(tmp_path: Path) -> None:
    base = outcomes(Q1, "novice", "PP", tokens=[100, 100])
    new = outcomes(Q1, "novice", "PP", tokens=[120, 140])  # mean 130: +30 %
    (regression,) = compare(tmp_path / "a", base, new).regressions
    assert regression.check == "tokens"
    assert regression.change == pytest.approx(0.3)
    assert "100 to 130 (+30.0%" in regression.message
    assert not compare(tmp_path / "b", base, new, parse_tolerance("tokens=0.3")).regressed


def test_unknown_tokens_are_never_zero(tmp_path: Path) -> None:
    base = outcomes(Q1, "novice", "PP", tokens=[100, 100])
    # No usage, an empty agent usage, and no agent role: unknown, not 0 tokens.
    new = [
        line(Q1, "novice", 0, tokens=None),
        line(Q1, "novice", 1, tokens={"agent": {}}),
    ]
    result = compare(tmp_path / "a", base, new)
    assert result.overall["tokens_mean"] == {
        "base": 100,
        "new": None,
        "delta": None,
        "relative": None,
    }
    assert group(result, Q1, "novice")["new"]["tokens_mean"] is None
    assert not result.regressed
    assert result.unchecked == ["tokens: mean agent tokens unknown in the new run (not reported)"]
    # A reported 0 is known: a rise from 0 has no ratio, and says so.
    zero = outcomes(Q1, "novice", "PP", tokens=[0, 0])
    result = compare(tmp_path / "b", zero, base)
    assert result.overall["tokens_mean"]["base"] == 0
    assert result.unchecked == ["tokens: mean agent tokens is 0 in the base run (no ratio)"]


# ------------------------------------------------------------------ what is compared


def test_added_and_removed_groups(tmp_path: Path) -> None:
    base = rates(2, 2, Q1) + outcomes(Q2, "novice", "PF", index=1)
    new = rates(2, 2, Q1) + outcomes(Q3, "novice", "FF", index=1)
    result = compare(tmp_path, base, new)
    data = result.to_json()
    assert data["added_groups"] == [{"input": Q3, "persona": "novice"}]
    assert data["removed_groups"] == [{"input": Q2, "persona": "novice"}]
    assert group(result, Q3, "novice")["base"] is None
    assert group(result, Q2, "novice")["new"] is None
    # Cases of an input only in one run are neither newly failing nor passing.
    assert result.cases["newly_failing"] == []
    assert result.warnings == []
    md = result.to_markdown()
    assert "Only in the new run: 1 input × persona groups" in md
    assert "Only in the base run: 1 input × persona groups" in md


def test_cases_match_by_input_not_by_position(tmp_path: Path) -> None:
    # A new input was put first: every case id of the old ones moved from in00 to in01.
    base = outcomes(Q1, "novice", "PP")
    new = outcomes(Q3, "novice", "PP") + outcomes(Q1, "novice", "PF", index=1)
    result = compare(tmp_path, base, new)
    (failing,) = result.cases["newly_failing"]
    assert failing["case_id"] == "in01-how_do_i_get_a_refund-novice-it1"
    assert failing["base_case_id"] == "in00-how_do_i_get_a_refund-novice-it1"


def test_one_input_twice_under_a_persona(tmp_path: Path) -> None:
    # Two entries of the inputs file with the same text: one group, cases paired in order.
    base = outcomes(Q1, "novice", "P") + outcomes(Q1, "novice", "F", index=1)
    new = outcomes(Q1, "novice", "F") + outcomes(Q1, "novice", "F", index=1)
    result = compare(tmp_path, base, new)
    assert group(result, Q1, "novice")["base"]["n"] == 2
    assert [c["case_id"][:4] for c in result.cases["newly_failing"]] == ["in00"]
    assert [c["case_id"][:4] for c in result.cases["still_failing"]] == ["in01"]


def test_excluded_cases_are_not_failures(tmp_path: Path) -> None:
    base = outcomes(Q1, "novice", "PPP")
    crashed = line(Q1, "novice", 2, None, success=False, status="crashed")
    crashed["error_kind"] = "infrastructure"
    new = [*outcomes(Q1, "novice", "PP"), crashed]
    result = compare(tmp_path, base, new)
    assert result.cases["newly_failing"] == []
    assert group(result, Q1, "novice")["new"]["n"] == 2
    assert group(result, Q1, "novice")["new"]["excluded"] == 1
    assert result.overall["excluded"] == {"base": 0, "new": 1, "delta": 1}
    assert not any(r.check == "pass_rate" for r in result.regressions)
    assert any("left out 1 case(s)" in w for w in result.warnings)


def test_agent_errors_are_failures(tmp_path: Path) -> None:
    base = outcomes(Q1, "novice", "P")
    new = [line(Q1, "novice", 0, None, success=False, status="error")]
    result = compare(tmp_path, base, new)
    assert len(result.cases["newly_failing"]) == 1


def test_k_is_the_iterations_both_runs_have(tmp_path: Path) -> None:
    result = compare(tmp_path, rates(3, 3), rates(2, 2))
    assert result.k == 2
    assert result.overall["pass_hat_k"] == {"base": 1.0, "new": 1.0, "delta": 0.0}
    assert any("base ran 3 iteration(s), new 2: pass^k uses k=2" in w for w in result.warnings)
    assert "pass^2" in result.to_table()


def test_different_experiments_are_compared_with_a_warning(tmp_path: Path) -> None:
    result = compare(
        tmp_path,
        rates(1, 1, Q1),
        rates(1, 1, Q2),
        base_name="support_bot",
        new_name="sales_bot",
    )
    assert any("different experiments: base is 'support_bot'" in w for w in result.warnings)
    assert any("no input × persona in common" in w for w in result.warnings)
    assert result.overall["pass_rate"]["delta"] == 0.0  # still compared
    md = result.to_markdown()
    assert "> ⚠️ different experiments" in md
    assert "WARNING: different experiments" in result.to_table()


def test_an_unfinished_run_and_a_folder_without_summary(tmp_path: Path) -> None:
    result = compare(
        tmp_path, rates(2, 2), rates(2, 2), base_summary=False, new_status="interrupted"
    )
    assert result.base["experiment"] is None and result.base["status"] is None
    assert result.warnings == [f"the new run is interrupted, not complete ({tmp_path / 'exp_new'})"]
    assert result.overall["pass_rate"]["base"] == 1.0  # figured from the lines


def test_an_empty_run(tmp_path: Path) -> None:
    result = compare(tmp_path, rates(2, 2), [])
    assert any("the new run has no cases" in w for w in result.warnings)
    assert result.overall["pass_rate"]["new"] is None
    assert "pass_rate: pass rate unknown in a run (no counted case)" in result.unchecked
    assert not result.regressed


# ------------------------------------------------------------------ the views


def test_json_form(tmp_path: Path) -> None:
    data = compare(tmp_path, BASE, NEW).to_json()
    json.dumps(data, allow_nan=False)  # plain and JSON-safe
    assert data["format"] == COMPARE_FORMAT
    assert set(data) == {
        "format",
        "base",
        "new",
        "k",
        "tolerance",
        "regressed",
        "regressions",
        "unchecked",
        "warnings",
        "overall",
        "cases",
        "newly_flaky",
        "added_groups",
        "removed_groups",
        "groups",
    }
    assert data["base"]["folder"] == "exp_base"
    assert data["base"]["experiment"] == "support_bot"
    assert data["base"]["cases"] == 6 and data["base"]["iterations"] == 3
    assert data["regressed"] is True
    assert {r["check"] for r in data["regressions"]} == {"pass_rate", "latency", "new_failures"}
    assert set(data["regressions"][0]) == {"check", "base", "new", "change", "allowed", "message"}
    assert data["overall"]["pass_rate"]["delta"] == round(-1 / 6, 6)
    assert data["newly_flaky"] == [{"input": Q1, "persona": "novice"}]
    assert set(data["cases"]) == {"newly_failing", "newly_passing", "still_failing"}
    first = data["groups"][0]
    assert set(first) >= {"input", "persona", "status", "base", "new", "changes", "newly_flaky"}
    assert data["tolerance"]["latency"] == 0.2


def test_markdown_comment(tmp_path: Path) -> None:
    md = compare(tmp_path, BASE, NEW).to_markdown()
    lines = md.splitlines()
    assert lines[0] == "## ❌ FluxLoop compare: 3 regressions beyond tolerance"
    assert "base `exp_base (6 cases)` → new `exp_new (6 cases)` · pass^k with k = 3" in md
    assert "- ❌ pass rate fell from 83.3% to 66.7% (-16.7 pts; allowed drop 0.0 pts)" in md
    assert "| pass rate | 83.3% | 66.7% | -16.7 pts | ❌ |" in md
    assert "| pass^3 | 50.0% | 50.0% | +0.0 pts |  |" in md
    assert "| p95 latency | 300 ms | 450 ms | +50.0% | ❌ |" in md
    assert "### Newly failing cases (2)" in md
    assert "`in00-how_do_i_get_a_refund-novice-it2`" in md
    assert "### Newly flaky (1)" in md
    assert "<details><summary>Newly passing cases (1)</summary>" in md
    assert "### Biggest changes by input × persona (2 of 2)" in md
    assert "| novice | How do I get a refund? | 100.0% → 33.3% (-66.7 pts) |" in md
    assert "newly flaky" in md and "no longer flaky" in md
    assert "Tolerance: pass\\_rate=0.0" in md


def test_markdown_escapes_inputs_and_cuts_long_lists(tmp_path: Path) -> None:
    nasty = "Is a | b <script>alert(1)</script> **bold**?"
    texts = [f"question {i:02d}" for i in range(TOP + 5)] + [nasty]
    base = [line(t, "novice", 0, index=i) for i, t in enumerate(texts)]
    new = [line(t, "novice", 0, "failed", index=i) for i, t in enumerate(texts)]
    md = compare(tmp_path, base, new).to_markdown()
    assert "<script>" not in md
    assert "Is a \\| b &lt;script&gt;alert(1)&lt;/script&gt; \\*\\*bold\\*\\*?" in md
    failing = len(texts)
    assert f"### Newly failing cases ({failing})" in md
    assert f"… and {failing - TOP} more (`fluxloop compare --format json`)." in md
    # TOP case ids shown: the nasty one (sorted first) escaped, not as code, the rest as code.
    assert md.count("`in") == TOP - 1
    assert "| in25-is\\_a\\_\\|\\_b\\_&lt;script&gt;" in md
    assert f"<details><summary>The other {failing - TOP} input × persona groups</summary>" in md
    assert md.count("<details>") == md.count("</details>")


def test_markdown_folds_at_most_folded_rows(tmp_path: Path) -> None:
    texts = [f"question {i:03d}" for i in range(FOLDED + TOP + 10)]
    lines = [line(t, "novice", 0, index=i) for i, t in enumerate(texts)]
    md = compare(tmp_path, lines, lines).to_markdown()
    assert md.splitlines()[0] == "## ✅ FluxLoop compare: no regression beyond tolerance"
    assert "No input × persona changed its pass rate or flakiness." in md
    assert f"The other {len(texts)} input × persona groups" in md
    assert f"… and {len(texts) - FOLDED} more (`--format json`)." in md
    assert md.count("| novice | question") == FOLDED
    assert len(md) < 65536


def test_terminal_table(tmp_path: Path) -> None:
    text = compare(tmp_path, BASE, NEW).to_table()
    lines = text.splitlines()
    assert lines[0] == "FluxLoop compare: REGRESSED, 3 regressions beyond tolerance"
    assert "  - pass rate fell from 83.3% to 66.7% (-16.7 pts; allowed drop 0.0 pts)" in lines
    rows = {line.split()[0]: line for line in lines if line.startswith("  pass")}
    assert rows["pass"].rstrip().endswith("REGRESSION")  # "pass rate" row
    assert "newly failing (2):" in lines
    # The columns of a table line up: each header cell starts where its values start.
    start = lines.index("newly failing (2):") + 1
    header, first = lines[start], lines[start + 1]
    assert header.index("input") == first.index(Q1)
    assert "nan" not in text.lower().split()
