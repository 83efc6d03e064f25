"""Benchmark 4: ``run experiment --yes`` of fluxloop-cli 0.2.36 against ours.

Creates ``benchmarks/.cache/fluxloop-cli-venv`` with the pinned fluxloop-cli from PyPI the
first time it runs (not under ``--smoke``: there the comparison is skipped when the venv
is not there yet).
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import (
    CACHE,
    REPO,
    Bench,
    BenchError,
    Row,
    Run,
    Runner,
    exp_dirs,
    fmt_runs,
    interleave,
    median,
    run_experiment,
    spans,
    walls,
    write_project,
)

CLI_VENV = CACHE / "fluxloop-cli-venv"
# fluxloop-cli 0.2.36 requires "fluxloop>=0.1.0"; pip resolves it to 0.1.8, pinned here so
# the baseline does not move under us.
CLI_REQUIREMENTS = ("fluxloop-cli==0.2.36", "fluxloop==0.1.8")
CLI_INPUTS, CLI_ITERATIONS = 150, 20  # 3,000 cases
WARM_UP_CASES = 20
SMOKE_CASES = 20

AGENT_DECORATED = '''\
import fluxloop


@fluxloop.agent()
def run(input_text: str) -> str:
    """Instant agent, instrumented as the FluxLoop documents show."""
    return input_text
'''

OURS_CMD = [
    sys.executable,
    "-m",
    "pytest_fluxloop.cli",
    "run",
    "experiment",
    "--config",
    "configs/simulation.yaml",
    "--yes",
]


def _cli_script() -> Path:
    return CLI_VENV / "bin" / "fluxloop"


def _cli_stamp() -> Path:
    return CLI_VENV / "bench-requirements.txt"


def _wanted() -> str:
    return "\n".join(CLI_REQUIREMENTS) + "\n"


def cli_venv_ready() -> bool:
    """True if the pinned fluxloop-cli venv exists (nothing would be installed)."""
    stamp = _cli_stamp()
    return _cli_script().exists() and stamp.exists() and stamp.read_text() == _wanted()


def ensure_cli_venv(env: dict[str, str]) -> Path:
    """``benchmarks/.cache/fluxloop-cli-venv`` with the pinned fluxloop-cli; its script."""
    script = _cli_script()
    if cli_venv_ready():
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
    _cli_stamp().write_text(_wanted())
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
    before = exp_dirs(project)
    cmd = [str(script), "run", "experiment", "--config", "configs/simulation.yaml", "--yes"]
    result = runner.run(cmd, project)
    new = sorted(exp_dirs(project) - before)
    if len(new) != 1:
        raise BenchError(f"fluxloop-cli: expected one new experiment folder, got {new}")
    summary = json.loads((new[0] / "summary.json").read_text())
    results = summary.get("results", {})
    lines = (new[0] / "traces.jsonl").read_text().count("\n")
    if results.get("successful") != expected or lines != expected:
        raise BenchError(f"fluxloop-cli: {results} / {lines} traces in {new[0]}")
    result.span_s = float(results.get("duration_seconds", 0.0))
    return result


def bench_cli(bench: Bench) -> None:
    """4. The same 3,000-case project through fluxloop-cli 0.2.36 and through ours."""
    runner, tmp, report = bench.runner, bench.tmp, bench.report
    n = SMOKE_CASES if bench.smoke else CLI_INPUTS * CLI_ITERATIONS
    print(f"\n[4] vs fluxloop-cli: {n} cases of a @fluxloop.agent() agent, `run experiment --yes`")
    counter = itertools.count()

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

    if bench.smoke and not cli_venv_ready():
        skip_baseline(bench, n, fresh)
        return
    script = ensure_cli_venv(runner.env)
    versions = cli_venv_versions(runner.env)
    print(f"  baseline: {versions} ({script.relative_to(REPO)})")
    if not bench.smoke:
        print(f"  warm-up (bytecode caches), {WARM_UP_CASES} cases each")
        run_their_cli(runner, script, fresh(WARM_UP_CASES), WARM_UP_CASES)
        run_experiment(runner, fresh(WARM_UP_CASES), OURS_CMD, WARM_UP_CASES)
    theirs, ours = interleave(
        bench.repeat,
        lambda: run_their_cli(runner, script, fresh(n), n),
        lambda: run_experiment(runner, fresh(n), OURS_CMD, n),
    )
    wt, wo = walls(theirs), walls(ours)
    st, so = spans(theirs), spans(ours)
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


def skip_baseline(bench: Bench, n: int, fresh: Callable[[int], Path]) -> None:
    """--smoke without the fluxloop-cli venv: run our side only; the row says skipped."""
    note = f"{CLI_VENV.relative_to(REPO)} is not there: the fluxloop-cli side is skipped"
    print(f"  baseline: skipped ({note}; a run without --smoke creates it)")
    (ours,) = interleave(bench.repeat, lambda: run_experiment(bench.runner, fresh(n), OURS_CMD, n))
    wo, so = walls(ours), spans(ours)
    print(f"  pytest-fluxloop    : wall {fmt_runs(wo)}, summary.json span {fmt_runs(so)}")
    bench.report.notes.append(note)
    bench.report.rows.append(
        Row(
            f"4 `run experiment --yes`, {n} cases (wall)",
            f"{median(wo):.2f} s",
            "skipped: no fluxloop-cli venv",
            None,
            "-",
            ">1x (faster)",
            True,
            "SKIPPED",
        )
    )
    bench.report.raw["cli"] = {"cases": n, "baseline": "skipped", "ours_wall_s": wo}
