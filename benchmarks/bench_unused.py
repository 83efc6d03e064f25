"""``unused``: the plugin costs nothing in a suite that does not use it.

A plain parametrized suite (no experiment, no marker) in ``benchmarks/.cache/plugin-venv``,
run with the plugin loaded (it is installed, so pytest loads it) and with ``-p
no:fluxloop``, interleaved; and the start-up difference on a one-test collection.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

from harness import (
    PYTEST_FLAGS,
    Bench,
    BenchError,
    Row,
    Run,
    ensure_venv,
    fmt_runs,
    interleave,
    kcases,
    median,
    pytest_cmd,
    run_plain,
    walls,
    write_plain_project,
)

UNUSED_INPUTS, UNUSED_SIZES = 100, (200, 2_000)
UNUSED_SMOKE_INPUTS, UNUSED_SMOKE_SIZES = 10, (20, 40)
MIN_ROUNDS = 7  # the differences are a few percent at most: more rounds than the default
WALL_RATIO_TARGET = 1.02
STARTUP_TARGET_MS = 30.0
OFF = ("-p", "no:fluxloop")

ONE_TEST = '''\
def test_one() -> None:
    """The whole suite: start-up and collection are all there is to measure."""
    assert 1 + 1 == 2
'''


def check_plugin_switch(bench: Bench, python: str, cwd: Path) -> None:
    """The loaded side really loads the plugin and ``-p no:fluxloop`` really drops it.

    Checked once, outside the timings, by whether ``--help`` lists ``--fluxloop-config``.
    """
    for extra, wanted in (((), True), (OFF, False)):
        cmd = [python, "-m", "pytest", *extra, "--help"]
        done = subprocess.run(
            cmd, cwd=cwd, env=bench.runner.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or ("--fluxloop-config" in done.stdout) != wanted:
            state = "loaded" if wanted else "not loaded"
            raise BenchError(f"expected the plugin {state} with {' '.join(cmd)}")


def run_collect(bench: Bench, project: Path, python: str, extra: tuple[str, ...]) -> Run:
    """``pytest --co -q`` of the one-test project; check it collected exactly that test."""
    result = bench.runner.run(pytest_cmd("--co", *extra, python=python), project)
    if "1 test collected" not in result.log.read_text(errors="replace"):
        raise BenchError(f"pytest --co did not report '1 test collected' ({result.log})")
    return result


def bench_unused(bench: Bench) -> None:
    """Plain suites of 200 and 2,000 tests, plugin loaded vs ``-p no:fluxloop``."""
    runner, tmp, report = bench.runner, bench.tmp, bench.report
    inputs = UNUSED_SMOKE_INPUTS if bench.smoke else UNUSED_INPUTS
    sizes = UNUSED_SMOKE_SIZES if bench.smoke else UNUSED_SIZES
    rounds = bench.repeat if bench.smoke else max(bench.repeat, MIN_ROUNDS)
    print(
        f"\n[unused] plain suites of {' and '.join(map(str, sizes))} tests, plugin loaded vs "
        f"{' '.join(OFF)}; start-up of a 1-test collection; {rounds} rounds"
    )
    python = ensure_venv("plugin", bench)
    print(f"  plugin venv: {python}")
    suites = {
        n: write_plain_project(tmp / f"unused-{n}", n_inputs=inputs, iterations=n // inputs)
        for n in sizes
    }
    one = tmp / "unused-startup"
    one.mkdir()
    (one / "test_one.py").write_text(ONE_TEST)
    (one / "pytest.ini").write_text("[pytest]\n")  # pins rootdir to the folder
    check_plugin_switch(bench, python, one)

    def suite(n: int, extra: tuple[str, ...]) -> Run:
        return run_plain(runner, suites[n], n, python=python, extra=extra)

    def startup(extra: tuple[str, ...]) -> Run:
        return run_collect(bench, one, python, extra)

    sides: list[Callable[[], Run]] = [
        partial(suite, n, extra) for n in sizes for extra in ((), OFF)
    ]
    sides += [partial(startup, ()), partial(startup, OFF)]
    if not bench.smoke:
        print("  warm-up round (bytecode caches)")
        for measure in sides:
            measure()
    # Per round: each size loaded then off, then the start-up pair.
    measured = interleave(rounds, *sides)
    loaded = {n: measured[2 * i] for i, n in enumerate(sizes)}
    off = {n: measured[2 * i + 1] for i, n in enumerate(sizes)}
    start_on, start_off = measured[-2], measured[-1]

    raw: dict[str, object] = {"rounds": rounds, "sizes": list(sizes), "venv": python}
    for n in sizes:
        on_s, off_s = median(walls(loaded[n])), median(walls(off[n]))
        ratio = on_s / off_s
        print(f"  {n:5d} tests, loaded : wall {fmt_runs(walls(loaded[n]))}")
        print(f"  {n:5d} tests, {' '.join(OFF)}: wall {fmt_runs(walls(off[n]))}")
        print(f"  {n:5d} tests: ratio {ratio:.3f}x (medians {on_s:.3f} s / {off_s:.3f} s)")
        report.rows.append(
            Row(
                f"unused, {kcases(n)} plain tests, plugin loaded vs {' '.join(OFF)} (wall)",
                f"{on_s:.2f} s",
                f"{off_s:.2f} s {' '.join(OFF)}",
                ratio,
                f"{ratio:.3f}x",
                f"<={WALL_RATIO_TARGET:g}x",
                ratio <= WALL_RATIO_TARGET,
            )
        )
        raw[str(n)] = {"loaded_wall_s": walls(loaded[n]), "off_wall_s": walls(off[n])}
    on_ms, off_ms = median(walls(start_on)) * 1000, median(walls(start_off)) * 1000
    extra_ms = on_ms - off_ms
    print(f"  start-up, loaded : wall {fmt_runs(walls(start_on))}")
    print(f"  start-up, {' '.join(OFF)}: wall {fmt_runs(walls(start_off))}")
    print(f"  start-up difference {extra_ms:+.0f} ms (medians {on_ms:.0f} / {off_ms:.0f} ms)")
    report.rows.append(
        Row(
            f"unused start-up, 1 test --co, plugin loaded vs {' '.join(OFF)}",
            f"{on_ms:.0f} ms",
            f"{off_ms:.0f} ms {' '.join(OFF)}",
            on_ms / off_ms,
            f"{extra_ms:+.0f} ms",
            f"<={STARTUP_TARGET_MS:g} ms",
            extra_ms <= STARTUP_TARGET_MS,
        )
    )
    raw["startup"] = {
        "loaded_wall_s": walls(start_on),
        "off_wall_s": walls(start_off),
        "extra_ms": extra_ms,
        "flags": [*PYTEST_FLAGS, "--co"],
    }
    report.raw["unused"] = raw
    if rounds != bench.repeat:
        report.notes.append(f"unused: medians of {rounds} rounds (at least {MIN_ROUNDS})")
