"""No silent loss: every case that reported a result has a written record, or the summary
says ``incomplete``, lists the missing case ids and the exit code is not a clean one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support.engine_helpers import isolated_imports
from support.experiment_helpers import make_project, only_experiment_dir

from pytest_fluxloop.artifacts.resume import ResumeState
from pytest_fluxloop.artifacts.schemas import load_schema
from pytest_fluxloop.errors import ArtifactWriteError
from pytest_fluxloop.records import ExperimentSummary, TraceRecord
from pytest_fluxloop.run import Experiment
from pytest_fluxloop.run.recorder import RunRecorder
from pytest_fluxloop.run.status import (
    EXIT_MISSING_RECORDS,
    MISSING_IDS_KEPT,
    missing_records,
    missing_warning,
    status_with_missing,
)
from pytest_fluxloop.sinks import RunEnd, RunStart


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


# --------------------------------------------------------------------- the pure rule


def test_nothing_missing_when_every_reported_case_was_written() -> None:
    assert missing_records(set(), set()) == []
    assert missing_records({"a", "b"}, {"a", "b"}) == []


def test_reported_without_a_record_is_missing_sorted() -> None:
    assert missing_records({"c", "a", "b"}, {"b"}) == ["a", "c"]


def test_written_without_a_report_is_not_missing() -> None:
    """Crash records and cases done by the resumed run are written without a report."""
    assert missing_records({"a"}, {"a", "crashed-one", "resumed-one"}) == []


def test_only_a_complete_run_becomes_incomplete() -> None:
    assert status_with_missing("complete", ["a"]) == "incomplete"
    assert status_with_missing("complete", []) == "complete"
    # Already saying the run is not whole: kept (the ids are still listed).
    assert status_with_missing("interrupted", ["a"]) == "interrupted"
    assert status_with_missing("failed", ["a"]) == "failed"


def test_exit_code_is_never_clean() -> None:
    assert EXIT_MISSING_RECORDS not in (0, 1)


def test_warning_names_the_count_the_first_ids_and_the_fix(tmp_path: Path) -> None:
    ids = [f"case-{i}" for i in range(8)]
    text = missing_warning("demo", ids, tmp_path)
    assert "8 case(s) of experiment 'demo'" in text
    assert "case-0, case-1, case-2, case-3, case-4 and 3 more" in text
    assert "case-5" not in text
    assert f"--resume {tmp_path}" in text and "incomplete" in text


def test_summary_model_defaults_and_schema_allow_the_new_fields() -> None:
    fields = ExperimentSummary.model_fields
    assert fields["missing_cases"].default == 0
    schema = load_schema("summary")
    assert "incomplete" in schema["properties"]["status"]["enum"]
    assert {"missing_cases", "missing_case_ids"} <= set(schema["properties"])


# --------------------------------------------------------------------- the recorder


class FailingOnce:
    """A sink that cannot take one case's record (like a failed write of that record)."""

    def __init__(self, case_id: str, path: Path) -> None:
        self.case_id = case_id
        self.path = path
        self.ends: list[RunEnd] = []

    @property
    def location(self) -> Path | None:
        return None

    def open(self, start: RunStart) -> None:
        pass

    def append(self, record: TraceRecord) -> None:
        if record.case_id == self.case_id:
            raise ArtifactWriteError(self.path, "Input/output error")

    def finish(self, end: RunEnd) -> ExperimentSummary | None:
        self.ends.append(end)
        return None


def _summary_on_disk(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (only_experiment_dir(root) / "summary.json").read_text(encoding="utf-8")
    )
    Draft202012Validator(load_schema("summary")).validate(data)
    return data


def test_a_whole_run_stays_complete(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    experiment = Experiment.load(config)
    experiment.prepare()
    recorder = RunRecorder.for_experiment(experiment)
    for case in experiment.cases:
        recorder.append(experiment.run_case(case).record)
    summary = recorder.finish(1, reported={c.case_id for c in experiment.cases})
    assert summary is not None
    assert (summary.status, summary.exit_code, summary.missing_cases) == ("complete", 1, 0)
    assert recorder.missing == []
    on_disk = _summary_on_disk(tmp_path)
    assert (on_disk["status"], on_disk["missing_cases"], on_disk["missing_case_ids"]) == (
        "complete",
        0,
        [],
    )


def test_a_reported_case_whose_record_never_arrived_is_incomplete(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    experiment = Experiment.load(config)
    experiment.prepare()
    recorder = RunRecorder.for_experiment(experiment)
    cases = experiment.cases
    lost = cases[2].case_id
    for case in cases:
        if case.case_id != lost:
            recorder.append(experiment.run_case(case).record)
    summary = recorder.finish(0, reported={c.case_id for c in cases})
    assert summary is not None
    assert (summary.status, summary.missing_cases, summary.missing_case_ids) == (
        "incomplete",
        1,
        [lost],
    )
    assert summary.exit_code == EXIT_MISSING_RECORDS
    assert summary.total_traces == len(cases) - 1
    on_disk = _summary_on_disk(tmp_path)
    assert (on_disk["status"], on_disk["missing_case_ids"]) == ("incomplete", [lost])


def test_a_failed_append_counts_as_missing_without_being_told(tmp_path: Path) -> None:
    """``Experiment.run`` passes no ``reported``: what it offered to ``append`` counts."""
    config, _ = make_project(tmp_path)
    experiment = Experiment.load(config)
    experiment.prepare()
    cases = experiment.cases
    failing = FailingOnce(cases[0].case_id, tmp_path / "x.jsonl")
    recorder = RunRecorder.for_experiment(experiment)
    recorder.sinks.append(failing)
    for case in cases:
        with contextlib.suppress(ArtifactWriteError):
            recorder.append(experiment.run_case(case).record)
    summary = recorder.finish(0)
    assert recorder.missing == [cases[0].case_id]
    end = failing.ends[0]
    assert (end.status, end.missing_cases, end.missing_case_ids) == (
        "incomplete",
        1,
        (cases[0].case_id,),
    )
    assert summary is not None and summary.status == "incomplete"


def test_a_stopped_run_keeps_interrupted_and_still_lists_the_missing(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    experiment = Experiment.load(config)
    experiment.prepare()
    cases = experiment.cases
    recorder = RunRecorder.for_experiment(experiment)
    recorder.append(experiment.run_case(cases[0]).record)
    summary = recorder.finish(2, stopped=True, reported={cases[0].case_id, cases[1].case_id})
    assert summary is not None
    assert (summary.status, summary.exit_code) == ("interrupted", 2)
    assert summary.missing_case_ids == [cases[1].case_id]


def test_many_missing_are_counted_all_and_listed_capped(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    experiment = Experiment.load(config)
    recorder = RunRecorder.for_experiment(experiment)
    recorder.open()
    reported = {f"case-{i:05d}" for i in range(MISSING_IDS_KEPT + 50)}
    summary = recorder.finish(0, reported=reported)
    assert summary is not None
    assert summary.missing_cases == MISSING_IDS_KEPT + 50
    assert summary.missing_case_ids == sorted(reported)[:MISSING_IDS_KEPT]


def test_cases_done_by_the_resumed_run_count_as_written(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    experiment = Experiment.load(config)
    done_id = experiment.cases[0].case_id
    recorder = RunRecorder(
        experiment,
        [],
        resumed_cases=1,
        resumed_case_ids=ResumeState(
            path=tmp_path, seed=None, started_at=None, done={done_id: {}}
        ).done.keys(),
    )
    recorder.open()
    recorder.finish(0, reported={done_id})
    assert recorder.missing == []
