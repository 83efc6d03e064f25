"""Data loss and torn files under pytest (issue 8): a full disk stops the run cleanly with
every line whole, and a run killed by its agent leaves a summary that says how far it got;
``--fluxloop-resume`` finishes both with counts that reconcile.

Real pytest subprocesses against real limits: a file-size rlimit, or a real small tmpfs
(skipped where ``mount`` is refused), see ``support/disk_helpers.py``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support.disk_helpers import fsize_command, grow_tmpfs, small_tmpfs
from support.plugin_helpers import Project

from pytest_fluxloop.artifacts.resume import process_alive
from pytest_fluxloop.artifacts.writer import CHECKPOINT_SECONDS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limits and signals"),
]

N = 120
BIG_INPUTS = "generated_inputs:\n" + "".join(f"  - input: 'q{i} {'x' * 1000}'\n" for i in range(N))
AGENT = """\
import fluxloop

@fluxloop.agent()
def run(input_text):
    return input_text
"""


def lines_of(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file, parsed; fails on a torn or glued line."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path.name} ends in a torn line"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def assert_consistent(exp: Path) -> list[str]:
    """All lines parse; each record is in all of its files or in none; one line per case."""
    listed = lines_of(exp / "trace_summary.jsonl")
    traces = lines_of(exp / "traces.jsonl")
    observed = {o["trace_id"] for o in lines_of(exp / "observations.jsonl")}
    assert [t["trace_id"] for t in traces] == [s["trace_id"] for s in listed]
    assert observed == {s["trace_id"] for s in listed}
    case_ids = [s["case_id"] for s in listed]
    assert len(case_ids) == len(set(case_ids))
    return case_ids


@contextmanager
def full_disk(kind: str, project: Project) -> Iterator[tuple[list[str], str, Callable[[], None]]]:
    """The command prefix that runs pytest against a full disk, the OS's reason, and a
    function that frees space (a later plain pytest is not limited)."""
    if kind == "file size limit":
        yield fsize_command(40_000, sys.executable, "-mpytest"), "File too large", lambda: None
        return
    with small_tmpfs(project.root / "experiments", "256k") as mount:
        yield (
            [sys.executable, "-mpytest"],
            "No space left on device",
            lambda: grow_tmpfs(mount, "16m"),
        )


@pytest.mark.parametrize("kind", ["file size limit", "small tmpfs"])
def test_disk_full_stops_cleanly_and_resume_finishes(project: Project, kind: str) -> None:
    project.setup(inputs=BIG_INPUTS, agent=AGENT)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider", "-p", "no:randomly")
    pytester = project.pytester
    with full_disk(kind, project) as (command, reason, free_space):
        basetemp = f"--basetemp={pytester.path / 'basetemp'}"
        first = pytester.run(*command, basetemp, *base, timeout=120)
        output = first.stdout.str() + first.stderr.str()
        assert "INTERNALERROR" not in output and "Traceback" not in output, output
        assert first.ret == pytest.ExitCode.INTERRUPTED, output
        exp = project.only_experiment()
        # One clear message: the file, the cause, the folder and the fix.
        first.stdout.fnmatch_lines(
            [
                "*writing stopped*summary.json counts the * traces on disk*",
                f"*results can't be written, stopping the run: {exp}*: {reason}.*"
                f"--fluxloop-resume {exp}*",
            ]
        )
        assert output.count("results can't be written") == 1
        written = assert_consistent(exp)
        assert 5 < len(written) < N
        summary = project.summary(exp)
        assert (summary["status"], summary["total_traces"]) == ("interrupted", len(written))
        assert summary["successful"] == len(written)
        assert not (exp / ".fluxloop-reserve").exists()

        free_space()
        again = pytester.runpytest_subprocess(*base, "--fluxloop-resume", str(exp))
        again.assert_outcomes(passed=N - len(written), deselected=len(written))
        assert len(assert_consistent(exp)) == N
        summary = project.summary(exp)
        assert (summary["status"], summary["total_traces"], summary["successful"]) == (
            "complete", N, N
        )  # fmt: skip


KILLED_AT = 33
CASE_SECONDS = 0.05
KILLER = f"""\
import os
import time
import fluxloop

CALLS = []

@fluxloop.agent()
def run(input_text):
    CALLS.append(input_text)
    if len(CALLS) == {KILLED_AT} and not os.environ.get("FIXED"):
        os.kill(os.getpid(), 9)  # the agent takes the whole pytest process down
    time.sleep({CASE_SECONDS})
    return input_text
"""


def test_killed_run_leaves_current_counts_and_resume_reconciles(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 40
    inputs = "generated_inputs:\n" + "".join(f"  - input: 'q{i}'\n" for i in range(n))
    project.setup(inputs=inputs, agent=KILLER)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider", "-p", "no:randomly")
    first = project.pytester.runpytest_subprocess(*base)
    assert first.ret == -9
    exp = project.only_experiment()
    written = assert_consistent(exp)
    assert len(written) == KILLED_AT - 1
    summary = project.summary(exp)
    assert summary["status"] == "running"
    # Kept current while records are written: at most CHECKPOINT_SECONDS behind the lines
    # (a slower machine only means fewer records in that time).
    behind = int(CHECKPOINT_SECONDS / CASE_SECONDS) + 1
    assert len(written) - behind <= summary["total_traces"] <= len(written)
    assert summary["total_traces"] > 0
    assert summary["host"] == platform.node()
    assert isinstance(summary["pid"], int) and not process_alive(summary["pid"])

    monkeypatch.setenv("FIXED", "1")
    again = project.pytester.runpytest_subprocess(*base, "--fluxloop-resume", str(exp))
    again.assert_outcomes(passed=n - len(written), deselected=len(written))
    assert len(assert_consistent(exp)) == n
    summary = project.summary(exp)
    assert (summary["status"], summary["total_traces"], summary["successful"]) == (
        "complete", n, n
    )  # fmt: skip
    assert summary["total_cases"] == n


def test_disk_full_before_the_run_even_the_summary_cannot_be_written(project: Project) -> None:
    """The disk was nearly full from the start (no room for the summary's reserve): the last
    summary.json can't be written either. The message says so and how to recover, the exit
    code is not a success, and --fluxloop-resume rewrites the summary once space is freed."""
    project.setup(inputs=BIG_INPUTS, agent=AGENT)
    config = project.root / "configs" / "simulation.yaml"
    # A big config snapshot: a summary of ~20 KB, and no room for its reserve.
    text = config.read_text().replace("plugin test experiment", "d" * 8000)
    config.write_text(text)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider", "-p", "no:randomly")
    pytester = project.pytester
    with small_tmpfs(project.root / "experiments", "512k") as mount:
        ballast = mount / "ballast"
        stat = os.statvfs(mount)
        ballast.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 100 * 1024))
        first = pytester.runpytest_subprocess(*base)
        output = first.stdout.str() + first.stderr.str()
        assert "INTERNALERROR" not in output and "Traceback" not in output, output
        assert first.ret == pytest.ExitCode.INTERRUPTED, output
        exp = project.only_experiment()
        first.stdout.fnmatch_lines(
            [
                f"*could not write {exp}/summary.json: No space left on device. It may still "
                f"say 'running'*Free disk space, then run with --resume {exp} (pytest: "
                "--fluxloop-resume*rewrites summary.json*",
                "*Interrupted: *results can't be written*",
            ]
        )
        written = assert_consistent(exp)
        assert 0 < len(written) < N
        assert project.summary(exp)["status"] == "running"  # the last one that fitted

        ballast.unlink()
        grow_tmpfs(mount, "16m")
        again = pytester.runpytest_subprocess(*base, "--fluxloop-resume", str(exp))
        again.assert_outcomes(passed=N - len(written), deselected=len(written))
        assert len(assert_consistent(exp)) == N
        summary = project.summary(exp)
        assert (summary["status"], summary["total_traces"]) == ("complete", N)
