"""Per-case cost: ``percase`` (marginal wall per case) and ``scale50k`` (50,000 cases).

Both run in the venvs of :func:`harness.ensure_venv` (``benchmarks/.cache/bare-venv``: only
pytest; ``benchmarks/.cache/plugin-venv``: pytest and this package with its core
dependencies), so the dev venv's extra pytest plugins do not blur the numbers.

``percase``: the cost of one more case, start-up excluded: (median wall at 2,000 cases -
median wall at 200) / 1,800, for plain pytest (bare venv, and plugin venv with the plugin
installed but unused), ``pytest --fluxloop-config`` and ``fluxloop run experiment``.

``scale50k``: wall and peak RSS of 50,000 instant cases through ``pytest --fluxloop-config``,
and the plugin's own memory per case: ((fluxloop 20k - plain 20k) - (fluxloop 2k - plain
2k)) / 18,000, peak RSS of the same venv.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import (
    AGENT_OK,
    OK_EXPECTED,
    PYTEST_FLAGS,
    Bench,
    Row,
    Run,
    ensure_venv,
    fluxloop_cmd,
    fluxloop_script,
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

PERCASE_INPUTS, PERCASE_SIZES = 100, (200, 2_000)
PERCASE_SMOKE_INPUTS, PERCASE_SMOKE_SIZES = 10, (10, 20)
PERCASE_MIN_ROUNDS = 7

SCALE_INPUTS, SCALE_CASES, MEMORY_SIZES = 200, 50_000, (2_000, 20_000)
SCALE_SMOKE_INPUTS, SCALE_SMOKE_CASES, MEMORY_SMOKE_SIZES = 10, 200, (20, 200)
WALL_TARGET_S = 30.0
RSS_TARGET_BYTES = 300_000_000  # "300 MB": decimal megabytes (286 MiB)
MEMORY_TARGET_KIB = 0.5


def run_and_clean(bench: Bench, project: Path, cmd: Sequence[str], n: int, memory: bool) -> Run:
    """:func:`run_experiment`, then delete its folder: every run starts from the same state
    and tens of thousands of traces do not pile up on disk."""
    run = run_experiment(bench.runner, project, cmd, n, memory=memory)
    shutil.rmtree(run.info["experiment_dir"])
    return run


def ok_projects(
    tmp: Path, prefix: str, inputs: int, sizes: Sequence[int]
) -> tuple[dict[int, Path], dict[int, Path]]:
    """The trivial agent's FluxLoop project and plain parametrized project at each size."""
    fl = {
        n: write_project(
            tmp / f"{prefix}-{n}", n_inputs=inputs, iterations=n // inputs, agent=AGENT_OK
        )
        for n in sizes
    }
    plain = {
        n: write_plain_project(
            tmp / f"{prefix}-plain-{n}",
            n_inputs=inputs,
            iterations=n // inputs,
            agent=AGENT_OK,
            expected=OK_EXPECTED,
        )
        for n in sizes
    }
    return fl, plain


def ratio_row(name: str, ours_ms: float, base_ms: float, base_label: str, limit: float) -> Row:
    """A marginal-cost row: ours against a baseline, PASS when the ratio is <= ``limit``."""
    ratio = ours_ms / base_ms if base_ms > 0 else None
    return Row(
        name,
        f"{ours_ms:.3f} ms",
        f"{base_ms:.3f} ms {base_label}",
        ratio,
        f"{ratio:.2f}x" if ratio is not None else "n/a (baseline <= 0)",
        f"<={limit:g}x",
        ratio is not None and ratio <= limit,
    )


# --------------------------------------------------------------------------- percase


def bench_percase(bench: Bench) -> None:
    """Marginal wall per case (2,000 vs 200 cases) of four ways to run the same checks."""
    runner, tmp, report = bench.runner, bench.tmp, bench.report
    inputs = PERCASE_SMOKE_INPUTS if bench.smoke else PERCASE_INPUTS
    small, large = sizes = PERCASE_SMOKE_SIZES if bench.smoke else PERCASE_SIZES
    print(f"\n[percase] marginal cost per case: ({large} - {small} cases) / {large - small}")
    bare = ensure_venv("bare", bench)
    plugin = ensure_venv("plugin", bench)
    print(f"  bare venv: {bare}\n  plugin venv: {plugin}")
    fl, plain = ok_projects(tmp, "percase", inputs, sizes)
    cli = [*fluxloop_script(plugin), "run", "experiment", "--config", "configs/simulation.yaml"]
    cli += ["--yes", "--", *PYTEST_FLAGS]
    sides: dict[str, Callable[[int], Run]] = {
        "a plain pytest, bare venv": lambda n: run_plain(runner, plain[n], n, python=bare),
        "b plain pytest, plugin venv": lambda n: run_plain(runner, plain[n], n, python=plugin),
        "c pytest --fluxloop-config": lambda n: run_and_clean(
            bench, fl[n], fluxloop_cmd(python=plugin), n, memory=False
        ),
        "d fluxloop run experiment": lambda n: run_and_clean(bench, fl[n], cli, n, memory=False),
    }
    if not bench.smoke:
        print("  warm-up round (bytecode caches)")
        for n in sizes:
            for measure in sides.values():
                measure(n)
    # Per round: for each size, for each side (a, b, c, d), so drift hits all alike.
    keys = [(n, side) for n in sizes for side in sides]
    # This machine's speed drifts by 2x within minutes: more rounds than the other
    # benchmarks, and the per-round ratios below, which cancel drift between rounds.
    rounds = bench.repeat if bench.smoke else max(bench.repeat, PERCASE_MIN_ROUNDS)
    if rounds != bench.repeat:
        report.notes.append(f"percase: medians of {rounds} rounds (at least {PERCASE_MIN_ROUNDS})")
    measured = interleave(rounds, *(lambda n=n, side=side: sides[side](n) for n, side in keys))
    runs = {key: measured[i] for i, key in enumerate(keys)}

    def marginal(side: str, stat: Callable[[Sequence[float]], float]) -> float:
        """ms per extra case, start-up cancelled out by the difference of the two sizes."""
        big, little = stat(walls(runs[large, side])), stat(walls(runs[small, side]))
        return (big - little) / (large - small) * 1000

    med = {side: marginal(side, median) for side in sides}
    low = {side: marginal(side, min) for side in sides}
    for side in sides:
        shown = ", ".join(f"{n}: {fmt_runs(walls(runs[n, side]))}" for n in sizes)
        print(f"  {side:28s} {shown}")
    for side in sides:
        print(
            f"  {side:28s} marginal {med[side]:.3f} ms/case (median), "
            f"{low[side]:.3f} ms/case (min: this machine is noisy)"
        )
    a, b, c, d = sides

    def paired(side: str, base: str) -> float | None:
        """Median over rounds of this round's marginal ratio (both sides ran minutes apart
        at most, so a slow phase of the machine hits both)."""
        ratios = []
        for r in range(rounds):
            ours = walls(runs[large, side])[r] - walls(runs[small, side])[r]
            theirs = walls(runs[large, base])[r] - walls(runs[small, base])[r]
            if theirs > 0:
                ratios.append(ours / theirs)
        return median(ratios) if ratios else None

    pairs = {f"{side[0]}/{base[0]}": paired(side, base) for side in (c, d) for base in (a, b)}
    shown = ", ".join(f"{k} {v:.2f}x" for k, v in pairs.items() if v is not None)
    print(f"  median of per-round marginal ratios: {shown}")
    report.rows += [
        ratio_row(
            "percase pytest --fluxloop-config, marginal/case (vs bare venv)",
            med[c],
            med[a],
            "plain, bare venv",
            1.2,
        ),
        ratio_row(
            "percase pytest --fluxloop-config, marginal/case (vs plugin venv)",
            med[c],
            med[b],
            "plain, plugin venv",
            1.2,
        ),
        ratio_row(
            "percase fluxloop run experiment, marginal/case (vs bare venv)",
            med[d],
            med[a],
            "plain, bare venv",
            1.3,
        ),
        ratio_row(
            "percase fluxloop run experiment, marginal/case (vs plugin venv)",
            med[d],
            med[b],
            "plain, plugin venv",
            1.3,
        ),
    ]
    report.raw["percase"] = {
        "sizes": list(sizes),
        "venvs": {"bare": bare, "plugin": plugin},
        "wall_s": {side: {str(n): walls(runs[n, side]) for n in sizes} for side in sides},
        "marginal_ms_median": med,
        "marginal_ms_min": low,
        "paired_ratio_median": pairs,
    }


# --------------------------------------------------------------------------- scale50k


def bench_scale50k(bench: Bench) -> None:
    """50,000 instant cases: wall and peak RSS; the plugin's own memory per case at 20k."""
    runner, tmp, report = bench.runner, bench.tmp, bench.report
    inputs = SCALE_SMOKE_INPUTS if bench.smoke else SCALE_INPUTS
    n_big = SCALE_SMOKE_CASES if bench.smoke else SCALE_CASES
    small, large = sizes = MEMORY_SMOKE_SIZES if bench.smoke else MEMORY_SIZES
    print(
        f"\n[scale50k] {n_big} instant cases: wall and peak RSS; plugin memory per case "
        f"at {large} vs {small}"
    )
    plugin = ensure_venv("plugin", bench)
    print(f"  plugin venv: {plugin}")
    big = write_project(
        tmp / "scale50k", n_inputs=inputs, iterations=n_big // inputs, agent=AGENT_OK
    )
    fl, plain = ok_projects(tmp, "scale50k-mem", inputs, sizes)
    cmd = fluxloop_cmd(python=plugin)

    def measure_fl(project: Path, n: int) -> Run:
        return run_and_clean(bench, project, cmd, n, memory=True)

    def measure_plain(n: int) -> Run:
        return run_plain(runner, plain[n], n, memory=True, python=plugin)

    if not bench.smoke:
        print("  warm-up (bytecode caches)")
        measure_fl(fl[small], small)
        measure_plain(small)
    # Per round: 50k, then fluxloop and plain at the small size, then at the large one.
    mem_sides = [
        side
        for n in sizes
        for side in (lambda n=n: measure_fl(fl[n], n), lambda n=n: measure_plain(n))
    ]
    measured = interleave(bench.repeat, lambda: measure_fl(big, n_big), *mem_sides)
    runs_big = measured[0]
    mine = {n: measured[1 + 2 * i] for i, n in enumerate(sizes)}
    ref = {n: measured[2 + 2 * i] for i, n in enumerate(sizes)}

    def rss_kib(runs: list[Run]) -> list[float]:
        return [float(r.maxrss_kb or 0) for r in runs]

    def mib(runs: list[Run]) -> list[float]:
        return [v / 1024 for v in rss_kib(runs)]

    wall = median(walls(runs_big))
    rss_bytes = median(rss_kib(runs_big)) * 1024
    print(
        f"  {kcases(n_big):>4s} fluxloop: wall {fmt_runs(walls(runs_big))}, "
        f"peak RSS {fmt_runs(mib(runs_big), 'MiB')}"
    )
    for label, data in (("fluxloop", mine), ("plain", ref)):
        for n in sizes:
            print(
                f"  {kcases(n):>4s} {label:8s}: wall {fmt_runs(walls(data[n]))}, "
                f"peak RSS {fmt_runs(mib(data[n]), 'MiB')}"
            )
    rss = {
        (label, n): median(rss_kib(data[n]))
        for label, data in (("fluxloop", mine), ("plain", ref))
        for n in sizes
    }
    span = large - small
    per_case_kib = (
        (rss["fluxloop", large] - rss["plain", large])
        - (rss["fluxloop", small] - rss["plain", small])
    ) / span
    plain_per_case_kib = (rss["plain", large] - rss["plain", small]) / span
    print(
        f"  plugin memory per case: {per_case_kib:.3f} KiB "
        f"(plain pytest's own: {plain_per_case_kib:.3f} KiB per case)"
    )
    report.rows += [
        Row(
            f"scale50k wall, {kcases(n_big)} cases",
            f"{wall:.1f} s ({wall / n_big * 1e6:.0f} us/case)",
            "-",
            None,
            "-",
            f"<{WALL_TARGET_S:g} s",
            wall < WALL_TARGET_S,
        ),
        Row(
            f"scale50k peak RSS, {kcases(n_big)} cases",
            f"{rss_bytes / 2**20:.0f} MiB ({rss_bytes / 1e6:.0f} MB)",
            "-",
            None,
            "-",
            f"<{RSS_TARGET_BYTES // 1_000_000} MB",
            rss_bytes < RSS_TARGET_BYTES,
        ),
        Row(
            f"scale50k plugin memory per case at {kcases(large)}",
            f"{per_case_kib:.3f} KiB",
            f"{plain_per_case_kib:.3f} KiB plain pytest",
            None,
            "-",
            f"<={MEMORY_TARGET_KIB:g} KiB",
            per_case_kib <= MEMORY_TARGET_KIB,
        ),
    ]
    report.raw["scale50k"] = {
        "cases": n_big,
        "venv": plugin,
        "wall_s": walls(runs_big),
        "maxrss_mib": mib(runs_big),
        "memory_sizes": list(sizes),
        "memory": {
            label: {str(n): {"wall_s": walls(data[n]), "maxrss_mib": mib(data[n])} for n in sizes}
            for label, data in (("fluxloop", mine), ("plain", ref))
        },
        "plugin_kib_per_case": per_case_kib,
        "plain_kib_per_case": plain_per_case_kib,
    }
