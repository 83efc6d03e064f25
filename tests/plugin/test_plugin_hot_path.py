"""What the per-case hot path changed, seen from pytest (pytester subprocesses).

* A suite with no experiment and no fluxloop marker gets none of the per-report hooks.
* An experiment's passed setup/teardown reports are not kept by the terminal reporter (the
  call reports, and any report with captured output, are).
* The collected objects are frozen out of the cycle collector during the run and given
  back at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.plugin_helpers import Project

RunFn = Callable[..., pytest.RunResult]

# Prints what the session kept: our plugins, the terminal reporter's stats, the freeze.
PROBE = """
import gc

import pytest


def pytest_configure(config):
    config._probe_freeze = []


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item):
    item.config._probe_freeze.append(gc.get_freeze_count())


def pytest_terminal_summary(terminalreporter, config):
    manager = config.pluginmanager
    stats = terminalreporter.stats
    blank = [(r.when, r.nodeid) for r in stats.get("", [])]
    print("PROBE reports-plugin", manager.has_plugin("fluxloop-reports"))
    print("PROBE progress-plugin", manager.has_plugin("fluxloop-progress"))
    print("PROBE passed", len(stats.get("passed", [])))
    print("PROBE blank", len([b for b in blank if ".yaml::" in b[1]]), len(blank))
    print("PROBE frozen-during-run", min(config._probe_freeze or [0]) > 0)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    print("PROBE frozen-after", gc.get_freeze_count())
"""


def probe(result: pytest.RunResult) -> dict[str, str]:
    return {
        line.split()[1]: " ".join(line.split()[2:])
        for line in result.outlines
        if line.startswith("PROBE ")
    }


def test_a_suite_without_fluxloop_gets_no_per_report_hooks(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PROBE)
    pytester.makepyfile(
        test_plain="""
        import pytest

        @pytest.mark.parametrize("n", range(5))
        def test_n(n):
            assert n < 5
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=5)
    seen = probe(result)
    assert seen["reports-plugin"] == "False"
    assert seen["progress-plugin"] == "False"
    assert seen["frozen-during-run"] == "False"
    assert seen["blank"] == "0 10"  # plain tests' setup/teardown reports are untouched


def test_an_experiment_keeps_call_reports_and_drops_passed_setup_teardown(
    project: Project, run_experiment: RunFn
) -> None:
    project.setup(iterations=2)
    project.pytester.makeconftest(PROBE)
    result = run_experiment("-s")
    result.assert_outcomes(passed=4, failed=2)
    seen = probe(result)
    assert seen["reports-plugin"] == "True"
    assert seen["passed"] == "4"
    # Setup and teardown of all 6 items passed with nothing captured: none is kept.
    assert seen["blank"] == "0 0"
    assert seen["frozen-during-run"] == "True"
    assert seen["frozen-after"] == "0"
    exp = project.only_experiment()
    assert len(project.jsonl(exp / "trace_summary.jsonl")) == 6


def test_a_marker_test_turns_the_report_hooks_on_when_it_runs(pytester: pytest.Pytester) -> None:
    project = Project(pytester).setup()
    pytester.makeconftest(PROBE)
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.fluxloop(config="configs/simulation.yaml", allow_errors=True)
        def test_case(fluxloop_result):
            assert fluxloop_result.input
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "test_marked.py")
    result.assert_outcomes(passed=3)
    assert probe(result)["reports-plugin"] == "True"
    # The marker's records reached the controller through the report hooks.
    exp = project.only_experiment()
    assert len(project.jsonl(exp / "trace_summary.jsonl")) == 3
