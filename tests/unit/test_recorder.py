"""The run recorder: one owner for a run's records, sinks, status policy and fatal stop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.engine_helpers import isolated_imports, make_case
from support.experiment_helpers import make_project, only_experiment_dir

from pytest_fluxloop.engine.executor import CaseResult
from pytest_fluxloop.engine.record import case_record, crashed_record
from pytest_fluxloop.records import ExperimentSummary, TraceRecord
from pytest_fluxloop.run import Experiment
from pytest_fluxloop.run.recorder import RunRecorder
from pytest_fluxloop.run.status import fatal_reason, final_status
from pytest_fluxloop.sinks import RunEnd, RunStart
from pytest_fluxloop.supervisors import SupervisorError, SupervisorRequest


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


class MemorySink:
    """A second sink beside the files: remembers every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @property
    def location(self) -> Path | None:
        return None

    def open(self, start: RunStart) -> None:
        self.calls.append(("open", start))

    def append(self, record: TraceRecord) -> None:
        self.calls.append(("append", record.case_id))

    def finish(self, end: RunEnd) -> ExperimentSummary | None:
        self.calls.append(("finish", end))
        return None


class Listener:
    def __init__(self) -> None:
        self.records: list[tuple[str, Path | None]] = []
        self.finished: list[ExperimentSummary] = []

    def record_written(self, record: TraceRecord, location: Path | None) -> None:
        self.records.append((record.case_id, location))

    def experiment_finished(self, summary: ExperimentSummary, location: Path | None) -> None:
        self.finished.append(summary)


@pytest.mark.parametrize(
    ("exit_code", "flags", "expected"),
    [
        (0, {}, "complete"),
        (1, {}, "complete"),
        (None, {}, "complete"),
        (2, {}, "interrupted"),
        (None, {"cut_off": True}, "interrupted"),
        (1, {"stopped": True, "unfinished": True}, "interrupted"),
        (1, {"stopped": True, "unfinished": False}, "complete"),
        (1, {"stopped": False, "unfinished": True}, "complete"),  # -k deselected some
        (3, {}, "failed"),
        (4, {}, "failed"),
    ],
)
def test_final_status_policy(exit_code: int | None, flags: dict[str, bool], expected: str) -> None:
    assert final_status(exit_code, **flags) == expected


def test_fatal_reason_only_for_fatal_results() -> None:
    record = case_record(make_case(), status="error")
    assert fatal_reason(CaseResult(record)) is None
    crashed = crashed_record(make_case(), "worker gw1 died", "gw1")
    reason = fatal_reason(CaseResult(crashed, fatal=True))
    assert reason == "pytest-fluxloop: stopping the run: WorkerCrashed: worker gw1 died"


def test_crashed_record_is_built_from_the_case_like_any_other() -> None:
    case = make_case("hi", persona="expert", iteration=3, metadata={"k": 1})
    record = crashed_record(case, "boom", "gw0")
    assert (record.case_id, record.input, record.persona, record.iteration) == (
        case.case_id,
        "hi",
        "expert",
        3,
    )
    assert record.status == "crashed" and not record.success
    assert record.error is not None and record.error.kind == "infrastructure"
    assert record.metadata == {"k": 1} and record.seed == case.seed
    assert (record.worker, record.test_outcome) == ("gw0", "failed")


def test_every_sink_sees_every_record_in_order_and_the_listener_follows(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    experiment = Experiment.load(config)
    experiment.prepare()
    listener = Listener()
    recorder = RunRecorder.for_experiment(experiment, listener=listener)
    memory = MemorySink()
    recorder.sinks.append(memory)
    results = [experiment.run_case(case) for case in experiment.cases]
    for result in results:
        recorder.append(result.record)
    summary = recorder.finish(0)

    ids = [r.record.case_id for r in results]
    kinds = [name for name, _ in memory.calls]
    assert kinds == ["open"] + ["append"] * len(ids) + ["finish"]
    assert [value for name, value in memory.calls if name == "append"] == ids
    start: RunStart = memory.calls[0][1]
    assert start.experiment_name == "plain_python" and start.total_cases == len(ids)
    assert start.metadata["target"].endswith(":run")
    end: RunEnd = memory.calls[-1][1]
    assert (end.status, end.exit_code, end.total_cases) == ("complete", 0, len(ids))

    folder = only_experiment_dir(tmp_path)
    assert recorder.location == folder
    assert [case_id for case_id, _ in listener.records] == ids
    assert all(location == folder for _, location in listener.records)
    assert summary is not None and listener.finished == [summary]
    assert (recorder.records, recorder.failed) == (6, 2)
    on_disk = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["status"] == "complete" and on_disk["total_traces"] == 6
    assert recorder.finish(0) is summary  # once


def test_stopped_with_cases_left_is_interrupted(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    experiment = Experiment.load(config)
    recorder = RunRecorder.for_experiment(experiment)
    recorder.append(experiment.run_case(experiment.cases[0]).record)
    summary = recorder.finish(1, stopped=True)
    assert summary is not None
    assert summary.status == "interrupted" and summary.total_traces == 1


class FatalSupervisor:
    """Fails like a bad API key would: fatal, the first time and every time after."""

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, request: SupervisorRequest) -> Any:
        self.calls += 1
        raise SupervisorError(
            "supervisor auth (provider openai): HTTP 401", code="auth", fatal=True
        )


def test_experiment_run_stops_once_on_a_fatal_provider_error(tmp_path: Path) -> None:
    """Like the pytest controller: reported once, no more cases, summary interrupted."""
    config, _ = make_project(tmp_path, multi_turn={"enabled": True, "max_turns": 3})
    supervisor = FatalSupervisor()
    listener = Listener()
    experiment = Experiment.load(config, supervisor_hook=lambda settings: supervisor)
    summary = experiment.run(listener=listener)

    # The supervisor is first asked after an agent that answered; cases before that one
    # failed in the agent itself (inputs with "fail") and never reached the supervisor.
    inputs = [case.input for case in experiment.cases]
    first_answer = next(i for i, text in enumerate(inputs) if "fail" not in text)
    assert supervisor.calls == 1
    assert summary.status == "interrupted"
    assert summary.total_traces == first_answer + 1 < 6 and summary.total_cases == 6
    assert summary.by_status.get("supervisor_error") == 1
    assert len(listener.records) == first_answer + 1 and listener.finished == [summary]
    lines = (only_experiment_dir(tmp_path) / "traces.jsonl").read_text(encoding="utf-8")
    last = json.loads(lines.splitlines()[-1])
    assert last["error"]["type"] == "SupervisorError.auth"
