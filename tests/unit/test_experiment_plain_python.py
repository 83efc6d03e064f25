"""``Experiment.load(path).run()`` from plain Python, without pytest collecting anything."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.engine_helpers import isolated_imports
from support.experiment_helpers import make_project, only_experiment_dir, read_jsonl

from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.run import Experiment

EXPECTED_FILES = {
    "summary.json",
    "traces.jsonl",
    "trace_summary.jsonl",
    "observations.jsonl",
    "config.yaml",
}


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    # Experiment.run() activates the workspace: sys.path and the cwd change.
    with isolated_imports():
        yield


def test_run_writes_artifacts_and_returns_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = make_project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the caller's cwd doesn't matter

    experiment = Experiment.load(config)
    assert experiment.name == "plain_python"
    assert len(experiment.cases) == 6  # 3 inputs × 2 iterations
    assert experiment.notices == []
    summary = experiment.run()

    assert summary.experiment_name == "plain_python"
    assert summary.status == "complete"
    assert summary.total_cases == 6
    assert summary.total_traces == 6
    assert summary.successful == 4
    assert summary.failed == 2
    assert summary.by_status == {"success": 4, "error": 2}
    assert summary.seed == 7
    assert summary.avg_duration_ms >= 0

    exp_dir = only_experiment_dir(tmp_path)
    assert exp_dir.name.startswith("exp_")
    assert {p.name for p in exp_dir.iterdir()} >= EXPECTED_FILES

    on_disk = json.loads((exp_dir / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["experiment_name"] == "plain_python"
    assert on_disk["status"] == "complete"
    assert (on_disk["total_traces"], on_disk["successful"], on_disk["failed"]) == (6, 4, 2)

    traces = read_jsonl(exp_dir / "traces.jsonl")
    assert len(traces) == 6
    assert sorted(t["case_id"] for t in traces) == sorted(c.case_id for c in experiment.cases)
    assert {t["iteration"] for t in traces} == {0, 1}
    by_input = {t["input"]: t for t in traces}
    assert by_input["How do I start? 🚀"]["output"] == "[novice] How do I start? 🚀 ✓"
    assert by_input["Multi\nline question"]["output"] == "[expert] Multi\nline question ✓"
    failed = by_input["Please fail now"]
    assert failed["success"] is False
    assert failed["status"] == "error"
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["kind"] == "agent"

    summary_lines = read_jsonl(exp_dir / "trace_summary.jsonl")
    assert len(summary_lines) == 6
    assert {s["trace_id"] for s in summary_lines} == {t["trace_id"] for t in traces}
    assert sum(s["success"] for s in summary_lines) == 4

    observations = read_jsonl(exp_dir / "observations.jsonl")
    assert len(observations) == 6 * 3  # span_start, event, span_end per case
    assert {o["trace_id"] for o in observations} == {t["trace_id"] for t in traces}
    assert {o["type"] for o in observations} == {"span_start", "event", "span_end"}

    snapshot = yaml.safe_load((exp_dir / "config.yaml").read_text(encoding="utf-8"))
    assert "plain_python" in json.dumps(snapshot)


def test_cases_can_be_run_one_at_a_time(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, iterations=1)
    experiment = Experiment.load(config)
    results = [experiment.run_case(case) for case in experiment.cases]
    assert [r.record.case_id for r in results] == [c.case_id for c in experiment.cases]
    assert sum(r.record.success for r in results) == 2
    assert not (tmp_path / "experiments").exists()  # run_case writes no artifacts


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"replay_args": {"enabled": True}}, ["replay_args", "does not exist"]),
    ],
    ids=["replay_without_recordings"],
)
def test_settings_that_cannot_run_are_refused_up_front(
    tmp_path: Path, setting: dict[str, Any], words: list[str]
) -> None:
    config, module = make_project(tmp_path, **setting)
    with pytest.raises(ConfigError) as info:
        Experiment.load(config).run()
    message = str(info.value)
    for word in words:
        assert word in message
    assert str(config) in message  # names the file
    # Not silently run single-turn: nothing ran, nothing was written.
    assert not (tmp_path / "experiments").exists()
    assert module not in sys.modules  # the agent was not even imported


def test_parallel_runs_runs_from_plain_python(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, parallel_runs=4, iterations=2)
    experiment = Experiment.load(config)
    assert experiment.notices == []  # parallel_runs is in effect, nothing to warn about
    summary = experiment.run()
    assert (summary.total_traces, summary.successful, summary.failed) == (6, 4, 2)
    exp = next((tmp_path / "experiments").glob("exp_*"))
    lines = (exp / "traces.jsonl").read_text(encoding="utf-8").splitlines()
    # Records are written in case order even when cases finish out of order.
    written = [json.loads(line)["case_id"] for line in lines]
    assert written == [case.case_id for case in experiment.cases]


def test_output_root_override(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, iterations=1)
    out = tmp_path / "custom_out"
    summary = Experiment.load(config).run(output_root=out)
    assert summary.total_traces == 3
    dirs = list(out.glob("exp_*"))
    assert len(dirs) == 1
    assert {p.name for p in dirs[0].iterdir()} >= EXPECTED_FILES
    assert not (tmp_path / "experiments").exists()
