"""``-n 2`` with ``parallel_runs > 1``: every case runs once, and a crash blames its own case.

Issue 8, item 7. Real xdist runs inside pytester; the agent counts its calls in a file under
``fcntl.flock`` (workers share no memory), and a crash is a real ``os._exit`` of the worker.
Before the fix, worksteal handed another worker items whose cases were already running ahead
in their first worker (101-106 calls for 100 cases), and when a case running ahead killed its
worker, xdist's current item (a healthy case) was recorded as ``crashed``.
"""

from __future__ import annotations

import collections
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.plugin_helpers import Project

from pytest_fluxloop.plugin.xdist import (
    CRASHED,
    NO_CRASH_RECORD_ATTR,
    SUSPECT,
    ControllerHooks,
    CrashLedger,
)

COUNTING = """\
import fcntl, os, pathlib, time

def count(input_text):
    with open(pathlib.Path(__file__).with_name("calls.log"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(f"{input_text} {os.environ.get('PYTEST_XDIST_WORKER')}\\n")
"""


def _inputs(count: int) -> str:
    return "generated_inputs:\n" + "".join(f"  - input: 'q{i:03d}'\n" for i in range(count))


def _setup(project: Project, count: int, parallel: int, agent: str) -> None:
    project.setup(inputs=_inputs(count), agent=COUNTING + agent)
    cfg = project.root / "configs" / "simulation.yaml"
    cfg.write_text(cfg.read_text() + f"parallel_runs: {parallel}\n")


def _calls(project: Project) -> collections.Counter[str]:
    lines = (project.root / "calls.log").read_text().splitlines()
    return collections.Counter(line.split()[0] for line in lines)


@pytest.mark.slow
def test_every_case_runs_once_while_worksteal_rebalances(project: Project) -> None:
    pytest.importorskip("xdist")
    # gw0 is slow, so gw1 keeps running dry and stealing from gw0's queue, down to the items
    # whose cases gw0 already runs ahead (8 in flight).
    agent = """
def run(input_text):
    count(input_text)
    time.sleep(0.1 if os.environ.get("PYTEST_XDIST_WORKER") == "gw0" else 0.001)
    return input_text
"""
    _setup(project, 100, 8, agent)
    result = project.pytester.runpytest_subprocess(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", "-n", "2"
    )
    result.assert_outcomes(passed=100)
    calls = _calls(project)
    assert sum(calls.values()) == 100, [case for case, n in calls.items() if n > 1]
    assert set(calls.values()) == {1}
    traces = project.jsonl(project.only_experiment() / "traces.jsonl")
    assert len(traces) == 100 and len({t["case_id"] for t in traces}) == 100
    # Stealing still rebalances: the fast worker ran more than its first half.
    by_worker = collections.Counter(t["worker"] for t in traces)
    assert by_worker["gw1"] > 50, by_worker


@pytest.mark.slow
def test_only_the_case_that_crashed_its_worker_is_recorded_crashed(project: Project) -> None:
    pytest.importorskip("xdist")
    # q003 kills its worker while other cases of that worker are in flight (run ahead, or
    # xdist's current item): only q003 may be recorded as crashed.
    agent = """
def run(input_text):
    count(input_text)
    if input_text == "q003":
        time.sleep(0.1)
        os._exit(3)
    time.sleep(0.3)
    return input_text
"""
    _setup(project, 12, 3, agent)
    result = project.pytester.runpytest_subprocess(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", "-n", "2"
    )
    result.assert_outcomes(passed=11, failed=1)
    traces = project.jsonl(project.only_experiment() / "traces.jsonl")
    assert len(traces) == 12
    assert len({t["case_id"] for t in traces}) == 12  # no second record for any case
    statuses = {t["input"]: t["status"] for t in traces}
    assert statuses.pop("q003") == "crashed"
    assert set(statuses.values()) == {"success"}
    summary = project.summary(project.only_experiment())
    assert summary["by_status"].get("crashed") == 1
    # Cases in flight on a worker that died are run again; nothing else is.
    calls = _calls(project)
    assert max(calls.values()) <= 2, calls
    assert sum(n - 1 for n in calls.values()) <= 2 * 3  # at most 3 in flight per crash


# --------------------------------------------------------------------------- the blame rules


class _Sched:
    def __init__(self) -> None:
        self.pending: list[str] = []

    def mark_test_pending(self, item: str) -> None:
        self.pending.append(item)


def _crash(hooks: ControllerHooks, case_id: str, worker: str = "gw1") -> tuple[Any, _Sched]:
    nodeid = f"configs/simulation.yaml::demo[{case_id}]"
    report = pytest.TestReport(
        nodeid=nodeid,
        location=(nodeid, None, nodeid),
        keywords={},
        outcome="failed",
        longrepr=f"worker {worker!r} crashed while running {nodeid!r}",
        when="???",  # type: ignore[arg-type]
    )
    report.node = SimpleNamespace(gateway=SimpleNamespace(id=worker))  # type: ignore[attr-defined]
    sched = _Sched()
    hooks.pytest_handlecrashitem(crashitem=nodeid, report=report, sched=sched)
    return report, sched


@pytest.fixture
def hooks(tmp_path: Path) -> ControllerHooks:
    made = ControllerHooks(seed=1, experiment_name="demo", on_selected=None)
    made.ledger = CrashLedger(tmp_path)
    return made


def _in_flight(ledger: CrashLedger, worker: str, *case_ids: str) -> None:
    folder = ledger.root / worker
    folder.mkdir(exist_ok=True)
    for case_id in case_ids:
        (folder / case_id).touch()


def test_xdist_item_alone_in_flight_keeps_the_blame(hooks: ControllerHooks) -> None:
    assert hooks.ledger is not None
    _in_flight(hooks.ledger, "gw1", "c1")
    report, sched = _crash(hooks, "c1")
    assert report.outcome == "failed" and sched.pending == []
    assert hooks.ledger.verdicts() == {}


def test_another_case_alone_in_flight_is_the_culprit(hooks: ControllerHooks) -> None:
    assert hooks.ledger is not None
    _in_flight(hooks.ledger, "gw1", "ahead")
    report, sched = _crash(hooks, "current")
    # The current item is run again (no record now); the culprit is recorded by the worker
    # that gets its item, without running it again.
    assert report.outcome == "rerun" and sched.pending == [report.nodeid]
    assert hooks.ledger.verdicts() == {"ahead": (CRASHED, "gw1")}


def test_several_in_flight_are_each_run_again_alone(hooks: ControllerHooks) -> None:
    assert hooks.ledger is not None
    _in_flight(hooks.ledger, "gw1", "current", "ahead1", "ahead2")
    report, sched = _crash(hooks, "current")
    assert report.outcome == "rerun" and sched.pending == [report.nodeid]
    assert hooks.ledger.verdicts() == {
        name: (SUSPECT, "gw1") for name in ("current", "ahead1", "ahead2")
    }
    # Run alone, it crashes again: now it is blamed, whoever else was in flight before.
    _in_flight(hooks.ledger, "gw3", "current")
    report, sched = _crash(hooks, "current", worker="gw3")
    assert report.outcome == "failed" and sched.pending == []


def test_an_item_that_already_reported_gets_no_second_record(hooks: ControllerHooks) -> None:
    assert hooks.ledger is not None
    nodeid = "configs/simulation.yaml::demo[done]"
    reported = SimpleNamespace(nodeid=nodeid, fluxloop_record={"case_id": "done"})
    hooks.pytest_runtest_logreport(reported)  # type: ignore[arg-type]
    _in_flight(hooks.ledger, "gw1", "ahead")
    report, sched = _crash(hooks, "done")
    assert getattr(report, NO_CRASH_RECORD_ATTR, False) is True
    assert sched.pending == []  # not run again either
    assert hooks.ledger.verdicts() == {"ahead": (CRASHED, "gw1")}
