"""--fluxloop-resume: run only what is missing or crashed, and complete the same experiment."""

from __future__ import annotations

import pytest
from support.plugin_helpers import Project

N = 6
INPUTS = "generated_inputs:\n" + "".join(f"  - input: 'q{i}'\n" for i in range(N))
CRASHING_AGENT = """\
import os

def run(input_text):
    if input_text == "q3" and not os.environ.get("FIXED"):
        os._exit(9)  # the whole run dies, as on a machine crash
    if input_text == "q1":
        raise ValueError("a real agent failure: not re-run")
    return input_text
"""


def _crash_then_resume(project: Project, monkeypatch: pytest.MonkeyPatch, *extra: str):
    project.setup(inputs=INPUTS, agent=CRASHING_AGENT)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    first = project.pytester.runpytest_subprocess(*base)
    assert first.ret not in (0, 1)  # the process died
    exp = project.only_experiment()
    assert project.summary(exp)["status"] == "running"  # never finished
    before = project.jsonl(exp / "trace_summary.jsonl")
    monkeypatch.setenv("FIXED", "1")
    second = project.pytester.runpytest_subprocess(*base, "--fluxloop-resume", str(exp), *extra)
    return exp, before, second


@pytest.mark.slow
def test_resume_runs_only_missing_cases(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    exp, before, second = _crash_then_resume(project, monkeypatch)
    done = {line["input"] for line in before}
    assert "q3" not in done and len(done) < N
    failed_before = int("q1" in done)
    second.assert_outcomes(
        passed=N - len(done) - (1 - failed_before), failed=1 - failed_before, deselected=len(done)
    )
    assert project.experiments() == [exp]  # completed in place, no new folder
    summary = project.summary(exp)
    assert summary["status"] == "complete"
    assert (summary["total_traces"], summary["successful"], summary["failed"]) == (N, N - 1, 1)
    assert summary["total_cases"] == N
    lines = project.jsonl(exp / "trace_summary.jsonl")
    assert sorted(line["case_id"] for line in lines) == sorted({line["case_id"] for line in lines})


@pytest.mark.slow
def test_resume_skips_a_torn_last_line(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.setup(inputs=INPUTS, agent=CRASHING_AGENT)
    monkeypatch.setenv("FIXED", "1")
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    project.pytester.runpytest_subprocess(*base)
    exp = project.only_experiment()
    path = exp / "trace_summary.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    again = project.pytester.runpytest_subprocess(*base, "--fluxloop-resume", str(exp))
    again.assert_outcomes(passed=1, deselected=N - 1)
    again.stderr.fnmatch_lines(["*trace_summary.jsonl: removed a truncated last line*"])
    summary = project.summary(exp)
    assert summary["total_traces"] == N
    assert len(project.jsonl(path)) == N  # every line parses: nothing glued onto the torn one


def test_resume_refuses_another_experiment(project: Project, tmp_path_factory) -> None:
    project.setup(inputs=INPUTS, agent="def run(input_text):\n    return input_text\n")
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    project.pytester.runpytest(*base).assert_outcomes(passed=N)
    exp = project.only_experiment()
    other = "generated_inputs:\n  - input: 'something else'\n"
    (project.root / "inputs" / "generated.yaml").write_text(other)
    result = project.pytester.runpytest(*base, "--fluxloop-resume", str(exp))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--fluxloop-resume*doesn't produce*same config*"])
    missing = project.pytester.runpytest(
        *base, "--fluxloop-resume", str(tmp_path_factory.mktemp("x"))
    )
    assert missing.ret == pytest.ExitCode.USAGE_ERROR


def test_retry_on_makes_a_custom_error_transient(project: Project) -> None:
    agent = """\
import pathlib

class FlakyBackendError(Exception):
    pass

def run(input_text):
    marker = pathlib.Path(__file__).with_name("seen-" + input_text)
    if not marker.exists():
        marker.write_text("1")
        raise FlakyBackendError("try again")
    return input_text
"""
    project.setup(inputs="generated_inputs:\n  - input: a\n", agent=agent)
    cfg = project.root / "configs" / "simulation.yaml"
    text = cfg.read_text().replace("max_retries: 0", "max_retries: 2")
    cfg.write_text(text)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    project.pytester.runpytest(*base).assert_outcomes(failed=1)  # not transient by default
    (project.root / "seen-a").unlink()
    cfg.write_text(
        text.replace("max_retries: 2", "max_retries: 2\n  retry_on: [FlakyBackendError]")
    )
    project.pytester.runpytest(*base).assert_outcomes(passed=1)
    traces = project.jsonl(project.experiments()[-1] / "traces.jsonl")
    assert traces[0]["attempts"] == 2


TAIL_N = 40
TAIL_AGENT = """\
import fluxloop

@fluxloop.agent()
def run(input_text):
    return input_text
"""


@pytest.mark.slow
@pytest.mark.parametrize("tail", ["torn", "unfinished"])
def test_resume_repairs_the_tail_of_every_file(project: Project, tail: str) -> None:
    """The run stopped while writing its last record: trace_summary.jsonl (written last)
    doesn't list it, and traces.jsonl ends with half of it (``torn``: a failed or cut write)
    or all of it (``unfinished``: killed between the files). Resume cuts that tail, with a
    warning naming the file, instead of gluing the next record onto it or keeping it twice."""
    inputs = "generated_inputs:\n" + "".join(f"  - input: 'q{i}'\n" for i in range(TAIL_N))
    project.setup(inputs=inputs, agent=TAIL_AGENT)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    project.pytester.runpytest_subprocess(*base).assert_outcomes(passed=TAIL_N)
    exp = project.only_experiment()
    listed = exp / "trace_summary.jsonl"
    listed.write_bytes(b"".join(listed.read_bytes().splitlines(keepends=True)[:-1]))
    traces = exp / "traces.jsonl"
    if tail == "torn":
        lines = traces.read_bytes().splitlines(keepends=True)
        traces.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])

    again = project.pytester.runpytest_subprocess(*base, "--fluxloop-resume", str(exp))
    again.assert_outcomes(passed=1, deselected=TAIL_N - 1)
    summary = project.summary(exp)
    assert (summary["status"], summary["total_traces"]) == ("complete", TAIL_N)
    # The counts are the lines that parse, one per case, in every file.
    parsed = project.jsonl(traces)
    assert len(parsed) == len({t["case_id"] for t in parsed}) == TAIL_N
    assert [t["trace_id"] for t in parsed] == [s["trace_id"] for s in project.jsonl(listed)]
    observed = {o["trace_id"] for o in project.jsonl(exp / "observations.jsonl")}
    assert observed == {t["trace_id"] for t in parsed}
    again.stderr.fnmatch_lines([f"*{traces}: removed*"])
