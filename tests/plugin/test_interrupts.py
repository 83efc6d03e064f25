"""SIGINT / SIGTERM mid-run: exit code 2, completed traces kept, summary says interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.plugin_helpers import Project

# A real pytest subprocess interrupted by a signal: 2-3 s each.
pytestmark = pytest.mark.slow

SLOW_AGENT = """\
import time

def run(input_text):
    if input_text != "fast 0":
        time.sleep(30)
    return "done " + input_text
"""
INPUTS = "generated_inputs:\n" + "".join(f"  - input: 'fast {i}'\n" for i in range(3))


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_keeps_traces(project: Project, signum: int) -> None:
    project.setup(inputs=INPUTS, agent=SLOW_AGENT)
    cfg = project.root / "configs" / "simulation.yaml"
    # seed 5 keeps the canonical order for three cases, so the fast case runs first.
    cfg.write_text(cfg.read_text().replace("seed: 42", "seed: 5"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--fluxloop-config",
            str(cfg),
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        exp_root = project.root / "experiments"

        def one_trace_written() -> bool:
            files = list(exp_root.glob("exp_*/traces.jsonl"))
            return bool(files) and files[0].read_text(encoding="utf-8").count("\n") >= 1

        _wait_for(one_trace_written)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out
    exp: Path = project.only_experiment()
    summary = json.loads((exp / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "interrupted"
    assert summary["exit_code"] == 2
    lines = (exp / "traces.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 1
    assert all(json.loads(line)["trace_id"] for line in lines)  # every line is valid JSON
