#!/usr/bin/env python3
"""pytest-fluxloop benchmarks: real subprocesses on generated projects, printed as ratios.

Every benchmark writes its own project (``configs/simulation.yaml``, ``configs/input.yaml``,
``configs/project.yaml``, ``inputs/generated.yaml``, ``agent.py``) into a temporary folder,
runs ``sys.executable -m pytest ...`` (or a CLI) in a child process, and times it with
``time.perf_counter()``. The two sides of each comparison run interleaved (A, B, A, B, ...)
in the same invocation; each side is measured ``--repeat`` times (default 3) and the median
is reported.

    python benchmarks/run.py --all                # every benchmark below
    python benchmarks/run.py overhead io          # a subset
    python benchmarks/run.py percase unused scale50k  # per-case cost, unused, 50k cases
    python benchmarks/run.py profile              # cProfile of the 2,000-case run
    python benchmarks/run.py overhead io --smoke  # tiny sizes: do the benchmarks still run?

Only the standard library is used (and the installed package, through its commands).
Benchmark 4 creates ``benchmarks/.cache/fluxloop-cli-venv`` with ``fluxloop-cli==0.2.36``
from PyPI the first time it runs (not with ``--smoke``, which skips that comparison when
the venv is not there). ``percase``, ``unused`` and ``scale50k`` run in
``benchmarks/.cache/bare-venv`` (pytest only) and ``benchmarks/.cache/plugin-venv`` (pytest
and ``pip install -e`` of this repository, core dependencies only), created the same way on
first use (under ``--smoke`` a missing one is replaced by this interpreter).

The harness (projects, timed runs, interleaving, medians, checks, the table, the command
line) is ``harness.py``; each benchmark is a ``bench_*.py`` module.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence

from bench_cli import bench_cli
from bench_io import bench_io
from bench_overhead import bench_overhead, profile
from bench_percase import bench_percase, bench_scale50k
from bench_scale import bench_scale
from bench_unused import bench_unused
from harness import (
    PYCACHE,
    REPO,
    Bench,
    BenchError,
    Report,
    Runner,
    build_parser,
    child_env,
    cpu_hogs,
    machine_info,
    print_table,
    workspace,
)

BENCHMARKS: dict[str, Callable[[Bench], None]] = {
    "overhead": bench_overhead,
    "io": bench_io,
    "scale": bench_scale,
    "cli": bench_cli,
    "percase": bench_percase,
    "unused": bench_unused,
    "scale50k": bench_scale50k,
}
SMOKE_VERDICT = "smoke"  # tiny sizes: the targets do not apply


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(__doc__ or "", list(BENCHMARKS))
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benchmarks) - {*BENCHMARKS, "profile"})
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    chosen = list(BENCHMARKS) if args.all else [b for b in args.benchmarks if b != "profile"]
    want_profile = "profile" in (args.benchmarks or [])
    if not chosen and not want_profile:
        parser.error("name a benchmark or pass --all")
    repeat: int = args.repeat if args.repeat is not None else (1 if args.smoke else 3)
    if repeat < 1:
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
    if args.smoke:
        print(f"  {'smoke':16s} tiny sizes, no warm-up: checks the benchmarks run, not speed")
    report = Report(raw={"machine": info, "repeat": repeat, "hogs": args.hogs, "smoke": args.smoke})
    started = time.perf_counter()
    failed: list[str] = []
    with workspace(args.keep) as tmp, cpu_hogs(args.hogs):
        runner = Runner(tmp, env, verbose=not args.quiet)
        bench = Bench(runner, tmp, repeat, report, smoke=args.smoke)
        for name in chosen:
            try:
                BENCHMARKS[name](bench)
            except BenchError as exc:
                failed.append(name)
                print(f"\n  ERROR in {name}: {exc}")
        if want_profile:
            profile(bench, args.top)
    elapsed = time.perf_counter() - started
    if args.smoke:
        for row in report.rows:
            if row.verdict != "SKIPPED":
                row.verdict = SMOKE_VERDICT
    if report.rows:
        print_table(report.rows)
    for note in report.notes:
        print(f"note: {note}")
    print(f"\ntotal {elapsed:.0f} s; medians of {repeat} runs per side")
    report.raw["elapsed_s"] = elapsed
    if args.json:
        args.json.write_text(json.dumps(report.raw, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
