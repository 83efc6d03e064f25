#!/usr/bin/env python3
"""Evaluation cost (issue 13): what evaluation.yaml adds per case, and the run accumulator.

Part 1, whole processes. Benchmark 1's project (inputs × 20 iterations, ``save_traces:
true``) with an instant agent that answers each iteration differently (``def
run(input_text, iteration): return f"{input_text} (answer {iteration})"``: with the same
answer every iteration, a judge's cache would serve iterations 2.. of an input) through
``python -m pytest --fluxloop-config configs/simulation.yaml -p no:cacheprovider -q``, on
four sides, each at two sizes (``--cases`` and a tenth of it), so that the marginal cost of
a case is ``(wall_large - wall_small) / (large - small)`` with start-up and the fixed costs
taken out:

* ``none``: no evaluation.yaml (what every user runs);
* ``rules``: evaluation.yaml with 3 ``rule_based`` evaluators (5 rules: output_not_empty,
  not_contains, contains, matches_regex, latency_under);
* ``judge warm``: one ``llm_judge`` whose every verdict is already in ``limits.cache``
  (filled by a run before measuring): the cost of the judge's prompt and cache lookup;
* ``judge cold``: the same judge with its cache file deleted before each run, against an
  OpenAI-compatible server on 127.0.0.1 (a thread of this process, answering at once with
  a fixed passing verdict): the cost of the harness around a ~0 ms judge.

The sides and sizes run interleaved (one run of each per round, the order rotated every
round), after one warm-up round; medians of ``--repeat`` rounds. Every run is checked:
``summary.json`` complete with the expected traces and no failures, every verdict
``passed`` (``none`` in the first side), the warm judge served from the cache for every
case and the cold one calling the server once per case.

Part 2, in-process: ``RunEvaluation`` (``pytest_fluxloop/evaluation/run_stats.py``, fed
every written record by the recorder, with or without evaluation.yaml) fed ``--records``
synthetic ``TraceRecord`` s (10 iterations × records/10 input × persona groups), without
and with a 3-evaluator ``CaseEvaluation`` on each: µs per ``add``, seconds of ``finish()``,
and the size of the ``evaluation`` block it makes for ``summary.json`` (at most 500 groups
listed).

    python benchmarks/evaluation.py                      # 2,000 / 200 cases, 5 rounds
    python benchmarks/evaluation.py --cases 4000 --repeat 3
    python benchmarks/evaluation.py --before /tmp/before-venv/bin/python   # + an older build
    python benchmarks/evaluation.py --before PY --sides none --only processes --repeat 11
    python benchmarks/evaluation.py --smoke              # does it still run? (~25 s)

``--before PYTHON`` adds a side ``none, before``: no evaluation.yaml, under another venv's
interpreter (a build without this work); ``--sides`` runs a subset (``none`` always runs).
Each table is printed for wall time and for CPU time (user + system of the pytest process,
the steadier figure on a loaded machine).

Children run as in ``run.py`` (bytecode cache in ``benchmarks/.cache/pycache``,
PYTEST_ADDOPTS dropped), plus ``-p no:langsmith_plugin``: langsmith's pytest plugin, when
installed, imports for ~0.3-0.6 s per run on every side alike, noise that is not ours
(``--with-langsmith`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from harness import (
    BenchError,
    ChatServer,
    Run,
    Runner,
    case_text,
    chat_server,
    child_env,
    fluxloop_cmd,
    machine_info,
    run_experiment,
    workspace,
    write_project,
)

ITERATIONS = 20
SMOKE_ITERATIONS = 2
SIDES = ("none", "rules", "judge warm", "judge cold")
BEFORE = "none, before"
"""The side ``--before PYTHON`` adds: no evaluation.yaml, under another build's venv."""
JUDGE_MODEL = "judge-bench"
JUDGE_KEY = "sk-bench-judge"
CACHE_FILE = ".fluxloop/judge_cache.jsonl"
VERDICT = {
    "verdict": "pass",
    "score": 9,
    "reason": "The answer addresses the refund question.",
    "evidence": [],
}

AGENT = '''\
def run(input_text: str, iteration: int) -> str:
    """Instant agent: echo the input, one answer per iteration (so no two cases share a
    judge prompt: a judge's cache would otherwise answer iterations 2.. of an input)."""
    return f"{input_text} (answer {iteration})"
'''

RULES_YAML = """\
evaluators:
  - name: answered
    type: rule_based
    rules:
      - check: output_not_empty
      - check: not_contains
        keywords: ["as an AI", "I cannot"]
  - name: on_topic
    type: rule_based
    rules:
      - check: contains
        keywords: ["refund"]
      - check: matches_regex
        pattern: "order \\\\d+"
  - name: fast
    type: rule_based
    rules:
      - check: latency_under
        budget_ms: 2000
aggregate:
  method: weighted_sum
  threshold: 0.7
"""

JUDGE_YAML = """\
evaluators:
  - name: helpful
    type: llm_judge
    model: {model}
    base_url: {base_url}
    max_score: 10
    prompt_template: |
      The user ({{persona}}) asked: {{input}}
      The assistant answered: {{output}}
      Score from 0 to 10 how well the answer solves the user's problem.
aggregate:
  method: weighted_sum
  threshold: 0.7
limits:
  cache: {cache}
"""


# --------------------------------------------------------------------------- the judge server


def _verdict(body: dict[str, Any]) -> str:
    return json.dumps(VERDICT)


# --------------------------------------------------------------------------- projects


def write_side(root: Path, side: str, cases: int, iterations: int, base_url: str) -> Path:
    """The benchmark-1 project of ``cases`` instant cases, with the side's evaluation.yaml."""
    write_project(root, n_inputs=cases // iterations, iterations=iterations, agent=AGENT)
    evaluation = root / "configs" / "evaluation.yaml"
    if side == "rules":
        evaluation.write_text(RULES_YAML)
    elif side.startswith("judge"):
        evaluation.write_text(
            JUDGE_YAML.format(model=JUDGE_MODEL, base_url=base_url, cache=CACHE_FILE)
        )
    return root


def check_evaluation(run: Run, side: str, cases: int, calls: int, *, filling: bool) -> None:
    """The run's ``evaluation`` block and the judge calls must be what the side means."""
    summary = json.loads((Path(run.info["experiment_dir"]) / "summary.json").read_text())
    block = summary.get("evaluation") or {}
    verdicts = block.get("verdicts")
    expected = {"none": cases} if side == "none" else {"passed": cases}
    problems = []
    if side != BEFORE and verdicts != expected:  # an older build writes no evaluation block
        problems.append(f"verdicts {verdicts}, expected {expected}")
    if side.startswith("judge"):
        cached = (block.get("judge") or {}).get("cached")
        cold = side == "judge cold" or filling
        want_calls, want_cached = (cases, 0) if cold else (0, cases)
        if calls != want_calls or cached != want_cached:
            problems.append(
                f"{calls} judge calls and {cached} cached verdicts, expected {want_calls} "
                f"and {want_cached}"
            )
    elif calls:
        problems.append(f"{calls} judge calls, expected none")
    if problems:
        raise BenchError(f"{side}, {cases} cases ({run.log}): {'; '.join(problems)}")


def measure(
    runner: Runner,
    cmd: list[str],
    project: Path,
    side: str,
    cases: int,
    server: ChatServer,
    *,
    filling: bool = False,
) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads) of one checked run of
    ``project``. CPU time is the steadier figure on a loaded machine: waiting for a core
    is not in it."""
    if side == "judge cold":
        (project / CACHE_FILE).unlink(missing_ok=True)
    before = server.calls
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = run_experiment(runner, project, cmd, cases)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    check_evaluation(run, side, cases, server.calls - before, filling=filling)
    return run.wall_s, cpu


Series = dict[tuple[str, int], list[float]]


def print_table(
    what: str, data: Series, sides: list[str], sizes: tuple[int, int]
) -> dict[str, Any]:
    """Medians, the fixed and per-case cost of each side, and the differences to ``none``."""
    small, large = sizes
    span = large - small
    med = {key: statistics.median(values) for key, values in data.items()}
    per_case = {side: (med[side, large] - med[side, small]) / span for side in sides}
    fixed = {side: med[side, small] - per_case[side] * small for side in sides}
    # The same estimate round by round, against that round's "none": less moved by drift.
    rounds = range(len(data["none", large]))
    paired = {
        side: statistics.median(
            (data[side, large][r] - data[side, small][r]) / span
            - (data["none", large][r] - data["none", small][r]) / span
            for r in rounds
        )
        for side in sides
    }
    base = per_case["none"]
    print(
        f"\n  {what:12s} {small:>10d} {large:>10d}"
        f" {'fixed':>8s} {'per case':>9s} {'- none':>8s} {'paired':>8s} {'/ none':>6s}"
        f" {str(large) + ' / none':>11s}"
    )
    for side in sides:
        ratio = per_case[side] / base if base > 0 else float("nan")
        print(
            f"  {side:12s} {med[side, small]:8.2f} s {med[side, large]:8.2f} s"
            f" {fixed[side]:6.2f} s {per_case[side] * 1e6:6.0f} us"
            f" {(per_case[side] - base) * 1e6:+5.0f} us {paired[side] * 1e6:+5.0f} us"
            f" {ratio:5.2f}x {med[side, large] / med['none', large]:10.2f}x"
        )
    print(f"  runs ({what}, s):")
    for (side, n), values in data.items():
        print(f"    {side:12s} {n:6d}: " + ", ".join(f"{v:.2f}" for v in values))
    return {
        "runs": {f"{side}@{n}": values for (side, n), values in data.items()},
        "per_case_us": {side: value * 1e6 for side, value in per_case.items()},
        "paired_us": {side: value * 1e6 for side, value in paired.items()},
        "fixed_s": fixed,
    }


def bench_processes(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Part 1: the four sides at two sizes, interleaved; prints the tables."""
    iterations = SMOKE_ITERATIONS if args.smoke else ITERATIONS
    large = args.cases
    small = large // 10
    if small < iterations or large % (10 * iterations):
        raise SystemExit(f"--cases must be a multiple of {10 * iterations}")
    sizes = (small, large)
    env = child_env(inherit=False)
    env["FLUXLOOP_JUDGE_API_KEY"] = JUDGE_KEY
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        env.pop(name, None)
    runner = Runner(tmp, env, verbose=not args.quiet)
    cmd = fluxloop_cmd()
    if not args.with_langsmith:
        cmd += ["-p", "no:langsmith_plugin"]
    sides = [side for side in SIDES if side == "none" or side in args.sides]
    cmds = dict.fromkeys(SIDES, cmd)
    if args.before:
        sides.insert(0, BEFORE)
        # Absolute, not resolved: a venv's python is a symlink that must stay in its venv.
        cmds[BEFORE] = [os.path.abspath(args.before), *cmd[1:]]
    walls: Series = {(s, n): [] for s in sides for n in sizes}
    cpus: Series = {(s, n): [] for s in sides for n in sizes}
    print(
        f"[part 1] instant agent, {small} and {large} cases ({iterations} iterations), "
        f"{args.repeat} rounds after a warm-up; sides: {', '.join(sides)}"
    )
    with chat_server(
        _verdict, usage={"prompt_tokens": 60, "completion_tokens": 20, "total_tokens": 80}
    ) as server:
        projects = {
            (side, n): write_side(
                tmp / f"{side.replace(' ', '-')}-{n}", side, n, iterations, server.base_url
            )
            for side in sides
            for n in sizes
        }
        order = list(projects)
        print("  warm-up (bytecode caches; fills the warm judge's cache)")
        for side, n in order:
            project = projects[side, n]
            measure(runner, cmds[side], project, side, n, server, filling=side == "judge warm")
        for round_no in range(args.repeat):
            turn = (round_no * 3) % len(order)
            print(f"  round {round_no + 1}")
            for side, n in order[turn:] + order[:turn]:
                wall, cpu = measure(runner, cmds[side], projects[side, n], side, n, server)
                walls[side, n].append(wall)
                cpus[side, n].append(cpu)
    result = {
        "sizes": list(sizes),
        "iterations": iterations,
        "wall": print_table("wall", walls, sides, sizes),
        "cpu": print_table("cpu", cpus, sides, sizes),
    }
    print(
        f"\n  per case = (median of {large} - median of {small}) / {large - small}; fixed = "
        f"median of {small} - {small} x per case; paired = median over rounds of (the round's "
        "per case - the same round's per case of none); cpu = user + system seconds of the "
        "pytest process"
    )
    return result


# --------------------------------------------------------------------------- part 2


def synthetic_records(total: int, iterations: int, with_evaluation: bool) -> list[Any]:
    """``total`` records: ``total / iterations`` input × persona groups, 5 % agent errors,
    with a 3-evaluator ``CaseEvaluation`` (a tenth failed) when ``with_evaluation``."""
    from pytest_fluxloop.records import CaseEvaluation, ErrorInfo, EvaluatorResult, TraceRecord

    groups = total // iterations
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    records = []
    for iteration in range(iterations):
        for group in range(groups):
            index = iteration * groups + group
            persona = "novice_user" if group % 2 == 0 else "expert_user"
            ok = index % 20 != 7
            evaluation = None
            if with_evaluation and ok:
                passed = index % 10 != 3
                evaluation = CaseEvaluation(
                    verdict="passed" if passed else "failed",
                    score=1.0 if passed else 0.33,
                    threshold=0.7,
                    method="weighted_sum",
                    evaluators=[
                        EvaluatorResult(
                            name="answered", type="rule_based", status="passed", score=1.0
                        ),
                        EvaluatorResult(
                            name="on_topic",
                            type="rule_based",
                            status="passed" if passed else "failed",
                            score=1.0 if passed else 0.0,
                        ),
                        EvaluatorResult(
                            name="helpful",
                            type="llm_judge",
                            status="passed" if passed else "failed",
                            score=0.9 if passed else 0.2,
                            cached=True,
                        ),
                    ],
                )
            records.append(
                TraceRecord(
                    trace_id=f"t{index:06d}",
                    case_id=f"q{group:05d}-{persona}-i{iteration}",
                    iteration=iteration,
                    persona=persona,
                    input=case_text(group),
                    input_index=group,
                    output="Your refund is on its way." if ok else None,
                    duration_ms=1.0 + (index % 97) * 0.1,
                    success=ok,
                    status="success" if ok else "error",
                    error=None if ok else ErrorInfo(type="ValueError", message="boom"),
                    started_at=start + timedelta(milliseconds=index),
                    completed_at=start + timedelta(milliseconds=index + 1),
                    token_usage={
                        "agent": {"prompt_tokens": 40, "completion_tokens": 14, "total_tokens": 54}
                    },
                    evaluation=evaluation,
                )
            )
    return records


def bench_accumulator(args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: ``RunEvaluation.add`` per record and ``finish()``, in this process."""
    from pytest_fluxloop.evaluation.run_stats import GROUPS_KEPT, RunEvaluation
    from pytest_fluxloop.evaluation.spec import EvaluationSpec

    iterations = 10
    total = args.records
    ks = (1, 3, iterations)  # what a 10-iteration run computes with no evaluation.yaml
    print(
        f"\n[part 2] RunEvaluation fed {total} synthetic TraceRecords ({iterations} iterations "
        f"x {total // iterations} groups), ks {list(ks)}, median of "
        f"{args.repeat} runs"
    )
    print(
        f"  {'records':22s} {'add, us/record':>15s} {'finish(), s':>12s} {'json.dumps, s':>14s}"
        f" {'block, KiB':>11s} {'groups listed':>14s}"
    )
    out: dict[str, Any] = {}
    for with_evaluation in (False, True):
        records = synthetic_records(total, iterations, with_evaluation)
        adds, finishes, dumps, block_sizes, listed = [], [], [], [], 0
        for _ in range(args.repeat):
            evaluation = RunEvaluation(EvaluationSpec(ks=ks))
            t0 = time.perf_counter()
            for record in records:
                evaluation.add(record)
            t1 = time.perf_counter()
            outcome = evaluation.finish()
            t2 = time.perf_counter()
            adds.append((t1 - t0) / total * 1e6)
            finishes.append(t2 - t1)
            # As the writer writes summary.json (indent=2: json's pure-Python encoder).
            text = json.dumps(outcome.block, ensure_ascii=False, allow_nan=False, indent=2)
            dumps.append(time.perf_counter() - t2)
            block_sizes.append(len(text.encode()))
            reliability = outcome.block["reliability"]
            listed = len(reliability["groups"])
            expected_total = total // iterations
            if (
                listed != min(GROUPS_KEPT, expected_total)
                or reliability["overall"]["groups"] != expected_total
            ):
                raise BenchError(f"unexpected reliability block: {listed} groups listed")
        name = "with 3 evaluators" if with_evaluation else "no evaluation"
        print(
            f"  {name:22s} {statistics.median(adds):15.2f} {statistics.median(finishes):12.3f}"
            f" {statistics.median(dumps):14.3f} {statistics.median(block_sizes) / 1024:11.1f}"
            f" {listed:14d}"
        )
        out[name] = {
            "add_us": adds,
            "finish_s": finishes,
            "dumps_s": dumps,
            "block_bytes": block_sizes,
            "groups_listed": listed,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=None, help="the larger size (default 2000)")
    parser.add_argument("--repeat", type=int, default=None, help="measured rounds (default 5)")
    parser.add_argument(
        "--records", type=int, default=None, help="records fed to RunEvaluation (default 50000)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round")
    parser.add_argument("--keep", action="store_true", help="keep the projects and run logs")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines")
    parser.add_argument("--json", type=Path, help="write the raw numbers to this file")
    parser.add_argument(
        "--before",
        metavar="PYTHON",
        help="also run the no-evaluation.yaml side under this interpreter (an older build)",
    )
    parser.add_argument(
        "--sides",
        type=lambda text: [part.strip() for part in text.split(",")],
        default=list(SIDES),
        help=f"comma-separated subset of: {', '.join(SIDES)} (none always runs)",
    )
    parser.add_argument(
        "--with-langsmith", action="store_true", help="let langsmith's pytest plugin load"
    )
    parser.add_argument("--only", choices=("processes", "accumulator"), help="run one part only")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sides) - set(SIDES))
    if unknown:
        parser.error(f"unknown side(s): {', '.join(unknown)}")
    args.cases = args.cases or (40 if args.smoke else 2000)
    args.repeat = args.repeat or (1 if args.smoke else 5)
    args.records = args.records or (1000 if args.smoke else 50_000)
    print("machine:")
    for key, value in machine_info().items():
        print(f"  {key:16s} {value}")
    raw: dict[str, Any] = {"machine": machine_info(), "smoke": args.smoke}
    started = time.perf_counter()
    try:
        if args.only != "accumulator":
            with workspace(args.keep) as tmp:
                raw["processes"] = bench_processes(args, tmp)
        if args.only != "processes":
            raw["accumulator"] = bench_accumulator(args)
    except BenchError as exc:
        print(f"\nERROR: {exc}")
        return 1
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s"
        + ("  (smoke: the numbers mean nothing)" if args.smoke else "")
    )
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
