"""parallel_runs: N cases in flight, items reporting in order, pacing, cancellation, crashes."""

from __future__ import annotations

import itertools

import pytest
from support.plugin_helpers import Project

# Every test here runs real pytester sessions of 0.2-0.3 s agents (some under xdist): 2-11 s each.
pytestmark = pytest.mark.slow

N_INPUTS = 12
INPUTS = "generated_inputs:\n" + "".join(f"  - input: 'q{i:02d}'\n" for i in range(N_INPUTS))

# Each call records how many calls were in flight when it started (a real concurrency probe).
SYNC_AGENT = """\
import threading, time
_lock = threading.Lock()
_inflight = 0

def run(input_text):
    global _inflight
    with _lock:
        _inflight += 1
        seen = _inflight
    try:
        time.sleep(0.3)
        return {"inflight": seen, "thread": threading.current_thread().name}
    finally:
        with _lock:
            _inflight -= 1
"""

ASYNC_AGENT = """\
import asyncio
_inflight = 0
_loops = set()

async def run(input_text):
    global _inflight
    _inflight += 1
    seen = _inflight
    _loops.add(id(asyncio.get_running_loop()))
    try:
        await asyncio.sleep(0.3)
        return {"inflight": seen, "loops": len(_loops)}
    finally:
        _inflight -= 1
"""


def _config(project: Project, parallel: int, extra: str = "") -> None:
    cfg = project.root / "configs" / "simulation.yaml"
    cfg.write_text(cfg.read_text() + f"parallel_runs: {parallel}\n{extra}")


def _outputs(project: Project, output: str = "experiments") -> list[dict]:
    exp = project.only_experiment(output)
    return [t["output"] for t in project.jsonl(exp / "traces.jsonl")]


@pytest.mark.parametrize("agent", [SYNC_AGENT, ASYNC_AGENT], ids=["sync", "async"])
def test_parallel_runs_keeps_n_cases_in_flight(project: Project, agent: str) -> None:
    project.setup(inputs=INPUTS, agent=agent)
    _config(project, 4)
    result = project.pytester.runpytest_subprocess(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", "-v"
    )
    result.assert_outcomes(passed=N_INPUTS)
    peaks = [o["inflight"] for o in _outputs(project)]
    assert max(peaks) >= 2, peaks  # really concurrent
    assert max(peaks) <= 4, peaks  # and bounded by parallel_runs
    if agent is ASYNC_AGENT:
        # Every async case ran on one shared event loop.
        assert max(o["loops"] for o in _outputs(project)) == 1


def test_items_report_in_collection_order(project: Project) -> None:
    project.setup(inputs=INPUTS, agent=SYNC_AGENT)
    _config(project, 6)
    collected = project.pytester.runpytest_subprocess(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", "--collect-only", "-q"
    )
    order = [line for line in collected.outlines if "::demo[" in line]
    ran = project.pytester.runpytest_subprocess(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", "-v"
    )
    reported = [line.split(" ")[0] for line in ran.outlines if " PASSED" in line]
    assert reported == order
    # Records are appended as items report, so traces.jsonl follows the same order.
    exp = project.only_experiment()
    ids = [t["case_id"] for t in project.jsonl(exp / "traces.jsonl")]
    assert ids == [line.split("[", 1)[1].rstrip("]") for line in order]


def test_parallel_one_runs_in_the_item_thread(project: Project) -> None:
    project.setup(inputs=INPUTS, agent=SYNC_AGENT)
    _config(project, 1)
    project.pytester.runpytest("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    assert {o["inflight"] for o in _outputs(project)} == {1}


def test_run_delay_paces_starts_under_concurrency(project: Project) -> None:
    agent = "import time\n\ndef run(input_text):\n    return time.monotonic()\n"
    project.setup(inputs=INPUTS, agent=agent)
    _config(project, 4, "run_delay_seconds: 0.2\n")
    project.pytester.runpytest_subprocess(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider"
    ).assert_outcomes(passed=N_INPUTS)
    starts = sorted(_outputs(project))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.15, gaps  # a rate limit even with 4 in flight


def test_exitfirst_cancels_pending_cases(project: Project) -> None:
    agent = """\
import time, pathlib

def run(input_text):
    with open(pathlib.Path(__file__).with_name("calls.log"), "a") as fh:
        fh.write(input_text + "\\n")
    time.sleep(0.2)
    if input_text == "q00":
        raise ValueError("first case fails")
    return input_text
"""
    project.setup(inputs=INPUTS, agent=agent)
    _config(project, 3, "seed: 5\n")
    cfg = project.root / "configs" / "simulation.yaml"
    cfg.write_text(cfg.read_text().replace("seed: 42\n", ""))
    result = project.pytester.runpytest_subprocess(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", "-x"
    )
    assert result.ret == 1
    calls = (project.root / "calls.log").read_text().split()
    assert len(calls) < N_INPUTS  # pending cases were never started
    exp = project.only_experiment()
    assert project.summary(exp)["status"] == "interrupted"
    traces = project.jsonl(exp / "traces.jsonl")
    assert len(traces) == project.summary(exp)["total_traces"]


def test_xdist_with_parallel_runs_matches_serial(project: Project) -> None:
    pytest.importorskip("xdist")
    project.setup(inputs=INPUTS, agent=SYNC_AGENT, iterations=2)
    _config(project, 3)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    project.pytester.runpytest_subprocess(*base, "--fluxloop-output-dir", "serial")
    project.pytester.runpytest_subprocess(*base, "-n", "2", "--fluxloop-output-dir", "par")

    def ids(output: str) -> list[str]:
        exp = project.only_experiment(output)
        return sorted(t["case_id"] for t in project.jsonl(exp / "traces.jsonl"))

    assert ids("serial") == ids("par")
    assert len(ids("par")) == 2 * N_INPUTS


def test_crashed_xdist_worker_is_a_crashed_record(project: Project) -> None:
    pytest.importorskip("xdist")
    agent = """\
import os

def run(input_text):
    if input_text == "q03":
        os._exit(3)  # the worker process dies mid-case
    return input_text
"""
    project.setup(inputs=INPUTS, agent=agent)
    result = project.pytester.runpytest_subprocess(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", "-n", "2"
    )
    result.assert_outcomes(passed=N_INPUTS - 1, failed=1)
    exp = project.only_experiment()
    traces = project.jsonl(exp / "traces.jsonl")
    assert len(traces) == N_INPUTS
    assert len({t["case_id"] for t in traces}) == N_INPUTS  # nothing duplicated
    crashed = [t for t in traces if t["status"] == "crashed"]
    assert len(crashed) == 1 and crashed[0]["input"] == "q03"
    assert crashed[0]["error"]["kind"] == "infrastructure"
    summary = project.summary(exp)
    assert summary["by_status"].get("crashed") == 1
