"""``--fluxloop-report``: the HTML report written at the end of a pytest run."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.plugin_helpers import Project

RunFn = Callable[..., pytest.RunResult]

AGENT = """\
def run(input_text, persona=None):
    if "crash" in input_text:
        raise ValueError("asked to crash <script>alert(1)</script>")
    return "answer to " + input_text
"""

INPUTS = """\
generated_inputs:
  - input: "Where is my parcel?"
    persona: novice
  - input: "please crash"
    persona: expert
"""


def test_report_lands_in_the_experiment_folder(project: Project, run_experiment: RunFn) -> None:
    project.setup(inputs=INPUTS, agent=AGENT)
    result = run_experiment("--fluxloop-report")
    result.assert_outcomes(passed=1, failed=1)
    report = project.only_experiment() / "report.html"
    result.stdout.fnmatch_lines([f"report: {report}"])
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
    assert "Where is my parcel?" in page and "please crash" in page
    # The agent's error text is data: escaped, never markup.
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_report_goes_where_the_option_says(project: Project, run_experiment: RunFn) -> None:
    project.setup(inputs=INPUTS, agent=AGENT)
    result = run_experiment("--fluxloop-report=out/run.html")
    target = project.root / "out" / "run.html"
    result.stdout.fnmatch_lines([f"report: {target}"])
    assert target.is_file() and not (project.only_experiment() / "report.html").exists()


def test_no_report_unless_asked(project: Project, run_experiment: RunFn) -> None:
    project.setup(inputs=INPUTS, agent=AGENT)
    result = run_experiment()
    assert "report:" not in result.stdout.str()
    assert not (project.only_experiment() / "report.html").exists()
