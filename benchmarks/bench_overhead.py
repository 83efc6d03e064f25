"""Benchmark 1, harness overhead: instant cases via --fluxloop-config vs plain parametrize.

Also ``profile``: cProfile of the same run.
"""

from __future__ import annotations

import pstats
import sys

from harness import (
    AGENT_INSTANT,
    CACHE,
    PYTEST_FLAGS,
    REPO,
    Bench,
    Row,
    fluxloop_cmd,
    fmt_runs,
    interleave,
    median,
    pytest_session_seconds,
    run_experiment,
    run_plain,
    walls,
    write_plain_project,
    write_project,
)

OVERHEAD_INPUTS, OVERHEAD_ITERATIONS = 100, 20  # 2,000 cases
SMOKE_INPUTS, SMOKE_ITERATIONS = 10, 2  # 20 cases


def sizes(smoke: bool) -> tuple[int, int]:
    """(inputs, iterations) of the overhead project."""
    return (SMOKE_INPUTS, SMOKE_ITERATIONS) if smoke else (OVERHEAD_INPUTS, OVERHEAD_ITERATIONS)


def bench_overhead(bench: Bench) -> None:
    """1. 2,000 instant cases via --fluxloop-config vs a plain parametrized test."""
    runner, tmp, report = bench.runner, bench.tmp, bench.report
    inputs, iterations = sizes(bench.smoke)
    n = inputs * iterations
    print(f"\n[1] harness overhead: {n} instant cases, pytest --fluxloop-config vs parametrize")
    ours = write_project(
        tmp / "overhead-fluxloop", n_inputs=inputs, iterations=iterations, agent=AGENT_INSTANT
    )
    plain = write_plain_project(tmp / "overhead-plain", n_inputs=inputs, iterations=iterations)
    if not bench.smoke:
        print("  warm-up (bytecode caches)")
        run_experiment(runner, ours, fluxloop_cmd(), n)
        run_plain(runner, plain, n)
    a, b = interleave(
        bench.repeat,
        lambda: run_experiment(runner, ours, fluxloop_cmd(), n),
        lambda: run_plain(runner, plain, n),
    )
    wa, wb = walls(a), walls(b)
    sa = [pytest_session_seconds(r.log) or 0.0 for r in a]
    sb = [pytest_session_seconds(r.log) or 0.0 for r in b]
    ratio = median(wa) / median(wb)
    per_case_us = (median(wa) - median(wb)) / n * 1e6
    print(f"  fluxloop : wall {fmt_runs(wa)}  pytest session {fmt_runs(sa)}")
    print(f"  plain    : wall {fmt_runs(wb)}  pytest session {fmt_runs(sb)}")
    session_ratio = median(sa) / median(sb) if median(sb) else float("nan")
    print(
        f"  ratio (wall) {ratio:.2f}x; in-session ratio {session_ratio:.2f}x; "
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


def profile(bench: Bench, top: int) -> None:
    """cProfile of the 2,000-case run (main thread: the agent runs on a worker thread)."""
    runner = bench.runner
    inputs, iterations = sizes(bench.smoke)
    n = inputs * iterations
    project = write_project(
        bench.tmp / "profile", n_inputs=inputs, iterations=iterations, agent=AGENT_INSTANT
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / "overhead.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "pytest"]
    cmd += ["--fluxloop-config", "configs/simulation.yaml", *PYTEST_FLAGS]
    if not bench.smoke:
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
