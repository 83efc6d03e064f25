"""Two builds of pytest-fluxloop side by side on the same project, interleaved.

For checking that a change did not make the harness slower: each round runs the project
once under the "before" interpreter (a venv with the older revision installed), once under
the "after" one, and once as plain pytest, so machine noise hits all three alike. The first
round only warms the bytecode caches. Prints medians, minimums and the ratios.

    git worktree add /tmp/before <rev> && python3 -m venv /tmp/before-venv
    /tmp/before-venv/bin/pip install -e "/tmp/before[xdist]" pytest==<same as yours>
    python benchmarks/run.py overhead --keep --repeat 1     # prints "kept /tmp/fluxloop-bench-..."
    python benchmarks/ab.py --before /tmp/before-venv/bin/python --after .venv/bin/python \\
        --project /tmp/fluxloop-bench-.../overhead-fluxloop \\
        --plain /tmp/fluxloop-bench-.../overhead-plain --rounds 13
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

FLUXLOOP_ARGS = ["-m", "pytest", "--fluxloop-config", "configs/simulation.yaml"]
PLAIN_ARGS = ["-m", "pytest", "test_plain.py"]
COMMON = ["-p", "no:cacheprovider", "-q"]


def timed(python: str, cwd: Path, args: list[str], cache: Path) -> float:
    """Wall seconds of one run; a failing run stops the comparison."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPATH", None)  # each interpreter sees its own installed build
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    t0 = time.perf_counter()
    proc = subprocess.run([python, *args, *COMMON], cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{python} in {cwd} failed:\n{proc.stdout[-800:]!r}")
    return elapsed


def main() -> None:
    """Parse the options, run the rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="python of the older build")
    parser.add_argument("--after", required=True, help="python of the newer build")
    parser.add_argument("--project", required=True, type=Path, help="fluxloop project folder")
    parser.add_argument("--plain", required=True, type=Path, help="plain pytest folder")
    parser.add_argument("--rounds", type=int, default=13, help="rounds, the first a warm-up")
    opts = parser.parse_args()
    # Absolute (not resolved: a venv's python is a symlink that must stay in its venv).
    before, after = os.path.abspath(opts.before), os.path.abspath(opts.after)
    sides = {
        "before": (before, opts.project, FLUXLOOP_ARGS),
        "after": (after, opts.project, FLUXLOOP_ARGS),
        "plain pytest": (after, opts.plain, PLAIN_ARGS),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="fluxloop-ab-") as tmp:
        for round_no in range(opts.rounds):
            for name, (python, cwd, args) in sides.items():
                elapsed = timed(python, cwd, args, Path(tmp) / name.replace(" ", "_"))
                if round_no > 0:
                    times[name].append(elapsed)
    med = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:13s} median {med[name]:.2f} s  min {min(values):.2f} s  runs [{shown}]")
    plain = med["plain pytest"]
    print(
        f"overhead vs plain pytest: before {med['before'] / plain:.2f}x, "
        f"after {med['after'] / plain:.2f}x; after/before {med['after'] / med['before']:.3f}"
    )


if __name__ == "__main__":
    main()
