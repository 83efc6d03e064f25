"""The one reader of experiment folders (``pytest_fluxloop.artifacts.reader``): every branch.

Folders are written by hand, line by line, the way each version wrote them (an older one has
no ``evaluation``, ``token_usage``, ``status`` or ``metadata.json``), plus one real run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.engine_helpers import isolated_imports
from support.experiment_helpers import make_project, only_experiment_dir, read_jsonl

from pytest_fluxloop.artifacts.reader import (
    ExperimentFolder,
    NewerFormatError,
    NotAnExperimentError,
    read_json_lines,
)
from pytest_fluxloop.artifacts.writer import ARTIFACT_FORMAT
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.records import TraceRecord
from pytest_fluxloop.report.figures import run_figures
from pytest_fluxloop.run import Experiment


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def write(path: Path, rows: list[Any], tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")
    return path


def line(case_id: str, trace_id: str, **fields: Any) -> dict[str, Any]:
    """A ``trace_summary.jsonl`` line as the first versions wrote it: no ``status``,
    ``attempts``, ``token_usage``, ``error_type``, ``conversation`` or ``evaluation``."""
    row = {
        "trace_id": trace_id,
        "case_id": case_id,
        "iteration": 0,
        "persona": "novice",
        "input": f"question {case_id}",
        "output": f"answer {case_id}",
        "duration_ms": 10.0,
        "success": True,
    }
    return {**row, **fields}


def record(case_id: str, trace_id: str, **fields: Any) -> dict[str, Any]:
    """A ``traces.jsonl`` record (the fields a record has always had)."""
    row = {
        **line(case_id, trace_id),
        "status": "success",
        "started_at": "2024-11-01T14:30:22Z",
        "completed_at": "2024-11-01T14:30:23Z",
        "observations": [],
    }
    return {**row, **fields}


# ----------------------------------------------------------------------- what it opens


def test_a_missing_folder_or_a_file_is_not_an_experiment(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", write(tmp_path / "file.jsonl", [])):
        with pytest.raises(NotAnExperimentError, match="no such folder; give an experiment"):
            ExperimentFolder.open(path)


def test_a_plain_folder_is_not_an_experiment(tmp_path: Path) -> None:
    write(tmp_path / "traces.jsonl", [record("a", "t1")])  # full records alone do not make one
    with pytest.raises(NotAnExperimentError) as exc:
        ExperimentFolder.open(tmp_path)
    message = str(exc.value)
    assert message == (
        f"{tmp_path}: not a FluxLoop experiment folder (no trace_summary.jsonl or summary.json)"
    )
    assert isinstance(exc.value, ConfigError)  # the CLI shows it with exit code 4


def test_a_folder_of_experiments_names_the_latest_one(tmp_path: Path) -> None:
    for name in ("exp_20240101_000000", "exp_20250101_000000"):
        write(tmp_path / name / "trace_summary.jsonl", [])
    (tmp_path / "exp_notes.txt").write_text("not a folder")
    with pytest.raises(NotAnExperimentError) as exc:
        ExperimentFolder.open(tmp_path)
    assert str(exc.value).endswith(
        f"; it holds experiment folders, e.g. {tmp_path / 'exp_20250101_000000'}"
    )


def test_a_newer_artifact_format_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "trace_summary.jsonl", [line("a", "t1")])
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"artifact_format": ARTIFACT_FORMAT + 1}), encoding="utf-8")
    with pytest.raises(NewerFormatError, match="written by pytest-fluxloop a newer version"):
        ExperimentFolder.open(tmp_path)
    meta.write_text(
        json.dumps({"artifact_format": ARTIFACT_FORMAT + 1, "fluxloop_version": "9.1"}),
        encoding="utf-8",
    )
    with pytest.raises(NewerFormatError) as exc:
        ExperimentFolder.open(tmp_path)
    assert str(exc.value) == (
        f"{tmp_path}: written by pytest-fluxloop 9.1 in artifact format {ARTIFACT_FORMAT + 1}; "
        f"this version reads format {ARTIFACT_FORMAT} and older: upgrade pytest-fluxloop to "
        "read it"
    )
    # This format, or none named (every folder before artifact_format existed), is read.
    meta.write_text(json.dumps({"artifact_format": ARTIFACT_FORMAT}), encoding="utf-8")
    assert ExperimentFolder.open(tmp_path).metadata == {"artifact_format": ARTIFACT_FORMAT}
    meta.write_text(json.dumps({"experiment_name": "old"}), encoding="utf-8")
    assert ExperimentFolder.open(tmp_path).name == "old"


@pytest.mark.parametrize("name", ["summary.json", "metadata.json"])
def test_a_summary_or_metadata_that_is_not_a_json_object_is_an_error(
    tmp_path: Path, name: str
) -> None:
    write(tmp_path / "trace_summary.jsonl", [])
    (tmp_path / name).write_text("{torn", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{name}: unreadable"):
        ExperimentFolder.open(tmp_path)
    (tmp_path / name).write_text("[1]", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{name}: not a JSON object"):
        ExperimentFolder.open(tmp_path)


def test_a_summary_alone_is_an_experiment_without_traces(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"experiment_name": "x"}))
    folder = ExperimentFolder.open(tmp_path)
    assert (folder.name, folder.summary_lines(), list(folder.iter_traces())) == ("x", [], [])
    assert (folder.has_traces, folder.has_observations) == (False, False)


# ---------------------------------------------------------------------------- lines


def test_a_torn_last_line_is_a_write_that_never_finished(tmp_path: Path) -> None:
    torn = json.dumps(line("c", "t3"))[:30]
    write(tmp_path / "trace_summary.jsonl", [line("a", "t1"), line("b", "t2")], tail=torn)
    write(tmp_path / "traces.jsonl", [record("a", "t1"), record("b", "t2")], tail=torn)
    folder = ExperimentFolder.open(tmp_path)
    assert [x["case_id"] for x in folder.summary_lines()] == ["a", "b"]
    assert [x["case_id"] for x in folder.iter_traces()] == ["a", "b"]


@pytest.mark.parametrize(
    ("bad", "problem"), [("{not json", "not a JSON line"), ("[1, 2]", "not a JSON object")]
)
def test_a_bad_line_in_the_middle_names_the_file_and_line(
    tmp_path: Path, bad: str, problem: str
) -> None:
    path = tmp_path / "trace_summary.jsonl"
    path.write_text(
        json.dumps(line("a", "t1")) + "\n\n" + bad + "\n" + json.dumps(line("b", "t2")) + "\n",
        encoding="utf-8",
    )
    folder = ExperimentFolder.open(tmp_path)
    with pytest.raises(ConfigError) as exc:
        folder.summary_lines()
    assert str(exc.value) == f"{path}:3: {problem}"
    # A bad last line that does end with its newline was written whole: also an error.
    path.write_text(json.dumps(line("a", "t1")) + "\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f":2: {problem}"):
        list(read_json_lines(path))


def test_read_json_lines_numbers_lines_and_skips_blank_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"b": 2}\n', encoding="utf-8")
    assert list(read_json_lines(path)) == [(1, {"a": 1}), (4, {"b": 2})]


# -------------------------------------------------------------------- latest per case


def test_a_resumed_run_counts_each_case_by_its_latest_line(tmp_path: Path) -> None:
    # a crashed, b passed, the run died during c; --resume ran a and c again.
    write(
        tmp_path / "trace_summary.jsonl",
        [
            line("a", "t1", success=False, status="crashed"),
            line("b", "t2"),
            line("a", "t4"),
            line("c", "t5"),
        ],
    )
    write(
        tmp_path / "traces.jsonl",
        [
            record("a", "t1", success=False, status="crashed"),
            record("b", "t2"),
            record("c", "t3"),  # written, but its summary line never was: not finished
            record("a", "t4"),
            record("c", "t5"),
        ],
    )
    folder = ExperimentFolder.open(tmp_path)
    assert [(x["case_id"], x["trace_id"]) for x in folder.summary_lines()] == [
        ("b", "t2"),
        ("a", "t4"),
        ("c", "t5"),
    ]
    assert folder.summary_lines() is folder.summary_lines()  # read once
    assert [x["trace_id"] for x in folder.iter_traces()] == ["t2", "t4", "t5"]


def test_iter_traces_streams_one_record_at_a_time(tmp_path: Path) -> None:
    write(tmp_path / "trace_summary.jsonl", [line("a", "t1"), line("b", "t2")])
    path = tmp_path / "traces.jsonl"
    path.write_text(
        json.dumps(record("a", "t1")) + "\n{broken\n" + json.dumps(record("b", "t2")) + "\n",
        encoding="utf-8",
    )
    traces = ExperimentFolder.open(tmp_path).iter_traces()
    assert next(traces)["trace_id"] == "t1"  # handed over before the rest is read
    with pytest.raises(ConfigError, match=f"{path}:2: not a JSON line"):
        next(traces)


def test_without_traces_jsonl_the_summary_lines_are_the_traces(tmp_path: Path) -> None:
    write(tmp_path / "trace_summary.jsonl", [line("a", "t1"), line("a", "t2"), line("b", "t3")])
    write(tmp_path / "observations.jsonl", [])
    folder = ExperimentFolder.open(tmp_path)
    assert (folder.has_traces, folder.has_observations) == (False, True)
    assert [x["trace_id"] for x in folder.iter_traces()] == ["t2", "t3"]


def test_an_older_folder_without_newer_fields_is_read(tmp_path: Path) -> None:
    # As the first versions wrote it: no metadata.json, no summary.json, summary lines
    # without status, token_usage, conversation or evaluation; records without kinds.
    observation = {
        "trace_id": "t1",
        "type": "span_start",
        "timestamp": "2024-11-01T14:30:22Z",
        "name": "run",
        "observation_id": "o1",
        "metadata": {"kind": "agent"},
    }
    write(
        tmp_path / "trace_summary.jsonl",
        [line("a", "t1"), line("b", "t2", success=False, error="boom")],
    )
    write(
        tmp_path / "traces.jsonl",
        [record("a", "t1", observations=[observation]), record("b", "t2", success=False)],
    )
    folder = ExperimentFolder.open(tmp_path)
    assert (folder.name, folder.summary, folder.metadata, folder.config) == (
        tmp_path.name,
        {},
        {},
        {},
    )
    records = [TraceRecord.model_validate(r) for r in folder.iter_traces()]
    assert [(r.case_id, r.evaluation, r.token_usage) for r in records] == [
        ("a", None, None),
        ("b", None, None),
    ]
    assert records[0].observations[0].kind is None  # read with its default
    figures = run_figures(folder)  # computed again from the lines: success alone
    assert figures["verdicts"] == {"none": 2}
    assert figures["reliability"]["overall"]["runs"] == 2


# --------------------------------------------------------------------------- config


def test_the_config_comes_from_the_summary_else_config_yaml(tmp_path: Path) -> None:
    write(tmp_path / "trace_summary.jsonl", [])
    assert ExperimentFolder.open(tmp_path).config == {}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"name": "from-yaml"}))
    assert ExperimentFolder.open(tmp_path).config == {"name": "from-yaml"}
    summary = {"experiment_name": "s", "config_snapshot": {"name": "from-summary"}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    folder = ExperimentFolder.open(tmp_path)
    assert (folder.config, folder.name) == ({"name": "from-summary"}, "s")
    # An empty snapshot (save_aggregated_metrics kept a bare summary) falls back too.
    (tmp_path / "summary.json").write_text(json.dumps({"config_snapshot": {}}))
    assert ExperimentFolder.open(tmp_path).config == {"name": "from-yaml"}
    for text in ("name: [unclosed", "- a list"):
        (tmp_path / "config.yaml").write_text(text)
        assert ExperimentFolder.open(tmp_path).config == {}


# ------------------------------------------------------------------------ a real run


def test_a_folder_this_version_wrote_is_read_whole(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    Experiment.load(config).run()
    exp = only_experiment_dir(tmp_path)
    folder = ExperimentFolder.open(exp)
    assert folder.name == "plain_python"
    assert folder.metadata["artifact_format"] == ARTIFACT_FORMAT
    assert folder.config["simulation"]["name"] == "plain_python"
    assert folder.summary_lines() == read_jsonl(exp / "trace_summary.jsonl")
    records = [TraceRecord.model_validate(r) for r in folder.iter_traces()]
    assert len(records) == folder.summary["total_traces"] == 6
    assert [r.trace_id for r in records] == [x["trace_id"] for x in folder.summary_lines()]
    assert run_figures(folder) == folder.summary["evaluation"]
