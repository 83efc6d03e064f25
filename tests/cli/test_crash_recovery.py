"""``fluxloop run experiment`` after data loss (issue 8): a full disk is a message, not a
traceback; a run that died is reported by the next run, with how to finish it.

Real CLI subprocesses: a real file-size rlimit (``support/disk_helpers.py``) and a real
SIGKILL of the process by its agent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli_helpers import CLI_COMMAND, CLI_TIMEOUT_S, clean_env, describe, run_cli
from support.disk_helpers import fsize_command

from pytest_fluxloop.cli.scaffold import scaffold_project

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limits and signals"),
]


def _project(tmp_path: Path, inputs: list[str], agent: str) -> Path:
    project_dir = scaffold_project(tmp_path / "fluxloop", "demo").project_dir
    lines = "".join(f"  - input: {json.dumps(text)}\n" for text in inputs)
    (project_dir / "inputs" / "generated.yaml").write_text("generated_inputs:\n" + lines)
    (project_dir / "agent.py").write_text(agent)
    return project_dir


def _lines(path: Path) -> list[dict[str, object]]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path.name} ends in a torn line"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def test_disk_full_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    n = 120
    project_dir = _project(
        tmp_path, [f"q{i} " + "x" * 1000 for i in range(n)], "def run(input_text):\n    return 1\n"
    )
    proc = subprocess.run(
        fsize_command(40_000, *CLI_COMMAND, "run", "experiment", "--yes"),
        cwd=project_dir,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, describe(proc)
    assert "Traceback" not in output and "INTERNALERROR" not in output, describe(proc)
    [exp] = sorted((project_dir / "experiments").glob("exp_*"))
    assert f"results can't be written, stopping the run: {exp}" in proc.stdout
    assert "File too large" in proc.stdout and f"--resume {exp}" in proc.stdout
    written = _lines(exp / "trace_summary.jsonl")
    assert len(_lines(exp / "traces.jsonl")) == len(written) > 0
    assert f"[INFO] Experiment interrupted: {len(written)} total of {n} selected" in proc.stdout
    summary = json.loads((exp / "summary.json").read_text())
    assert (summary["status"], summary["total_traces"]) == ("interrupted", len(written))


KILLER = """\
import os

CALLS = []

def run(input_text):
    CALLS.append(input_text)
    if len(CALLS) == 20 and not os.environ.get("FIXED"):
        os.kill(os.getpid(), 9)
    return input_text
"""


def test_a_dead_run_is_reported_and_resume_finishes_it(tmp_path: Path) -> None:
    n = 30
    project_dir = _project(tmp_path, [f"q{i}" for i in range(n)], KILLER)
    killed = run_cli("run", "experiment", "--yes", cwd=project_dir)
    assert killed.returncode == -9, describe(killed)
    [exp] = sorted((project_dir / "experiments").glob("exp_*"))
    assert json.loads((exp / "summary.json").read_text())["status"] == "running"
    folder = exp.relative_to(project_dir)

    fixed = {"FIXED": "1"}
    later = run_cli("run", "experiment", "--yes", cwd=project_dir, env=fixed)
    assert later.returncode == 0, describe(later)
    warning = next(line for line in later.stdout.splitlines() if "did not finish" in line)
    assert warning.startswith(f"[WARN] An earlier run did not finish: {folder} ")
    assert warning.endswith(f"run this command again with --resume {folder}")
    assert "[INFO] Experiment complete" in later.stdout  # a warning: this run still ran

    resumed = run_cli("run", "experiment", "--yes", "--resume", folder, cwd=project_dir, env=fixed)
    assert resumed.returncode == 0, describe(resumed)
    assert "did not finish" not in resumed.stdout  # the one being resumed is not "dead"
    assert f"[INFO] Experiment complete: {n} total" in resumed.stdout
    summary = json.loads((exp / "summary.json").read_text())
    assert (summary["status"], summary["total_traces"], summary["successful"]) == (
        "complete", n, n
    )  # fmt: skip
    listed = _lines(exp / "trace_summary.jsonl")
    assert len(listed) == len({line["case_id"] for line in listed}) == n
    assert len(_lines(exp / "traces.jsonl")) == n

    after = run_cli("run", "experiment", "--yes", "--", "--co", "-q", cwd=project_dir, env=fixed)
    assert "did not finish" not in after.stdout, describe(after)
