"""No silent loss (issue "Runs across machines", item 2): at the session's end the controller
compares the cases whose items reported with the records written. Any difference makes the
summary ``incomplete`` with the missing case ids, prints a warning and exits 2 (never 0).

How a record is lost here, without patching pytest-fluxloop: a conftest plugin of the
project under test interferes with the report on its way to the controller, which is where
records were really lost (a remote worker's record arrived under an experiment key the
controller did not know, and was dropped: "3 passed" but "complete: 0 traces").

* under xdist, a ``pytest_report_to_serializable`` wrapper of the *worker* (outermost, so it
  sees the JSON our wrapper produced) drops the record of one case, or re-tags every record
  with a foreign experiment key: what reaches the controller is exactly what a faulty
  channel or a mismatched remote worker would deliver;
* in one process, a ``tryfirst`` ``pytest_runtest_logreport`` drops one report's record
  before the controller sees it (the same loss, without a channel).

The item's report itself still arrives (pytest prints it passed): that is the independent
count the records are checked against. The remaining tests are the no-false-positive side:
plain, xdist, ``-k``, ``-x`` and ``--fluxloop-resume`` runs stay ``complete``/clean.
"""

from __future__ import annotations

import pytest
from support.plugin_helpers import Project

N = 4
INPUTS = "generated_inputs:\n" + "".join(f"  - input: 'q{i}'\n" for i in range(N))
AGENT = """\
import os

def run(input_text):
    if input_text == "q2" and os.environ.get("CRASH_Q2") and not os.environ.get("FIXED"):
        os._exit(9)  # the whole run dies, as on a machine crash
    return input_text
"""

DROP_ONE_IN_TRANSIT = """\
import pytest

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_report_to_serializable(config, report):
    data = yield
    record = (data or {}).get("fluxloop_record")
    if record is not None and record["input"] == "q1":
        del data["fluxloop_record"]  # lost between the worker and the controller
    return data
"""

FOREIGN_KEY_IN_TRANSIT = """\
import pytest

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_report_to_serializable(config, report):
    data = yield
    if data and "fluxloop_record" in data:
        data["fluxloop_experiment"] = "demo@/some/other/host/configs/simulation.yaml"
    return data
"""

DROP_ONE_IN_PROCESS = """\
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    record = getattr(report, "fluxloop_record", None)
    if record is not None and record.input == "q1":
        del report.fluxloop_record
"""

BASE = ("-p", "no:cacheprovider", "-p", "no:randomly")


def _run(project: Project, *args: str) -> pytest.RunResult:
    return project.pytester.runpytest_subprocess("--fluxloop-config", project.config, *BASE, *args)


def _case_ids(project: Project) -> dict[str, str]:
    """Input → case id, from a collect-only run."""
    result = _run(project, "--collect-only", "-q")
    ids = [line.rsplit("[", 1)[1].rstrip("]") for line in result.outlines if "::demo[" in line]
    assert len(ids) == N, result.outlines
    # Case ids begin with the input's index: in00-..., in01-...
    return {f"q{int(case_id[2:4])}": case_id for case_id in ids}


def _assert_clean(project: Project, result: pytest.RunResult, traces: int) -> None:
    output = result.stdout.str()
    assert result.ret == 0, output
    assert "no record in the files" not in output
    summary = project.summary(project.only_experiment())
    assert (summary["status"], summary["total_traces"]) == ("complete", traces)
    assert (summary["missing_cases"], summary["missing_case_ids"]) == (0, [])


# --------------------------------------------------------------------- losses are caught


def test_xdist_record_lost_in_transit_makes_the_run_incomplete(project: Project) -> None:
    pytest.importorskip("xdist")
    project.setup(inputs=INPUTS, agent=AGENT)
    lost = _case_ids(project)["q1"]
    project.write("conftest.py", DROP_ONE_IN_TRANSIT)
    result = _run(project, "-n", "2")
    result.assert_outcomes(passed=N)  # pytest saw every item pass...
    assert result.ret == pytest.ExitCode.INTERRUPTED  # ...but the run is not clean
    exp = project.only_experiment()
    summary = project.summary(exp)
    assert summary["status"] == "incomplete"
    assert (summary["total_traces"], summary["missing_cases"]) == (N - 1, 1)
    assert summary["missing_case_ids"] == [lost]
    assert summary["exit_code"] == 2
    result.stdout.fnmatch_lines(
        [
            "*experiment 'demo' incomplete: 3 traces*",
            f"*1 case(s) of experiment 'demo' reported a result but have no record in the "
            f"files ({lost}): *--resume {exp}*",
        ]
    )
    # The lost case is not in the files, so resuming runs it (and only it) again.
    project.write("conftest.py", "")
    again = _run(project, "--fluxloop-resume", str(exp))
    again.assert_outcomes(passed=1, deselected=N - 1)
    _assert_clean(project, again, N)


def test_xdist_records_under_a_foreign_key_are_not_a_complete_run(project: Project) -> None:
    """The reported remote-worker bug: every item passed, no record was written."""
    pytest.importorskip("xdist")
    project.setup(inputs=INPUTS, agent=AGENT)
    project.write("conftest.py", FOREIGN_KEY_IN_TRANSIT)
    result = _run(project, "-n", "2")
    result.assert_outcomes(passed=N)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    summary = project.summary(project.only_experiment())
    assert (summary["status"], summary["total_traces"]) == ("incomplete", 0)
    assert summary["missing_cases"] == N
    assert sorted(summary["missing_case_ids"]) == sorted(_case_ids(project).values())
    result.stdout.fnmatch_lines([f"*{N} case(s) of experiment 'demo' reported a result*"])


def test_in_process_record_dropped_before_the_controller(project: Project) -> None:
    project.setup(inputs=INPUTS, agent=AGENT)
    lost = _case_ids(project)["q1"]
    project.write("conftest.py", DROP_ONE_IN_PROCESS)
    result = _run(project)
    result.assert_outcomes(passed=N)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    summary = project.summary(project.only_experiment())
    assert (summary["status"], summary["missing_case_ids"]) == ("incomplete", [lost])


# --------------------------------------------------------------------- no false positives


def test_plain_run_stays_complete(project: Project) -> None:
    project.setup(inputs=INPUTS, agent=AGENT)
    _assert_clean(project, _run(project), N)


def test_xdist_run_stays_complete(project: Project) -> None:
    pytest.importorskip("xdist")
    project.setup(inputs=INPUTS, agent=AGENT)
    _assert_clean(project, _run(project, "-n", "2"), N)


def test_deselected_cases_are_not_missing(project: Project) -> None:
    project.setup(inputs=INPUTS, agent=AGENT)
    result = _run(project, "-k", "not in01 and not in03")
    result.assert_outcomes(passed=N - 2, deselected=2)
    _assert_clean(project, result, N - 2)


def test_cases_left_unrun_by_x_are_not_missing(project: Project) -> None:
    agent = "def run(input_text):\n    if input_text == 'q1':\n        raise ValueError('no')\n"
    agent += "    return input_text\n"
    project.setup(inputs=INPUTS, agent=agent)
    result = _run(project, "-x")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    summary = project.summary(project.only_experiment())
    assert (summary["status"], summary["missing_cases"]) == ("interrupted", 0)
    assert "no record in the files" not in result.stdout.str()


def test_a_marker_test_without_a_result_fixture_is_not_missing(project: Project) -> None:
    """A marked test asking only for ``fluxloop_case`` writes no record: nothing to lose."""
    project.setup(inputs=INPUTS, agent=AGENT)
    project.write(
        "test_marked.py",
        f"""
        import pytest

        @pytest.mark.fluxloop(config={project.config!r})
        def test_case_only(fluxloop_case):
            assert fluxloop_case.input
        """,
    )
    result = project.pytester.runpytest_subprocess("test_marked.py", *BASE)
    result.assert_outcomes(passed=N)
    assert result.ret == 0
    assert "no record in the files" not in result.stdout.str()


@pytest.mark.slow
def test_resumed_run_stays_complete(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.setup(inputs=INPUTS, agent=AGENT)
    monkeypatch.setenv("CRASH_Q2", "1")
    first = _run(project)
    assert first.ret not in (0, 1)  # the process died
    exp = project.only_experiment()
    done = len(project.jsonl(exp / "trace_summary.jsonl"))
    monkeypatch.setenv("FIXED", "1")
    again = _run(project, "--fluxloop-resume", str(exp))
    again.assert_outcomes(passed=N - done, deselected=done)
    _assert_clean(project, again, N)


@pytest.mark.slow
def test_resumed_xdist_run_stays_complete(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    project.setup(inputs=INPUTS, agent=AGENT)
    monkeypatch.setenv("CRASH_Q2", "1")
    _run(project)
    exp = project.only_experiment()
    monkeypatch.setenv("FIXED", "1")
    _assert_clean(project, _run(project, "-n", "2", "--fluxloop-resume", str(exp)), N)
