"""The benchmarks still run: ``benchmarks/run.py overhead io --smoke`` as a real process.

Tiny sizes and one run per side, so it checks the harness and the generated projects (every
run's artifacts are verified by the script), not speed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "benchmarks" / "run.py"

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    """This environment without the outer pytest's (xdist worker, addopts) variables."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST"))
    }


def smoke_table(*args: str) -> tuple[str, list[str], dict[str, list[str]]]:
    """Run ``benchmarks/run.py ARGS --smoke --quiet``; its output, the table's header cells
    and its rows by name (after checking it finished without a benchmark error)."""
    proc = subprocess.run(
        [sys.executable, str(RUN), *args, "--smoke", "--quiet"],
        cwd=REPO,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,  # hang guard; each takes ~15 s on 2 busy cores
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "ERROR in" not in out
    lines = out.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("benchmark ")), None)
    assert header is not None, out
    rows = {
        cells[0]: cells
        for line in lines[header + 2 :]
        if "|" in line
        for cells in [[cell.strip() for cell in line.split("|")]]
    }
    return out, [cell.strip() for cell in lines[header].split("|")], rows


def test_benchmarks_smoke_run_prints_the_table() -> None:
    out, header, rows = smoke_table("overhead", "io")
    assert header == [
        "benchmark",
        "ours",
        "baseline",
        "ratio",
        "target",
        "result",
    ]
    assert set(rows) == {
        "1 overhead, 20 instant cases (wall)",
        "2 I/O sync, parallel_runs 10 vs 1 (span)",
        "2 I/O async, parallel_runs 20 vs 1 (span)",
    }, out
    for name, cells in rows.items():
        assert re.fullmatch(r"\d+\.\d+ s", cells[1]), (name, cells)
        assert re.fullmatch(r"\d+\.\d+x( faster)?", cells[3]), (name, cells)
        assert cells[5] == "smoke", (name, cells)
    assert re.search(r"medians of 1 runs per side", out), out


def test_report_benchmark_smoke_run() -> None:
    # benchmarks/report.py: 300 synthetic cases, the report, and (where Chromium is there)
    # the page loaded; it checks the pieces still fit together, not speed.
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "report.py"), "--smoke"],
        cwd=REPO,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,  # hang guard; ~10 s here
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"fluxloop report\s+\d+\.\d+ s", out), out
    assert re.search(r"report\.html\s+\d+(\.\d+)? [KM]B", out), out
    assert "(smoke: the numbers mean nothing)" in out


def test_cassettes_benchmark_smoke_run() -> None:
    # benchmarks/cassettes.py: 3 conversations live (off, record) and replayed; the script
    # itself fails unless the replay made 0 LLM calls and every call was recorded/replayed.
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cassettes.py"), "--smoke", "--quiet"],
        cwd=REPO,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,  # hang guard; ~13 s here
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "ERROR" not in out
    for side, calls in (("off", 18), ("record", 18), ("replay", 0)):
        assert re.search(rf"^  {side} +\d+\.\d+ s +\d+\.\d+ s +{calls}  ", out, re.M), out
    assert re.search(r"live \(record\) / replay: \d+\.\dx", out), out
    assert "replay made 0 LLM calls (target 0); live made 18 (3 x 6)" in out
    assert "(smoke: the numbers mean nothing)" in out


def test_percase_unused_scale50k_benchmarks_smoke_run() -> None:
    # benchmarks/bench_percase.py and bench_unused.py at tiny sizes, in the bare/plugin venvs
    # when they exist (this interpreter otherwise): every run's artifacts are checked by the
    # script; here only that it finished and printed every row.
    out, _, rows = smoke_table("percase", "unused", "scale50k")
    marginal = "marginal/case"
    assert set(rows) == {
        f"percase pytest --fluxloop-config, {marginal} (vs bare venv)",
        f"percase pytest --fluxloop-config, {marginal} (vs plugin venv)",
        f"percase fluxloop run experiment, {marginal} (vs bare venv)",
        f"percase fluxloop run experiment, {marginal} (vs plugin venv)",
        "unused, 20 plain tests, plugin loaded vs -p no:fluxloop (wall)",
        "unused, 40 plain tests, plugin loaded vs -p no:fluxloop (wall)",
        "unused start-up, 1 test --co, plugin loaded vs -p no:fluxloop",
        "scale50k wall, 200 cases",
        "scale50k peak RSS, 200 cases",
        "scale50k plugin memory per case at 200",
    }, out
    for name, cells in rows.items():
        assert re.match(r"-?\d+(\.\d+)? (ms|s|MiB|KiB)\b", cells[1]), (name, cells)
        assert cells[5] == "smoke", (name, cells)
    assert re.search(r"medians of 1 runs per side", out), out
