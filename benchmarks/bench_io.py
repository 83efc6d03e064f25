"""Benchmark 2, I/O-bound agents: parallel_runs N vs 1, on the run's own span."""

from __future__ import annotations

from typing import Any

from harness import (
    REPO,
    Bench,
    Row,
    Run,
    fluxloop_cmd,
    fmt_runs,
    interleave,
    median,
    run_experiment,
    spans,
    walls,
    write_project,
)

IO_CASES = 100
IO_SLEEP_S = 0.2
SMOKE_CASES = 20
SMOKE_SLEEP_S = 0.05
# (agent kind, parallel_runs, speed-up target)
PARALLEL = (("sync", 10, 9.0), ("async", 20, 18.0))

AGENT_SLEEP_SYNC = '''\
import time


def run(input_text: str) -> str:
    """I/O-bound sync agent: {ms} ms of waiting."""
    time.sleep({seconds})
    return input_text
'''
AGENT_SLEEP_ASYNC = '''\
import asyncio


async def run(input_text: str) -> str:
    """I/O-bound async agent: {ms} ms of waiting."""
    await asyncio.sleep({seconds})
    return input_text
'''


def agent_source(kind: str, seconds: float) -> str:
    template = AGENT_SLEEP_SYNC if kind == "sync" else AGENT_SLEEP_ASYNC
    return template.format(ms=round(seconds * 1000), seconds=seconds)


def bench_io(bench: Bench) -> None:
    """2. 100 cases of a 200 ms agent, parallel_runs N vs 1, on summary.json's span."""
    runner, tmp, report = bench.runner, bench.tmp, bench.report
    cases = SMOKE_CASES if bench.smoke else IO_CASES
    sleep_s = SMOKE_SLEEP_S if bench.smoke else IO_SLEEP_S
    ms = round(sleep_s * 1000)
    print(f"\n[2] I/O-bound: {cases} cases of a {ms} ms agent, speed-up on the run's span")
    scheduler = REPO / "pytest_fluxloop" / "engine" / "scheduler.py"
    if not scheduler.exists():
        note = "pytest_fluxloop/engine/scheduler.py is missing: parallel_runs > 1 runs serially"
        print(f"  NOTE: {note}")
        report.notes.append(note)
    keys = [(kind, p) for kind, n, _ in PARALLEL for p in (1, n)]
    projects = {
        key: write_project(
            tmp / f"io-{key[0]}-p{key[1]}",
            n_inputs=cases,
            iterations=1,
            agent=agent_source(key[0], sleep_s),
            parallel_runs=key[1],
        )
        for key in keys
    }

    def measure(key: tuple[str, int]) -> Run:
        return run_experiment(runner, projects[key], fluxloop_cmd(), cases)

    measured = interleave(bench.repeat, *(lambda key=key: measure(key) for key in keys))
    runs = dict(zip(keys, measured, strict=True))
    raw: dict[str, Any] = {}
    for kind, n, target in PARALLEL:
        serial = spans(runs[(kind, 1)])
        parallel = spans(runs[(kind, n)])
        speedup = median(serial) / median(parallel)
        warned = any(r.info.get("parallel_warning") for r in runs[(kind, n)])
        print(f"  {kind:5s} parallel_runs=1 : span {fmt_runs(serial)}")
        print(f"  {kind:5s} parallel_runs={n:<2d}: span {fmt_runs(parallel)}")
        print(
            f"  {kind:5s} speed-up {speedup:.2f}x (ideal {min(n, cases)}x)"
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
            "serial_wall_s": walls(runs[(kind, 1)]),
            "parallel_wall_s": walls(runs[(kind, n)]),
            "speedup": speedup,
            "parallel_runs_warning": warned,
        }
    report.raw["io"] = raw
