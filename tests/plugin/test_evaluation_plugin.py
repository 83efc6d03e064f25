"""evaluation.yaml inside a pytest run: verdicts per item, JUnit properties, gates, options.

Rule-based evaluators only (no network): a deterministic agent fails a rule for some
inputs, and exactly those items must fail, with a readable message (docs/evaluation.md).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

import pytest
from support.plugin_helpers import Project

from pytest_fluxloop.errors import FluxloopWarning

RunFn = Callable[..., pytest.RunResult]

INPUTS = """\
generated_inputs:
  - input: "Where is my parcel?"
    persona: novice
  - input: "refuse please"
    persona: expert
  - input: "please crash"
    persona: expert
"""

AGENT = """\
def run(input_text, persona=None, iteration=0):
    if "crash" in input_text:
        raise ValueError("asked to crash")
    if "refuse" in input_text:
        return "I cannot help with that."
    if "flaky" in input_text and iteration == 1:
        return "I cannot say."
    return "Your parcel is on its way."
"""

# Three rules of weight 1: the refusal breaks two of them (score 1/3 < 0.7).
EVALUATION = """\
evaluators:
  - name: answered
    type: rule_based
    rules:
      - check: output_not_empty
      - check: not_contains
        keywords: ["I cannot"]
      - check: contains
        keywords: ["parcel"]
aggregate:
  threshold: 0.7
{extra}
"""

GOOD = "in00-where_is_my_parcel-novice-it0"
REFUSE = "in01-refuse_please-expert-it0"
CRASH = "in02-please_crash-expert-it0"


def _setup(
    project: Project,
    *,
    inputs: str = INPUTS,
    evaluation_extra: str = "",
    iterations: int = 1,
    agent: str = AGENT,
) -> None:
    project.setup(inputs=inputs, agent=agent, iterations=iterations)
    project.write("configs/evaluation.yaml", EVALUATION.format(extra=evaluation_extra))


def _by_case(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["case_id"]: row for row in rows}


def _failure_section(text: str, case_id: str) -> str:
    """The lines pytest printed for one failed item (its header to the next header)."""
    header = rf"_+ fluxloop case {re.escape(case_id)} _+\n"
    match = re.search(header + r"(.*?)(?=\n[_=-]{3,} )", text, re.S)
    assert match, f"no failure section for {case_id}"
    return match.group(1)


# --------------------------------------------------------------------- per-case verdicts


def test_items_failing_a_rule_fail_with_a_readable_message(
    project: Project, run_experiment: RunFn
) -> None:
    _setup(project)
    result = run_experiment("--junitxml", "report.xml")
    result.assert_outcomes(passed=1, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"FluxLoop case {REFUSE} failed evaluation: score 0.33 < threshold 0.7",
            "  input: 'refuse please'",
            "  persona: expert, iteration: 0",
            "  output: 'I cannot help with that.'",
            "  FAIL     answered (rule_based, weight 1): score 0.33 - output contains 'I cannot'*",
            "             - not_contains: output contains 'I cannot'",
            "             - contains: output contains none of ['parcel']",
        ]
    )
    section = _failure_section(result.stdout.str(), REFUSE)
    assert "Traceback" not in section and "pytest_fluxloop" not in section
    assert "EvaluationFailed" not in result.stdout.str()
    failed = [line.split(" - ")[0] for line in result.outlines if line.startswith("FAILED")]
    assert sorted(failed) == [
        f"FAILED configs/simulation.yaml::demo[{case}]" for case in (REFUSE, CRASH)
    ]

    traces = _by_case(project.jsonl(project.only_experiment() / "traces.jsonl"))
    refused = traces[REFUSE]["evaluation"]
    assert (refused["verdict"], refused["threshold"], refused["method"]) == (
        "failed",
        0.7,
        "weighted_sum",
    )
    assert refused["score"] == pytest.approx(1 / 3)
    [answered] = refused["evaluators"]
    assert [r["passed"] for r in answered["rules"]] == [True, False, False]
    assert traces[GOOD]["evaluation"]["verdict"] == "passed"
    assert traces[GOOD]["evaluation"]["score"] == 1.0
    lines = _by_case(project.jsonl(project.only_experiment() / "trace_summary.jsonl"))
    assert lines[REFUSE]["evaluation"]["verdict"] == "failed"
    assert lines[REFUSE]["evaluation"]["evaluators"]["answered"]["status"] == "failed"

    tree = ElementTree.parse(project.root / "report.xml")
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in tree.iter("testcase")
    }
    assert properties[f"demo[{REFUSE}]"] == {
        "fluxloop.verdict": "failed",
        "fluxloop.score": "0.3333",
        "fluxloop.eval.answered": "failed 0.3333",
    }
    assert properties[f"demo[{GOOD}]"] == {
        "fluxloop.verdict": "passed",
        "fluxloop.score": "1.0",
        "fluxloop.eval.answered": "passed 1.0000",
    }
    assert properties[f"demo[{CRASH}]"]["fluxloop.verdict"] == "failed"


def test_an_agent_error_fails_with_the_agent_error_and_verdict_failed(
    project: Project, run_experiment: RunFn
) -> None:
    _setup(project)
    result = run_experiment()
    result.assert_outcomes(passed=1, failed=2)
    section = _failure_section(result.stdout.str(), CRASH)
    assert f"FluxLoop case {CRASH} agent raised: ValueError: asked to crash" in section
    assert "evaluation" not in section
    trace = _by_case(project.jsonl(project.only_experiment() / "traces.jsonl"))[CRASH]
    assert trace["success"] is False
    evaluation = trace["evaluation"]
    assert evaluation["verdict"] == "failed"
    assert "agent did not succeed" in evaluation["reason"]
    summary = project.summary(project.only_experiment())
    assert summary["evaluation"]["verdicts"] == {"passed": 1, "failed": 2}
    assert summary["evaluation"]["error_rate"] == pytest.approx(1 / 3)


def test_a_required_evaluator_fails_the_case_on_its_own(
    project: Project, run_experiment: RunFn
) -> None:
    # "polite" weighs 1 of 4: failing it alone leaves 0.75 >= 0.7, so without
    # success_criteria the refusal would pass. Required, it fails the case.
    evaluation = """\
evaluators:
  - name: nonempty
    type: rule_based
    weight: 3
    rules:
      - check: output_not_empty
  - name: polite
    type: rule_based
    weight: 1
    rules:
      - check: not_contains
        keywords: ["I cannot"]
aggregate:
  threshold: 0.7
"""
    inputs = INPUTS.replace('  - input: "please crash"\n    persona: expert\n', "")
    project.setup(inputs=inputs, agent=AGENT)
    project.write("configs/evaluation.yaml", evaluation)
    run_experiment().assert_outcomes(passed=2)
    refused = _by_case(project.jsonl(project.experiments()[-1] / "traces.jsonl"))[REFUSE]
    assert refused["evaluation"]["verdict"] == "passed"
    assert refused["evaluation"]["score"] == pytest.approx(0.75)

    project.write(
        "configs/evaluation.yaml", evaluation + "success_criteria:\n  quality:\n    polite: true\n"
    )
    shutil.rmtree(project.root / "experiments")
    result = run_experiment()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [f"FluxLoop case {REFUSE} failed evaluation: required evaluator(s) failed: polite"]
    )
    refused = _by_case(project.jsonl(project.only_experiment() / "traces.jsonl"))[REFUSE]
    assert refused["evaluation"]["verdict"] == "failed"
    assert refused["evaluation"]["score"] == pytest.approx(0.75)


def test_filters_personas_leave_other_personas_skipped(
    project: Project, run_experiment: RunFn
) -> None:
    _setup(project, evaluation_extra="advanced:\n  filters:\n    personas: [expert]\n")
    # The novice's trace is not evaluated at all; the expert's still are.
    result = run_experiment()
    result.assert_outcomes(passed=1, failed=2)
    traces = _by_case(project.jsonl(project.only_experiment() / "traces.jsonl"))
    skipped = traces[GOOD]["evaluation"]
    assert skipped["verdict"] == "skipped"
    assert "advanced.filters.personas" in skipped["reason"]
    assert skipped["evaluators"] == []
    assert traces[REFUSE]["evaluation"]["verdict"] == "failed"
    verdicts = project.summary(project.only_experiment())["evaluation"]["verdicts"]
    assert verdicts == {"skipped": 1, "failed": 2}


def test_no_evaluate_runs_the_agent_only(project: Project, run_experiment: RunFn) -> None:
    inputs = INPUTS.replace('  - input: "please crash"\n    persona: expert\n', "")
    _setup(project, inputs=inputs, evaluation_extra='gates: ["success_rate>=2"]\n')
    with pytest.warns(FluxloopWarning, match=r"not evaluated in this run \(--fluxloop-no-eval"):
        result = run_experiment("--fluxloop-no-evaluate", "--fluxloop-gate", "success_rate>=1")
    result.assert_outcomes(passed=2)  # the refusal is not judged
    assert result.ret == pytest.ExitCode.OK  # evaluation.yaml's impossible gate is not applied
    result.stdout.fnmatch_lines(["gate passed: success_rate>=1: measured 1"])
    exp = project.only_experiment()
    assert all(t["evaluation"] is None for t in project.jsonl(exp / "traces.jsonl"))
    assert all(t["evaluation"] is None for t in project.jsonl(exp / "trace_summary.jsonl"))
    evaluation = project.summary(exp)["evaluation"]
    assert evaluation["verdicts"] == {"none": 2}
    assert [g["gate"] for g in evaluation["gates"]] == ["success_rate>=1"]


# --------------------------------------------------------------------------------- gates

SLOW_AGENT = """\
import time

def run(input_text):
    time.sleep(0.03)
    return "Your parcel is on its way."
"""


def test_a_failed_gate_fails_a_session_whose_items_all_passed(
    project: Project, run_experiment: RunFn
) -> None:
    inputs = INPUTS.replace('  - input: "please crash"\n    persona: expert\n', "").replace(
        "refuse please", "parcel please"
    )
    _setup(project, inputs=inputs, agent=SLOW_AGENT, iterations=2)
    result = run_experiment("--fluxloop-gate", "avg_latency_ms<10")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["gate FAILED: avg_latency_ms<10 failed: measured *"])
    exp = project.only_experiment()
    summary = project.summary(exp)
    [gate] = summary["evaluation"]["gates"]
    assert gate["passed"] is False and gate["value"] >= 30
    line = next(x for x in result.outlines if x.startswith("gate FAILED"))
    assert f"measured {gate['value']:.1f}" in line
    assert summary["exit_code"] == 1


def test_a_met_gate_exits_0_and_gates_come_from_the_file_too(
    project: Project, run_experiment: RunFn
) -> None:
    inputs = INPUTS.replace('  - input: "please crash"\n    persona: expert\n', "").replace(
        "refuse please", "parcel please"
    )
    _setup(project, inputs=inputs, iterations=2, evaluation_extra='gates: ["pass^2>=1"]\n')
    result = run_experiment("--fluxloop-gate", "success_rate>=90%")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["gate passed: pass^2>=1: measured 1", "gate passed: success_rate>=90%: measured 1"]
    )
    gates = project.summary(project.only_experiment())["evaluation"]["gates"]
    assert [(g["gate"], g["passed"]) for g in gates] == [
        ("pass^2>=1", True),
        ("success_rate>=90%", True),
    ]


def test_a_gate_without_enough_runs_fails(project: Project, run_experiment: RunFn) -> None:
    inputs = INPUTS.replace('  - input: "please crash"\n    persona: expert\n', "").replace(
        "refuse please", "parcel please"
    )
    _setup(project, inputs=inputs, iterations=2)
    result = run_experiment("--fluxloop-gate", "pass^3>=0.5")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["gate FAILED: pass^3>=0.5: insufficient runs*at least 3*"])


def test_a_bad_gate_is_a_usage_error(project: Project, run_experiment: RunFn) -> None:
    _setup(project)
    result = run_experiment("--fluxloop-gate", "nonsense")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--fluxloop-gate*invalid gate 'nonsense'*"])
    assert project.experiments() == []


def test_an_unknown_check_stops_before_any_item_runs(
    project: Project, run_experiment: RunFn
) -> None:
    _setup(project)
    path = project.root / "configs" / "evaluation.yaml"
    text = path.read_text()
    path.write_text(text.replace("check: contains", "check: contain"))
    line = next(n for n, x in enumerate(path.read_text().splitlines(), 1) if "check: contain" in x)
    result = run_experiment()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*evaluation.yaml:{line}:*unknown check 'contain' (did you mean 'contains'?)*"]
    )
    assert "collected" not in result.stdout.str()
    assert project.experiments() == []


# ------------------------------------------------------------------------- the marker

MARKED = """\
import pytest
from pytest_fluxloop import assert_eval

@pytest.mark.fluxloop(config="configs/simulation.yaml")
def test_verdict(fluxloop_result):
    verdict = fluxloop_result.evaluate()
    assert verdict is fluxloop_result.evaluate()  # once
    assert verdict.verdict in ("passed", "failed")
    assert [e.name for e in verdict.evaluators] == ["answered"]
    if fluxloop_result.input == "refuse please":
        assert verdict.verdict == "failed"
        assert verdict.score == pytest.approx(1 / 3)

@pytest.mark.fluxloop(config="configs/simulation.yaml")
def test_assert(fluxloop_result):
    evaluation = assert_eval(fluxloop_result)
    assert evaluation.verdict == "passed"
"""


def test_marker_evaluate_and_assert_eval(project: Project) -> None:
    inputs = INPUTS.replace('  - input: "please crash"\n    persona: expert\n', "")
    _setup(project, inputs=inputs)
    project.pytester.makepyfile(test_marked=MARKED)
    result = project.pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*test_assert[[]{REFUSE}[]]*",
            f"FluxLoop case {REFUSE} failed evaluation: score 0.33 < threshold 0.7",
            "  input: 'refuse please'",
            "  FAIL     answered (rule_based, weight 1): score 0.33*",
            "             - not_contains: output contains 'I cannot'",
        ]
    )
    section = result.stdout.str().split(f"test_assert[{REFUSE}]", 1)[1]
    section = section.split("--- fluxloop ---", 1)[0]
    assert "Traceback" not in section and "assert_eval" not in section
    traces = project.jsonl(project.only_experiment() / "traces.jsonl")
    assert len(traces) == 4
    for trace in traces:  # the evaluation is written with the trace
        expected = "failed" if trace["input"] == "refuse please" else "passed"
        assert trace["evaluation"]["verdict"] == expected


# ------------------------------------------------------------------- xdist and resume


def _verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        row["case_id"]: (row["evaluation"]["verdict"], row["evaluation"]["score"])
        if row["evaluation"]
        else None
        for row in rows
    }


@pytest.mark.slow
def test_xdist_gives_the_same_verdicts_as_a_serial_run(project: Project) -> None:
    pytest.importorskip("xdist")
    _setup(project, iterations=2)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    serial = project.pytester.runpytest(*base, "--fluxloop-output-dir", "serial")
    serial.assert_outcomes(passed=2, failed=4)
    spread = project.pytester.runpytest(
        *base, "-n", "2", "--fluxloop-output-dir", "spread", "--junitxml", "spread.xml"
    )
    spread.assert_outcomes(passed=2, failed=4)
    one = project.jsonl(project.only_experiment("serial") / "trace_summary.jsonl")
    two = project.jsonl(project.only_experiment("spread") / "trace_summary.jsonl")
    assert len(one) == len(two) == 6
    assert _verdicts(one) == _verdicts(two)
    assert sorted(v[0] for v in _verdicts(one).values()) == ["failed"] * 4 + ["passed"] * 2
    block_one = project.summary(project.only_experiment("serial"))["evaluation"]
    block_two = project.summary(project.only_experiment("spread"))["evaluation"]
    assert block_one["verdicts"] == block_two["verdicts"]
    assert block_one["reliability"]["overall"] == block_two["reliability"]["overall"]
    # The JUnit properties travel from the workers too.
    tree = ElementTree.parse(project.root / "spread.xml")
    verdicts = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}.get(
            "fluxloop.verdict"
        )
        for case in tree.iter("testcase")
    }
    assert verdicts[f"demo[{REFUSE}]"] == "failed"
    assert verdicts[f"demo[{GOOD}]"] == "passed"


RESUME_INPUTS = """\
generated_inputs:
  - input: "parcel"
    persona: a
  - input: "flaky parcel"
    persona: b
  - input: "refuse"
    persona: c
"""

# Dies (as on a machine crash) on its fourth call of the first session.
RESUME_AGENT = """\
import os, pathlib

def run(input_text, persona=None, iteration=0):
    calls = pathlib.Path(__file__).with_name("calls")
    count = int(calls.read_text()) + 1 if calls.exists() else 1
    calls.write_text(str(count))
    if count == 4 and not os.environ.get("FIXED"):
        os._exit(9)
""" + AGENT.split(":\n", 1)[1]


@pytest.mark.slow
def test_resume_keeps_the_reliability_counts_of_both_sessions(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup(project, inputs=RESUME_INPUTS, agent=RESUME_AGENT, iterations=3)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    first = project.pytester.runpytest_subprocess(*base)
    assert first.ret not in (0, 1)  # the process died
    exp = project.only_experiment()
    done = project.jsonl(exp / "trace_summary.jsonl")
    assert len(done) == 3
    assert all(line["evaluation"] is not None for line in done)
    monkeypatch.setenv("FIXED", "1")
    second = project.pytester.runpytest_subprocess(*base, "--fluxloop-resume", str(exp))
    failed_before = sum(line["evaluation"]["verdict"] == "failed" for line in done)
    # 9 cases: "refuse" fails 3 times, "flaky parcel" once (iteration 1).
    second.assert_outcomes(passed=5 - (3 - failed_before), failed=4 - failed_before, deselected=3)
    summary = project.summary(exp)
    assert summary["status"] == "complete"
    evaluation = summary["evaluation"]
    assert evaluation["verdicts"] == {"passed": 5, "failed": 4}
    groups = {g["input"]: (g["n"], g["c"], g["flaky"]) for g in evaluation["reliability"]["groups"]}
    assert groups == {
        "parcel": (3, 3, False),
        "flaky parcel": (3, 2, True),
        "refuse": (3, 0, False),
    }
    overall = evaluation["reliability"]["overall"]
    assert (overall["runs"], overall["passes"], overall["flaky_groups"]) == (9, 5, 1)
    # pass^3 = mean(1, 0, 0); pass@3 = mean(1, 1, 0)
    assert overall["pass_hat_k"]["3"] == pytest.approx(1 / 3)
    assert overall["pass_at_k"]["3"] == pytest.approx(2 / 3)
