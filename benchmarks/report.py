#!/usr/bin/env python3
"""HTML report cost (issue 15): ``fluxloop report`` on 20,000 traces, and the page in Chromium.

Part 1 writes a synthetic experiment once, through the real ``ExperimentWriter`` (so the
files are exactly what a run writes: redacted, projected, truncated), and keeps it in
``benchmarks/.cache/report/<cases>/``: ``--cases`` multi-turn cases (2 turns and a closing
message each, 16 observations: agent, tool and generation spans, turn events and supervisor
decisions, with token usage) over 200 inputs × 4 personas (25 iterations at 20,000); 5 %
fail their evaluation, 1 % crash the agent, 1 % are unscored, and one case in 50 has a
20,000-character answer.

Part 2 runs ``fluxloop report DIR --output OUT`` in a child process ``--repeat`` times:
wall seconds, peak RSS (``/usr/bin/time -v``, else a ``ru_maxrss`` wrapper, as
``run.py``), and the file's size.

Part 3 opens the page from ``file://`` in headless Chromium (``/usr/bin/chromium`` through
Playwright, never a download) ``--repeat`` times: seconds to the load event (Python's wall
time around ``page.goto(wait_until="load")`` and the page's own navigation timing), with
JavaScript on and off, and the time the "needs attention" filter takes over every row.

    python benchmarks/report.py                 # 20,000 cases, 3 rounds (+ ~1 min, once)
    python benchmarks/report.py --smoke         # 300 cases, 1 round: does it still run?
    python benchmarks/report.py --cases 5000 --repeat 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from harness import CACHE, BenchError, Runner, child_env, machine_info

from pytest_fluxloop.artifacts.reader import ExperimentFolder
from pytest_fluxloop.artifacts.writer import ExperimentWriter
from pytest_fluxloop.evaluation.run_stats import RunEvaluation
from pytest_fluxloop.evaluation.spec import EvaluationSpec
from pytest_fluxloop.records import (
    CaseEvaluation,
    ErrorInfo,
    EvaluatorResult,
    MultiTurnInfo,
    Observation,
    TraceRecord,
)

CHROMIUM = Path("/usr/bin/chromium")
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
PERSONAS = ("novice_user", "expert_user", "hurried_user", "skeptical_user")
INPUTS = 200
LONG_ANSWER = "The refund policy says, in short: " + "return within 30 days. " * 870


def _obs(trace_id: str, **fields: Any) -> Observation:
    return Observation(trace_id=trace_id, **fields)


def _turn(
    trace_id: str, i: int, turn: int, at: datetime, text: str, reply: str
) -> list[Observation]:
    """One turn: the turn event, the agent span around a tool and an LLM call, the decision."""
    ids = [f"{i:x}-{turn}-{n}" for n in range(4)]
    ms = timedelta(milliseconds=1)
    usage = {"input_tokens": 40 + i % 30, "output_tokens": 12 + i % 9, "total_tokens": 52 + i % 39}
    return [
        _obs(
            trace_id,
            type="span_start",
            name="run",
            timestamp=at,
            observation_id=ids[1],
            parent_id=ids[0],
            input={"input_text": text},
            kind="agent",
            role="agent",
        ),
        _obs(
            trace_id,
            type="span_start",
            name="lookup_order",
            timestamp=at + ms,
            observation_id=ids[2],
            parent_id=ids[1],
            input={"number": i},
            kind="tool",
            role="agent",
        ),
        _obs(
            trace_id,
            type="span_end",
            name="lookup_order",
            timestamp=at + 3 * ms,
            observation_id=ids[2],
            parent_id=ids[1],
            output=f"order {i}: shipped",
            duration_ms=2.0,
            kind="tool",
            role="agent",
        ),
        _obs(
            trace_id,
            type="span_start",
            name="openai.chat.completions",
            timestamp=at + 4 * ms,
            observation_id=ids[3],
            parent_id=ids[1],
            kind="generation",
            role="agent",
            input=[{"role": "user", "content": text}],
            metadata={"model": "gpt-4o-mini"},
        ),
        _obs(
            trace_id,
            type="span_end",
            name="openai.chat.completions",
            timestamp=at + 90 * ms,
            observation_id=ids[3],
            parent_id=ids[1],
            output=reply,
            duration_ms=86.0,
            kind="generation",
            role="agent",
            metadata={"model": "gpt-4o-mini", "usage": usage},
        ),
        _obs(
            trace_id,
            type="span_end",
            name="run",
            timestamp=at + 92 * ms,
            observation_id=ids[1],
            parent_id=ids[0],
            output=reply,
            duration_ms=92.0,
            kind="agent",
            role="agent",
        ),
        _obs(
            trace_id,
            type="turn",
            name=f"turn {turn}",
            timestamp=at + 93 * ms,
            observation_id=ids[0],
            input=text,
            output=reply,
            duration_ms=93.0,
            kind="event",
            role="agent",
            metadata={"turn": turn},
        ),
        _obs(
            trace_id,
            type="supervisor_decision",
            name="supervisor",
            timestamp=at + 95 * ms,
            output={"turn": turn, "decision": "continue" if turn < 2 else "terminate"},
            kind="event",
            role="supervisor",
        ),
    ]


def make_record(i: int) -> TraceRecord:
    """Case ``i`` of the synthetic run (deterministic)."""
    # i = iteration × 800 + persona × 200 + input: every case id is different.
    persona = PERSONAS[(i // INPUTS) % len(PERSONAS)]
    question = f"Question {i % INPUTS}: where is my order {1000 + i % INPUTS}?"
    iteration = i // (INPUTS * len(PERSONAS))
    start = T0 + timedelta(seconds=i * 0.3)
    crashed = i % 100 == 17
    verdict = "failed" if i % 20 == 3 else "unscored" if i % 100 == 41 else "passed"
    reply = LONG_ANSWER if i % 50 == 7 else f"Your order {1000 + i % INPUTS} ships today ({i})."
    follow = "Thanks. How long does shipping to Berlin take?"
    turns = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": follow},
        {"role": "assistant", "content": "Two to four business days."},
        {"role": "user", "content": "Great, thank you!"},
    ]
    trace_id = f"{i:032x}"
    observations = _turn(trace_id, i, 1, start, question, reply)
    if not crashed:
        later = start + timedelta(milliseconds=120)
        observations += _turn(trace_id, i, 2, later, follow, "Two to four business days.")
    duration = 150.0 + (i * 7919) % 900 + (4000.0 if i % 250 == 11 else 0.0)
    evaluation = CaseEvaluation(
        verdict=verdict,
        score={"passed": 1.0, "failed": 0.33}.get(verdict),
        threshold=0.7,
        method="weighted_sum",
        reason="",
        evaluators=[
            EvaluatorResult(name="answered", type="rule_based", status="passed", score=1.0),
            EvaluatorResult(
                name="helpful",
                type="llm_judge",
                status=verdict,
                score={"passed": 0.9, "failed": 0.1}.get(verdict),
                unscored_reason="invalid_output" if verdict == "unscored" else None,
                reason="Answers the question." if verdict == "passed" else "Off topic.",
            ),
        ],
    )
    return TraceRecord(
        trace_id=trace_id,
        case_id=f"in{i % INPUTS:03d}-question_{i % INPUTS}-{persona}-it{iteration}",
        iteration=iteration,
        persona=persona,
        persona_description=f"A {persona.replace('_', ' ')}",
        input=question,
        input_index=i % INPUTS,
        output=None if crashed else "Two to four business days.",
        duration_ms=duration,
        success=not crashed,
        status="error" if crashed else "success",
        error=ErrorInfo(
            kind="agent",
            type="KeyError",
            message="'order'",
            traceback="Traceback (most recent call last):\n  ...\nKeyError: 'order'",
        )
        if crashed
        else None,
        started_at=start,
        completed_at=start + timedelta(milliseconds=duration),
        multi_turn=MultiTurnInfo(
            enabled=True,
            turn_count=1 if crashed else 2,
            termination_reason="error" if crashed else "user_satisfied",
        ),
        conversation_state={"turns": turns[:1] if crashed else turns},
        token_usage={
            "agent": {"total_tokens": (52 + i % 39) * (1 if crashed else 2), "calls": 2},
            "supervisor": {"total_tokens": 210, "calls": 2},
            "judge": {"total_tokens": 380, "calls": 1},
        },
        observations=observations,
        evaluation=None if crashed else evaluation,
    )


def synthetic_experiment(cases: int) -> Path:
    """The experiment folder of ``cases`` synthetic cases, written once and kept."""
    root = CACHE / "report" / str(cases)
    ready = root / "ready"
    if ready.is_file():
        return Path(ready.read_text().strip())
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    writer = ExperimentWriter.create(
        root,
        experiment_name="report_bench",
        description=f"{cases:,} synthetic multi-turn cases for benchmarks/report.py",
        config_snapshot={"simulation": {"name": "report_bench", "iterations": cases // 800}},
        metadata={},
        seed=1,
        total_cases=cases,
    )
    run = RunEvaluation(EvaluationSpec(ks=(1, 3), by_persona=True))
    for i in range(cases):
        record = make_record(i)
        writer.append(record)
        run.add(record)
    writer.evaluation = run.finish().block
    writer.finish("complete", exit_code=1)
    written = len(ExperimentFolder.open(writer.path).summary_lines())
    if written != cases:
        raise BenchError(f"{writer.path}: {written} distinct cases written, not {cases}")
    ready.write_text(str(writer.path))
    print(f"  wrote {cases:,} cases in {time.perf_counter() - t0:.0f} s: {writer.path}")
    return writer.path


def measure_report(folder: Path, repeat: int, workdir: Path) -> dict[str, Any]:
    """``fluxloop report`` in a child process: seconds, peak RSS, file size."""
    runner = Runner(workdir, child_env(inherit=False), verbose=True)
    script = Path(sys.executable).with_name("fluxloop")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "pytest_fluxloop.cli"]
    out = workdir / "report.html"
    runs = [
        runner.run(
            [*command, "report", str(folder), "--output", str(out)], cwd=workdir, memory=True
        )
        for _ in range(repeat)
    ]
    return {
        "seconds": [round(r.wall_s, 3) for r in runs],
        "peak_rss_mib": [round((r.maxrss_kb or 0) / 1024, 1) for r in runs],
        "bytes": out.stat().st_size,
        "page": str(out),
    }


def measure_page(page_path: Path, repeat: int) -> dict[str, Any]:
    """Load times of the page in headless Chromium, with and without JavaScript."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "the playwright package is not installed"}
    if not CHROMIUM.is_file():
        return {"skipped": f"no Chromium at {CHROMIUM} (apt-get install chromium)"}
    url = page_path.resolve().as_uri()
    out: dict[str, Any] = {"load_s": [], "load_no_js_s": [], "nav_load_ms": [], "filter_s": []}
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        for _ in range(repeat):
            for javascript in (True, False):
                context = browser.new_context(java_script_enabled=javascript)
                page = context.new_page()
                errors.clear()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                t0 = time.perf_counter()
                page.goto(url, wait_until="load", timeout=120_000)
                wall = time.perf_counter() - t0
                if errors:
                    raise BenchError(f"console errors: {errors[:3]}")
                if javascript:
                    out["load_s"].append(round(wall, 3))
                    timing = page.evaluate(
                        "() => performance.getEntriesByType('navigation')[0].loadEventEnd"
                    )
                    out["nav_load_ms"].append(round(float(timing), 1))
                    t0 = time.perf_counter()
                    page.select_option("#f-o", "attention")
                    page.locator("#f-count").inner_text()
                    out["filter_s"].append(round(time.perf_counter() - t0, 3))
                else:
                    out["load_no_js_s"].append(round(wall, 3))
                context.close()
        browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="300 cases, one round")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    cases, repeat = (300, 1) if args.smoke else (args.cases, args.repeat)
    print(f"report benchmark: {cases:,} cases, {repeat} round(s)")
    folder = synthetic_experiment(cases)
    traces = folder / "traces.jsonl"
    print(f"  experiment: {folder} (traces.jsonl {traces.stat().st_size / 1e6:.0f} MB)")
    workdir = CACHE / "report" / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        report = measure_report(folder, repeat, workdir)
        page = measure_page(Path(report["page"]), repeat)
    except BenchError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    med = statistics.median
    print()
    print(
        f"cases                      {cases:,} (traces.jsonl {traces.stat().st_size / 1e6:.0f} MB)"
    )
    print(f"fluxloop report            {med(report['seconds']):.2f} s  (runs: {report['seconds']})")
    print(f"peak RSS                   {max(report['peak_rss_mib']):.0f} MiB")
    print(f"report.html                {report['bytes'] / 1e6:.2f} MB")
    if "skipped" in page:
        print(f"page load                  SKIPPED: {page['skipped']}")
    else:
        print(
            f"page load (JS on)          {med(page['load_s']):.2f} s  (runs: {page['load_s']}; "
            f"navigation timing {med(page['nav_load_ms']):.0f} ms)"
        )
        off = page["load_no_js_s"]
        print(f"page load (JS off)         {med(off):.2f} s  (runs: {off})")
        print(
            f"'needs attention' filter   {med(page['filter_s']):.2f} s  (runs: {page['filter_s']})"
        )
    if args.smoke:
        print("(smoke: the numbers mean nothing)")
    if args.json:
        data = {"cases": cases, "report": report, "page": page, "machine": machine_info()}
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
