"""Benchmark 3, scale: 20,000 vs 2,000 instant cases, peak RSS and seconds."""

from __future__ import annotations

import shutil

from harness import (
    AGENT_INSTANT,
    Bench,
    Row,
    Run,
    fluxloop_cmd,
    fmt_runs,
    interleave,
    kcases,
    median,
    run_experiment,
    run_plain,
    walls,
    write_plain_project,
    write_project,
)

SCALE_INPUTS = 200
SCALE_SIZES = (2_000, 20_000)
SMOKE_INPUTS = 10
SMOKE_SIZES = (20, 200)


def bench_scale(bench: Bench) -> None:
    """3. 20,000 and 2,000 instant cases: peak RSS and seconds (plain pytest for reference)."""
    runner, tmp, report = bench.runner, bench.tmp, bench.report
    inputs = SMOKE_INPUTS if bench.smoke else SCALE_INPUTS
    sizes = SMOKE_SIZES if bench.smoke else SCALE_SIZES
    small, large = sizes
    print(f"\n[3] scale: {large} and {small} instant cases, peak RSS of the pytest process")
    ours = {
        n: write_project(
            tmp / f"scale-{n}", n_inputs=inputs, iterations=n // inputs, agent=AGENT_INSTANT
        )
        for n in sizes
    }
    plain = {
        n: write_plain_project(tmp / f"scale-plain-{n}", n_inputs=inputs, iterations=n // inputs)
        for n in sizes
    }
    if not bench.smoke:
        print("  warm-up (bytecode caches)")
        run_experiment(runner, ours[small], fluxloop_cmd(), small)
        run_plain(runner, plain[small], small)

    def measure_ours(n: int) -> Run:
        run = run_experiment(runner, ours[n], fluxloop_cmd(), n, memory=True)
        shutil.rmtree(ours[n] / "experiments")  # 20k traces are ~60 MB a run
        return run

    def measure_plain(n: int) -> Run:
        return run_plain(runner, plain[n], n, memory=True)

    # Per round: ours small, plain small, ours large, plain large.
    measured = interleave(
        bench.repeat,
        *(
            side
            for n in sizes
            for side in (lambda n=n: measure_ours(n), lambda n=n: measure_plain(n))
        ),
    )
    mine = {n: measured[2 * i] for i, n in enumerate(sizes)}
    ref = {n: measured[2 * i + 1] for i, n in enumerate(sizes)}

    def mib(runs: list[Run]) -> float:
        return median([(r.maxrss_kb or 0) / 1024 for r in runs])

    def secs(runs: list[Run]) -> float:
        return median(walls(runs))

    for label, data in (("fluxloop", mine), ("plain", ref)):
        for n in sizes:
            rss = [(r.maxrss_kb or 0) / 1024 for r in data[n]]
            print(
                f"  {label:8s} {n:6d} cases: wall {fmt_runs(walls(data[n]))}, "
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
            f"3 scale, peak RSS {kcases(large)} vs {kcases(small)} cases",
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
            f"3 scale, seconds {kcases(large)} vs {kcases(small)} cases",
            f"{secs(mine[large]):.1f} s",
            f"{secs(mine[small]):.1f} s",
            time_ratio,
            f"{time_ratio:.1f}x (plain pytest {secs(ref[large]) / secs(ref[small]):.1f}x)",
            f"info ({large // small}x cases)",
            True,
            "info",
        )
    )
    report.raw["scale"] = {
        label: {
            str(n): {
                "wall_s": walls(data[n]),
                "maxrss_mib": [(r.maxrss_kb or 0) / 1024 for r in data[n]],
            }
            for n in sizes
        }
        for label, data in (("fluxloop", mine), ("plain", ref))
    }
    report.raw["scale"]["rss_growth"] = growth
    report.raw["scale"]["plain_rss_growth"] = plain_growth
