#!/usr/bin/env python3
"""The SDK decorators' cost per call: an agent making 1,000 nested decorated calls per case.

Each case is one agent call (``@agent``) that calls a ``@tool`` 333 times; each tool call
calls a ``@trace`` function, which calls a ``@prompt`` function: 1 + 3 x 333 = 1,000
decorated calls, nested four deep. Three ways of running the same code, interleaved round
by round (A, B, C, A, B, C, ...) in this one process, medians reported:

* ``plain``: the functions undecorated (the baseline);
* ``off``: decorated, outside any trace (production: one ContextVar lookup per call);
* ``traced``: decorated, each case inside its own ``trace_context`` (an experiment case:
  2,000 observations per case).

for each kind of function: sync functions, coroutine functions (each case in
``asyncio.run``, whose cost is in all three), and generator functions (each layer yields
once). The table gives microseconds per decorated call and the ratio to ``plain``.

    python benchmarks/decorators.py                  # 20 cases x 1,000 calls, 7 rounds
    python benchmarks/decorators.py --smoke          # tiny: does it still run?
    python benchmarks/decorators.py --json out.json  # raw per-round seconds as well

Only the standard library is used, and the installed package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fluxloop
from pytest_fluxloop.sdk import trace_context

INNER_CALLS = 333  # tool calls per agent call; each makes 3 decorated calls
CALLS_PER_CASE = 1 + 3 * INNER_CALLS  # 1,000
KINDS = ("sync", "async", "generator")
MODES = ("plain", "off", "traced")

Decorator = Callable[[Any], Any]


def _identity(fn: Any) -> Any:
    return fn


def build(kind: str, decorated: bool) -> Callable[[], Any]:
    """The agent of ``kind``: returns a callable running one case's 1,000 calls."""
    agent: Decorator = fluxloop.agent() if decorated else _identity
    tool: Decorator = fluxloop.tool() if decorated else _identity
    trace: Decorator = fluxloop.trace() if decorated else _identity
    prompt: Decorator = fluxloop.prompt(model="m") if decorated else _identity

    if kind == "sync":

        @prompt
        def complete(n: int) -> int:
            return n + 1

        @trace
        def step(n: int) -> int:
            return int(complete(n))

        @tool
        def lookup(n: int) -> int:
            return int(step(n))

        @agent
        def run(n: int) -> int:
            return sum(lookup(i) for i in range(n))

        return lambda: run(INNER_CALLS)

    if kind == "async":

        @prompt
        async def acomplete(n: int) -> int:
            return n + 1

        @trace
        async def astep(n: int) -> int:
            return int(await acomplete(n))

        @tool
        async def alookup(n: int) -> int:
            return int(await astep(n))

        @agent
        async def arun(n: int) -> int:
            return sum([await alookup(i) for i in range(n)])

        return lambda: asyncio.run(arun(INNER_CALLS))

    @prompt
    def gcomplete(n: int) -> Iterator[int]:
        yield n + 1

    @trace
    def gstep(n: int) -> Iterator[int]:
        yield from gcomplete(n)

    @tool
    def glookup(n: int) -> Iterator[int]:
        yield from gstep(n)

    @agent
    def grun(n: int) -> Iterator[int]:
        for i in range(n):
            yield from glookup(i)

    return lambda: sum(grun(INNER_CALLS))


def measure(case: Callable[[], Any], cases: int, traced: bool) -> float:
    """Seconds for ``cases`` cases (each in a new trace when ``traced``)."""
    t0 = time.perf_counter()
    for i in range(cases):
        if traced:
            with trace_context(f"case-{i}") as ctx:
                case()
            assert len(ctx.observations) == 2 * CALLS_PER_CASE, len(ctx.observations)
        else:
            case()
    return time.perf_counter() - t0


def run_kind(kind: str, cases: int, rounds: int) -> dict[str, list[float]]:
    """Per-round seconds of each mode, interleaved, after one warm-up round."""
    plain, decorated = build(kind, False), build(kind, True)
    sides: dict[str, Callable[[], float]] = {
        "plain": lambda: measure(plain, cases, False),
        "off": lambda: measure(decorated, cases, False),
        "traced": lambda: measure(decorated, cases, True),
    }
    for side in sides.values():
        side()  # warm-up
    runs: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode, side in sides.items():
            runs[mode].append(side())
    return runs


def per_call_us(seconds: float, cases: int) -> float:
    return seconds / (cases * CALLS_PER_CASE) * 1e6


def table(results: dict[str, dict[str, list[float]]], cases: int) -> list[str]:
    header = (
        f"{'kind':<10} | {'plain':>9} | {'off (no trace)':>14} | {'x plain':>7} "
        f"| {'traced':>9} | {'x plain':>7} | {'traced - plain':>14}"
    )
    out = [header, "-" * len(header)]
    for kind, runs in results.items():
        us = {mode: per_call_us(statistics.median(runs[mode]), cases) for mode in MODES}
        out.append(
            f"{kind:<10} | {us['plain']:>6.3f} us | {us['off']:>11.3f} us "
            f"| {us['off'] / us['plain']:>6.1f}x | {us['traced']:>6.2f} us "
            f"| {us['traced'] / us['plain']:>6.1f}x | {us['traced'] - us['plain']:>11.2f} us"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=20, help="cases per round (default 20)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per mode (default 7)")
    parser.add_argument("--kinds", nargs="*", choices=KINDS, default=list(KINDS))
    parser.add_argument("--smoke", action="store_true", help="2 cases, 1 round")
    parser.add_argument("--json", type=Path, help="write per-round seconds to this file")
    args = parser.parse_args(argv)
    cases, rounds = (2, 1) if args.smoke else (args.cases, args.rounds)
    if cases < 1 or rounds < 1:
        parser.error("--cases and --rounds must be >= 1")
    print(f"python {platform.python_version()} on {platform.machine()}, {sys.platform}")
    print(
        f"{cases} cases x {CALLS_PER_CASE} decorated calls per kind and mode, "
        f"median of {rounds} interleaved rounds; microseconds per decorated call\n"
    )
    results = {kind: run_kind(kind, cases, rounds) for kind in args.kinds}
    print("\n".join(table(results, cases)))
    if args.json:
        args.json.write_text(
            json.dumps({"cases": cases, "calls_per_case": CALLS_PER_CASE, "seconds": results})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
