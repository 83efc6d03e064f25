#!/usr/bin/env python3
"""pytest-fluxloop benchmarks: real subprocesses on generated projects, printed as ratios.

Every benchmark writes its own project (``configs/simulation.yaml``, ``configs/input.yaml``,
``configs/project.yaml``, ``inputs/generated.yaml``, ``agent.py``) into a temporary folder,
runs ``sys.executable -m pytest ...`` (or a CLI) in a child process, and times it with
``time.perf_counter()``. The two sides of each comparison run interleaved (A, B, A, B, ...)
in the same invocation; each side is measured ``--repeat`` times (default 3) and the median
is reported.

    python benchmarks/run.py --all                # the four benchmarks (~4.5 min, 2 cores)
    python benchmarks/run.py overhead io          # a subset
    python benchmarks/run.py profile              # cProfile of the 2,000-case run

Only the standard library is used (and the installed package, through its commands).
Benchmark 4 creates ``benchmarks/.cache/fluxloop-cli-venv`` with ``fluxloop-cli==0.2.36``
from PyPI the first time it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
PYCACHE = CACHE / "pycache"
CLI_VENV = CACHE / "fluxloop-cli-venv"
# fluxloop-cli 0.2.36 requires "fluxloop>=0.1.0"; pip resolves it to 0.1.8, pinned here so
# the baseline does not move under us.
CLI_REQUIREMENTS = ("fluxloop-cli==0.2.36", "fluxloop==0.1.8")
PYTEST_FLAGS = ("-p", "no:cacheprovider", "-q")
TIME_BIN = shutil.which("time", path="/usr/bin:/bin")

AGENT_INSTANT = '''\
def run(input_text: str) -> str:
    """Instant agent: echo the input."""
    return input_text
'''
AGENT_SLEEP_SYNC = '''\
import time


def run(input_text: str) -> str:
    """I/O-bound sync agent: 200 ms of waiting."""
    time.sleep(0.2)
    return input_text
'''
AGENT_SLEEP_ASYNC = '''\
import asyncio


async def run(input_text: str) -> str:
    """I/O-bound async agent: 200 ms of waiting."""
    await asyncio.sleep(0.2)
    return input_text
'''
AGENT_DECORATED = '''\
import fluxloop


@fluxloop.agent()
def run(input_text: str) -> str:
    """Instant agent, instrumented as the FluxLoop documents show."""
    return input_text
'''

# Wrapper for machines without /usr/bin/time: a fresh interpreter whose only child is the
# measured command, so RUSAGE_CHILDREN.ru_maxrss is that command's peak RSS (KiB on Linux).
RSS_WRAPPER = """\
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as out:
    out.write(f"Maximum resident set size (kbytes): {peak}\\n")
sys.exit(rc)
"""


class BenchError(RuntimeError):
    """A measured command failed or produced the wrong artifacts."""


# --------------------------------------------------------------------------- environment


def child_env(inherit: bool) -> dict[str, str]:
    """The environment for every measured process.

    Unless ``inherit``: bytecode caching is switched on (this machine sets
    PYTHONDONTWRITEBYTECODE=1, which makes every run recompile every module, including
    pytest's assertion rewriting of installed plugins) with the caches redirected to
    ``benchmarks/.cache/pycache`` so nothing is written outside ``benchmarks/``; and
    PYTEST_ADDOPTS is dropped so a developer's ``-n 4`` does not leak in.
    """
    env = dict(os.environ)
    if not inherit:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONPATH", None)
    return env


def _first(path: str, prefix: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    return "?"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """nproc, CPU, RAM, Python, pytest, plugins and the package's git state."""
    plugins = sorted(
        f"{ep.dist.name if ep.dist else '?'}=={ep.dist.version if ep.dist else '?'}"
        for ep in metadata.entry_points(group="pytest11")
    )
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    dirty = [line for line in _git("status", "--porcelain").splitlines() if line.strip()]
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _first("/proc/cpuinfo", "model name"),
        "ram": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "?",
        "os": platform.platform(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "pytest": _version("pytest"),
        "pytest-fluxloop": _version("pytest-fluxloop"),
        "pytest plugins": ", ".join(dict.fromkeys(plugins)),
        "package git": f"{_git('rev-parse', '--short', 'HEAD') or '?'}"
        + (f" + {len(dirty)} uncommitted paths" if dirty else ""),
        "load average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "peak RSS via": TIME_BIN + " -v" if TIME_BIN else "python -c wrapper (ru_maxrss)",
    }


# --------------------------------------------------------------------------- projects


def case_text(index: int) -> str:
    return f"Customer question {index}: how do I get a refund for order {1000 + index}?"


def write_project(
    root: Path,
    *,
    n_inputs: int,
    iterations: int,
    agent: str,
    parallel_runs: int = 1,
    name: str = "bench",
) -> Path:
    """A FluxLoop project of ``n_inputs × iterations`` cases (personas come per input).

    The layout is the one both ``fluxloop run experiment`` implementations read: the
    sectioned ``configs/`` folder (project.yaml is required by fluxloop-cli 0.2.36) and an
    ``inputs_file`` named in input.yaml (fluxloop-cli refuses to run without one).
    """
    (root / "configs").mkdir(parents=True)
    (root / "inputs").mkdir()
    (root / "configs" / "project.yaml").write_text(f"name: {name}\n")
    (root / "configs" / "simulation.yaml").write_text(
        f"""\
name: {name}
description: pytest-fluxloop benchmark project
iterations: {iterations}
parallel_runs: {parallel_runs}
run_delay_seconds: 0
seed: 42
runner:
  target: "agent:run"
  working_directory: .
  timeout_seconds: 60
  max_retries: 0
output_directory: experiments
save_traces: true
save_aggregated_metrics: true
"""
    )
    (root / "configs" / "input.yaml").write_text(
        """\
personas:
  - name: novice_user
    description: First-time customer, unsure of the terms
  - name: expert_user
    description: Frequent buyer who wants short, exact answers
inputs_file: inputs/generated.yaml
"""
    )
    lines = ["inputs:"]
    for index in range(n_inputs):
        persona = "novice_user" if index % 2 == 0 else "expert_user"
        lines.append(f"  - input: {json.dumps(case_text(index))}")
        lines.append("    metadata:")
        lines.append(f"      persona: {persona}")
    (root / "inputs" / "generated.yaml").write_text("\n".join(lines) + "\n")
    (root / "agent.py").write_text(agent)
    (root / "pytest.ini").write_text("[pytest]\n")  # pins rootdir to the project
    return root


def write_plain_project(root: Path, *, n_inputs: int, iterations: int) -> Path:
    """The same agent and inputs as a plain ``@pytest.mark.parametrize`` test."""
    root.mkdir(parents=True)
    texts = [
        f"{case_text(index)} (iteration {iteration})"
        for iteration in range(iterations)
        for index in range(n_inputs)
    ]
    body = ",\n".join(f"    {json.dumps(text)}" for text in texts)
    (root / "test_plain.py").write_text(
        f"""\
import pytest
from agent import run

TEXTS = [
{body},
]


@pytest.mark.parametrize("text", TEXTS)
def test_agent(text: str) -> None:
    assert run(text) == text
"""
    )
    (root / "agent.py").write_text(AGENT_INSTANT)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    """One measured process."""

    wall_s: float
    log: Path
    maxrss_kb: int | None = None
    span_s: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Runner:
    """Runs commands in child processes with a fixed environment and a log per run."""

    def __init__(self, workdir: Path, env: dict[str, str], verbose: bool) -> None:
        self.workdir = workdir
        self.env = env
        self.verbose = verbose
        self._count = 0

    def run(self, cmd: Sequence[str], cwd: Path, *, memory: bool = False) -> Run:
        self._count += 1
        log = self.workdir / f"run{self._count:03d}.log"
        rss_file = self.workdir / f"run{self._count:03d}.rss"
        full = list(cmd)
        if memory:
            if TIME_BIN:
                full = [TIME_BIN, "-v", "-o", str(rss_file), *full]
            else:
                full = [sys.executable, "-c", RSS_WRAPPER, str(rss_file), *full]
        with log.open("wb") as out:
            t0 = time.perf_counter()
            done = subprocess.run(
                full,
                cwd=cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            wall = time.perf_counter() - t0
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise BenchError(f"exit code {done.returncode}: {' '.join(cmd)}\n--- log tail\n{tail}")
        maxrss = None
        if memory:
            match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", rss_file.read_text())
            if match is None:
                raise BenchError(f"no peak RSS in {rss_file}")
            maxrss = int(match.group(1))
        if self.verbose:
            extra = f", peak RSS {maxrss / 1024:.0f} MiB" if maxrss else ""
            print(f"    {wall:7.2f} s{extra}  {' '.join(cmd[-6:])}  [{cwd.name}]", flush=True)
        return Run(wall_s=wall, log=log, maxrss_kb=maxrss)


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, *PYTEST_FLAGS]


def fluxloop_cmd(config: str = "configs/simulation.yaml") -> list[str]:
    return pytest_cmd("--fluxloop-config", config)


def _exp_dirs(project: Path) -> set[Path]:
    return set((project / "experiments").glob("exp_*"))


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_experiment(
    runner: Runner, project: Path, cmd: Sequence[str], expected: int, *, memory: bool = False
) -> Run:
    """Run a pytest-fluxloop command; check summary.json and record the run's span."""
    before = _exp_dirs(project)
    result = runner.run(cmd, project, memory=memory)
    new = sorted(_exp_dirs(project) - before)
    if len(new) != 1:
        raise BenchError(f"expected one new experiment folder in {project}, got {new}")
    summary = json.loads((new[0] / "summary.json").read_text())
    traces = new[0] / "traces.jsonl"
    if (
        summary.get("status") != "complete"
        or summary.get("total_traces") != expected
        or summary.get("failed") != 0
        or not traces.exists()
    ):
        keys = ("status", "total_traces", "successful", "failed")
        seen = {k: summary.get(k) for k in keys}
        raise BenchError(f"unexpected summary {seen} in {new[0]}")
    result.span_s = (_iso(summary["completed_at"]) - _iso(summary["started_at"])).total_seconds()
    result.info["experiment_dir"] = str(new[0])
    result.info["parallel_warning"] = "parallel_runs" in result.log.read_text(errors="replace")
    return result


def run_plain(runner: Runner, project: Path, expected: int, *, memory: bool = False) -> Run:
    result = runner.run(pytest_cmd("test_plain.py"), project, memory=memory)
    if f"{expected} passed" not in result.log.read_text(errors="replace"):
        raise BenchError(f"plain pytest did not report '{expected} passed' ({result.log})")
    return result


def pytest_session_seconds(log: Path) -> float | None:
    """pytest's own "N passed in X s" (excludes interpreter start-up and plugin import)."""
    match = re.search(r" passed in ([\d.]+)s", log.read_text(errors="replace"))
    return float(match.group(1)) if match else None


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the final table."""

    benchmark: str
    ours: str
    baseline: str
    ratio: float
    ratio_text: str
    target: str
    passed: bool
    verdict: str = ""

    def cells(self) -> list[str]:
        verdict = self.verdict or ("PASS" if self.passed else "FAIL")
        return [self.benchmark, self.ours, self.baseline, self.ratio_text, self.target, verdict]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def fmt_runs(values: Sequence[float], unit: str = "s") -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + f"] {unit}"


# --------------------------------------------------------------------------- benchmarks

OVERHEAD_INPUTS, OVERHEAD_ITERATIONS = 100, 20  # 2,000 cases


def bench_overhead(runner: Runner, tmp: Path, repeat: int, report: Report) -> None:
    """1. 2,000 instant cases via --fluxloop-config vs a plain parametrized test."""
    n = OVERHEAD_INPUTS * OVERHEAD_ITERATIONS
    print(f"\n[1] harness overhead: {n} instant cases, pytest --fluxloop-config vs parametrize")
    ours = write_project(
        tmp / "overhead-fluxloop",
        n_inputs=OVERHEAD_INPUTS,
        iterations=OVERHEAD_ITERATIONS,
        agent=AGENT_INSTANT,
    )
    plain = write_plain_project(
        tmp / "overhead-plain", n_inputs=OVERHEAD_INPUTS, iterations=OVERHEAD_ITERATIONS
    )
    print("  warm-up (bytecode caches)")
    run_experiment(runner, ours, fluxloop_cmd(), n)
    run_plain(runner, plain, n)
    a: list[Run] = []
    b: list[Run] = []
    for _ in range(repeat):
        a.append(run_experiment(runner, ours, fluxloop_cmd(), n))
        b.append(run_plain(runner, plain, n))
    wa, wb = [r.wall_s for r in a], [r.wall_s for r in b]
    sa = [pytest_session_seconds(r.log) or 0.0 for r in a]
    sb = [pytest_session_seconds(r.log) or 0.0 for r in b]
    ratio = median(wa) / median(wb)
    per_case_us = (median(wa) - median(wb)) / n * 1e6
    print(f"  fluxloop : wall {fmt_runs(wa)}  pytest session {fmt_runs(sa)}")
    print(f"  plain    : wall {fmt_runs(wb)}  pytest session {fmt_runs(sb)}")
    print(
        f"  ratio (wall) {ratio:.2f}x; in-session ratio {median(sa) / median(sb):.2f}x; "
        f"extra cost {per_case_us:.0f} us/case"
    )
    verdict = "PASS" if ratio <= 1.2 else ("OVER TARGET (<=1.5)" if ratio <= 1.5 else "FAIL")
    report.rows.append(
        Row(
            f"1 overhead, {n} instant cases (wall)",
            f"{median(wa):.2f} s",
            f"{median(wb):.2f} s plain",
            ratio,
            f"{ratio:.2f}x",
            "<=1.2x (max 1.5x)",
            ratio <= 1.5,
            verdict,
        )
    )
    report.raw["overhead"] = {
        "cases": n,
        "fluxloop_wall_s": wa,
        "plain_wall_s": wb,
        "fluxloop_session_s": sa,
        "plain_session_s": sb,
        "ratio": ratio,
        "extra_us_per_case": per_case_us,
    }


IO_CASES = 100


def bench_io(runner: Runner, tmp: Path, repeat: int, report: Report) -> None:
    """2. 100 cases of a 200 ms agent, parallel_runs N vs 1, on summary.json's span."""
    print(f"\n[2] I/O-bound: {IO_CASES} cases of a 200 ms agent, speed-up on the run's span")
    scheduler = REPO / "pytest_fluxloop" / "engine" / "scheduler.py"
    if not scheduler.exists():
        note = "pytest_fluxloop/engine/scheduler.py is missing: parallel_runs > 1 runs serially"
        print(f"  NOTE: {note}")
        report.notes.append(note)
    variants = {
        ("sync", 1): AGENT_SLEEP_SYNC,
        ("sync", 10): AGENT_SLEEP_SYNC,
        ("async", 1): AGENT_SLEEP_ASYNC,
        ("async", 20): AGENT_SLEEP_ASYNC,
    }
    projects = {
        key: write_project(
            tmp / f"io-{key[0]}-p{key[1]}",
            n_inputs=IO_CASES,
            iterations=1,
            agent=agent,
            parallel_runs=key[1],
        )
        for key, agent in variants.items()
    }
    runs: dict[tuple[str, int], list[Run]] = {key: [] for key in variants}
    for _ in range(repeat):
        for key, project in projects.items():
            runs[key].append(run_experiment(runner, project, fluxloop_cmd(), IO_CASES))
    raw: dict[str, Any] = {}
    for kind, n in (("sync", 10), ("async", 20)):
        serial = [r.span_s or 0.0 for r in runs[(kind, 1)]]
        parallel = [r.span_s or 0.0 for r in runs[(kind, n)]]
        speedup = median(serial) / median(parallel)
        target = 9.0 if kind == "sync" else 18.0
        warned = any(r.info.get("parallel_warning") for r in runs[(kind, n)])
        print(f"  {kind:5s} parallel_runs=1 : span {fmt_runs(serial)}")
        print(f"  {kind:5s} parallel_runs={n:<2d}: span {fmt_runs(parallel)}")
        print(
            f"  {kind:5s} speed-up {speedup:.2f}x (ideal {n}x)"
            + ("  [run printed a parallel_runs warning]" if warned else "")
        )
        report.rows.append(
            Row(
                f"2 I/O {kind}, parallel_runs {n} vs 1 (span)",
                f"{median(parallel):.2f} s",
                f"{median(serial):.2f} s",
                speedup,
                f"{speedup:.2f}x faster",
                f">={target:.0f}x",
                speedup >= target,
            )
        )
        raw[kind] = {
            "parallel_runs": n,
            "serial_span_s": serial,
            "parallel_span_s": parallel,
            "serial_wall_s": [r.wall_s for r in runs[(kind, 1)]],
            "parallel_wall_s": [r.wall_s for r in runs[(kind, n)]],
            "speedup": speedup,
            "parallel_runs_warning": warned,
        }
    report.raw["io"] = raw


SCALE_INPUTS = 200
SCALE_SIZES = (2_000, 20_000)


def bench_scale(runner: Runner, tmp: Path, repeat: int, report: Report) -> None:
    """3. 20,000 and 2,000 instant cases: peak RSS and seconds (plain pytest for reference)."""
    small, large = SCALE_SIZES
    print(f"\n[3] scale: {large} and {small} instant cases, peak RSS of the pytest process")
    ours = {
        n: write_project(
            tmp / f"scale-{n}",
            n_inputs=SCALE_INPUTS,
            iterations=n // SCALE_INPUTS,
            agent=AGENT_INSTANT,
        )
        for n in SCALE_SIZES
    }
    plain = {
        n: write_plain_project(
            tmp / f"scale-plain-{n}", n_inputs=SCALE_INPUTS, iterations=n // SCALE_INPUTS
        )
        for n in SCALE_SIZES
    }
    print("  warm-up (bytecode caches)")
    run_experiment(runner, ours[small], fluxloop_cmd(), small)
    run_plain(runner, plain[small], small)
    mine: dict[int, list[Run]] = {n: [] for n in SCALE_SIZES}
    ref: dict[int, list[Run]] = {n: [] for n in SCALE_SIZES}
    for _ in range(repeat):
        for n in SCALE_SIZES:
            mine[n].append(run_experiment(runner, ours[n], fluxloop_cmd(), n, memory=True))
            shutil.rmtree(ours[n] / "experiments")  # 20k traces are ~60 MB a run
            ref[n].append(run_plain(runner, plain[n], n, memory=True))

    def mib(runs: list[Run]) -> float:
        return median([(r.maxrss_kb or 0) / 1024 for r in runs])

    def secs(runs: list[Run]) -> float:
        return median([r.wall_s for r in runs])

    for label, data in (("fluxloop", mine), ("plain", ref)):
        for n in SCALE_SIZES:
            rss = [(r.maxrss_kb or 0) / 1024 for r in data[n]]
            print(
                f"  {label:8s} {n:6d} cases: wall {fmt_runs([r.wall_s for r in data[n]])}, "
                f"peak RSS {fmt_runs(rss, 'MiB')}"
            )
    growth = mib(mine[large]) / mib(mine[small])
    plain_growth = mib(ref[large]) / mib(ref[small])
    extra_kib = (
        ((mib(mine[large]) - mib(ref[large])) - (mib(mine[small]) - mib(ref[small])))
        * 1024
        / (large - small)
    )
    print(
        f"  RSS growth {large}/{small}: fluxloop {growth:.2f}x, plain pytest {plain_growth:.2f}x;"
        f" fluxloop's own memory per extra case ~{extra_kib:.2f} KiB"
    )
    report.rows.append(
        Row(
            f"3 scale, peak RSS {large // 1000}k vs {small // 1000}k cases",
            f"{mib(mine[large]):.0f} MiB",
            f"{mib(mine[small]):.0f} MiB",
            growth,
            f"{growth:.2f}x (plain pytest {plain_growth:.2f}x)",
            "<2x",
            growth < 2.0,
        )
    )
    time_ratio = secs(mine[large]) / secs(mine[small])
    report.rows.append(
        Row(
            f"3 scale, seconds {large // 1000}k vs {small // 1000}k cases",
            f"{secs(mine[large]):.1f} s",
            f"{secs(mine[small]):.1f} s",
            time_ratio,
            f"{time_ratio:.1f}x (plain pytest {secs(ref[large]) / secs(ref[small]):.1f}x)",
            "info (10x cases)",
            True,
            "info",
        )
    )
    report.raw["scale"] = {
        label: {
            str(n): {
                "wall_s": [r.wall_s for r in data[n]],
                "maxrss_mib": [(r.maxrss_kb or 0) / 1024 for r in data[n]],
            }
            for n in SCALE_SIZES
        }
        for label, data in (("fluxloop", mine), ("plain", ref))
    }
    report.raw["scale"]["rss_growth"] = growth
    report.raw["scale"]["plain_rss_growth"] = plain_growth


CLI_INPUTS, CLI_ITERATIONS = 150, 20  # 3,000 cases


def ensure_cli_venv(env: dict[str, str]) -> Path:
    """``benchmarks/.cache/fluxloop-cli-venv`` with the pinned fluxloop-cli; its script."""
    script = CLI_VENV / "bin" / "fluxloop"
    stamp = CLI_VENV / "bench-requirements.txt"
    wanted = "\n".join(CLI_REQUIREMENTS) + "\n"
    if script.exists() and stamp.exists() and stamp.read_text() == wanted:
        return script
    print(f"  creating {CLI_VENV.relative_to(REPO)} with {' '.join(CLI_REQUIREMENTS)}")
    shutil.rmtree(CLI_VENV, ignore_errors=True)
    CLI_VENV.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run([sys.executable, "-m", "venv", str(CLI_VENV)], env=env).returncode:
        raise BenchError(f"could not create {CLI_VENV}")
    pip = [str(CLI_VENV / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    log = CACHE / "fluxloop-cli-pip.log"
    with log.open("wb") as out:
        done = subprocess.run(
            [*pip, *CLI_REQUIREMENTS], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise BenchError(f"pip install {' '.join(CLI_REQUIREMENTS)} failed; see {log}")
    stamp.write_text(wanted)
    return script


def cli_venv_versions(env: dict[str, str]) -> str:
    code = (
        "from importlib import metadata as m;"
        "print(', '.join(f'{d}=={m.version(d)}' for d in ('fluxloop-cli', 'fluxloop')))"
    )
    python = str(CLI_VENV / "bin" / "python")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    return done.stdout.strip()


def run_their_cli(runner: Runner, script: Path, project: Path, expected: int) -> Run:
    """``fluxloop run experiment --yes`` of fluxloop-cli; check its trace count."""
    before = _exp_dirs(project)
    cmd = [str(script), "run", "experiment", "--config", "configs/simulation.yaml", "--yes"]
    result = runner.run(cmd, project)
    new = sorted(_exp_dirs(project) - before)
    if len(new) != 1:
        raise BenchError(f"fluxloop-cli: expected one new experiment folder, got {new}")
    summary = json.loads((new[0] / "summary.json").read_text())
    results = summary.get("results", {})
    lines = (new[0] / "traces.jsonl").read_text().count("\n")
    if results.get("successful") != expected or lines != expected:
        raise BenchError(f"fluxloop-cli: {results} / {lines} traces in {new[0]}")
    result.span_s = float(results.get("duration_seconds", 0.0))
    return result


def bench_cli(runner: Runner, tmp: Path, repeat: int, report: Report) -> None:
    """4. The same 3,000-case project through fluxloop-cli 0.2.36 and through ours."""
    n = CLI_INPUTS * CLI_ITERATIONS
    print(f"\n[4] vs fluxloop-cli: {n} cases of a @fluxloop.agent() agent, `run experiment --yes`")
    script = ensure_cli_venv(runner.env)
    versions = cli_venv_versions(runner.env)
    print(f"  baseline: {versions} ({script.relative_to(REPO)})")
    ours_cmd = [
        sys.executable,
        "-m",
        "pytest_fluxloop.cli",
        "run",
        "experiment",
        "--config",
        "configs/simulation.yaml",
        "--yes",
    ]
    counter = iter(range(1_000_000))

    def fresh(cases: int) -> Path:
        # A new project per run: fluxloop-cli appends every run's observations to
        # experiments/artifacts/observations.jsonl and rescans that file for every trace,
        # so reusing a project would make each repetition slower than the last.
        iterations = max(1, cases // CLI_INPUTS)
        return write_project(
            tmp / f"cli-{next(counter):02d}",
            n_inputs=min(cases, CLI_INPUTS),
            iterations=iterations,
            agent=AGENT_DECORATED,
        )

    print("  warm-up (bytecode caches), 20 cases each")
    run_their_cli(runner, script, fresh(20), 20)
    run_experiment(runner, fresh(20), ours_cmd, 20)
    theirs: list[Run] = []
    ours: list[Run] = []
    for _ in range(repeat):
        theirs.append(run_their_cli(runner, script, fresh(n), n))
        ours.append(run_experiment(runner, fresh(n), ours_cmd, n))
    wt, wo = [r.wall_s for r in theirs], [r.wall_s for r in ours]
    st, so = [r.span_s or 0.0 for r in theirs], [r.span_s or 0.0 for r in ours]
    speedup = median(wt) / median(wo)
    print(f"  fluxloop-cli 0.2.36: wall {fmt_runs(wt)}, own run duration {fmt_runs(st)}")
    print(f"  pytest-fluxloop    : wall {fmt_runs(wo)}, summary.json span {fmt_runs(so)}")
    print(f"  ours is {speedup:.2f}x faster (wall); {median(st) / median(so):.2f}x on run spans")
    report.rows.append(
        Row(
            f"4 `run experiment --yes`, {n} cases (wall)",
            f"{median(wo):.2f} s",
            f"{median(wt):.2f} s fluxloop-cli",
            speedup,
            f"{speedup:.2f}x faster",
            ">1x (faster)",
            speedup > 1.0,
        )
    )
    report.raw["cli"] = {
        "cases": n,
        "baseline": versions,
        "theirs_wall_s": wt,
        "ours_wall_s": wo,
        "theirs_run_s": st,
        "ours_span_s": so,
        "speedup": speedup,
    }


def profile_overhead(runner: Runner, tmp: Path, top: int) -> None:
    """cProfile of the 2,000-case run (main thread: the agent runs on a worker thread)."""
    n = OVERHEAD_INPUTS * OVERHEAD_ITERATIONS
    project = write_project(
        tmp / "profile",
        n_inputs=OVERHEAD_INPUTS,
        iterations=OVERHEAD_ITERATIONS,
        agent=AGENT_INSTANT,
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / "overhead.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "pytest"]
    cmd += ["--fluxloop-config", "configs/simulation.yaml", *PYTEST_FLAGS]
    run_experiment(runner, project, fluxloop_cmd(), n)  # warm-up
    print(f"\n[profile] cProfile of {n} instant cases -> {out.relative_to(REPO)}")
    run_experiment(runner, project, cmd, n)
    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative")
    print(f"\n  top {top} pytest_fluxloop functions by cumulative time:")
    stats.print_stats(r"pytest_fluxloop", top)
    stats.sort_stats("tottime")
    print(f"\n  top {top} functions by own time (whole process):")
    stats.print_stats(top)


# --------------------------------------------------------------------------- main

BENCHMARKS: dict[str, Callable[[Runner, Path, int, Report], None]] = {
    "overhead": bench_overhead,
    "io": bench_io,
    "scale": bench_scale,
    "cli": bench_cli,
}


def print_table(rows: list[Row]) -> None:
    header = ["benchmark", "ours", "baseline", "ratio", "target", "result"]
    table = [header] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    rule = "-+-".join("-" * w for w in widths)
    print("\n" + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(rule)
    for line in table[1:]:
        print(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


@contextlib.contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """``count`` busy-looping child processes, to measure under CPU contention."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fluxloop-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"\nkept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"any of: {', '.join(BENCHMARKS)}, profile",
    )
    parser.add_argument("--all", action="store_true", help="run the four benchmarks")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--json", type=Path, help="write raw measurements to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument("--top", type=int, default=25, help="rows per profile listing")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines")
    parser.add_argument(
        "--hogs",
        type=int,
        default=0,
        metavar="N",
        help="keep N busy-looping processes running while measuring (CPU contention)",
    )
    parser.add_argument(
        "--inherit-env",
        action="store_true",
        help="run children with this environment as is (no bytecode cache redirection)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benchmarks) - {*BENCHMARKS, "profile"})
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    chosen = list(BENCHMARKS) if args.all else [b for b in args.benchmarks if b != "profile"]
    want_profile = "profile" in (args.benchmarks or [])
    if not chosen and not want_profile:
        parser.error("name a benchmark or pass --all")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    env = child_env(args.inherit_env)
    info = machine_info()
    print("machine:")
    for key, value in info.items():
        print(f"  {key:16s} {value}")
    if not args.inherit_env:
        print(f"  {'bytecode cache':16s} {PYCACHE.relative_to(REPO)} (PYTHONPYCACHEPREFIX)")
    if args.hogs:
        print(f"  {'cpu hogs':16s} {args.hogs} busy-looping processes while measuring")
    report = Report(raw={"machine": info, "repeat": args.repeat, "hogs": args.hogs})
    started = time.perf_counter()
    failed: list[str] = []
    with workspace(args.keep) as tmp, cpu_hogs(args.hogs):
        runner = Runner(tmp, env, verbose=not args.quiet)
        for name in chosen:
            try:
                BENCHMARKS[name](runner, tmp, args.repeat, report)
            except BenchError as exc:
                failed.append(name)
                print(f"\n  ERROR in {name}: {exc}")
        if want_profile:
            profile_overhead(runner, tmp, args.top)
    elapsed = time.perf_counter() - started
    if report.rows:
        print_table(report.rows)
    for note in report.notes:
        print(f"note: {note}")
    print(f"\ntotal {elapsed:.0f} s; medians of {args.repeat} runs per side")
    report.raw["elapsed_s"] = elapsed
    if args.json:
        args.json.write_text(json.dumps(report.raw, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
