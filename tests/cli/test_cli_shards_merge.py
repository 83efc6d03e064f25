"""CI shards end to end: ``fluxloop run experiment --shard K/N`` and ``fluxloop merge``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli_helpers import describe, run_cli
from support.experiment_helpers import make_project, read_jsonl

pytestmark = pytest.mark.slow

VOLATILE = {"trace_id", "duration_ms"}


def _run(project: Path, *args: str) -> Path:
    """Run the project into a fresh output dir; its one experiment folder."""
    out = args[args.index("--output-dir") + 1]
    proc = run_cli("run", "experiment", "--yes", "--no-display", *args, cwd=project)
    assert proc.returncode in (0, 1), describe(proc)  # the project has a failing input
    [folder] = sorted((project / out).glob("exp_*"))
    return folder


def _rows(folder: Path) -> dict[str, dict[str, Any]]:
    rows = read_jsonl(folder / "trace_summary.jsonl")
    by_id = {row["case_id"]: {k: v for k, v in row.items() if k not in VOLATILE} for row in rows}
    assert len(by_id) == len(rows)
    return by_id


def _summary(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_project(tmp_path)
    return tmp_path


def _shards(project: Path, count: int = 3) -> list[Path]:
    return [
        _run(project, "--shard", f"{k}/{count}", "--output-dir", f"shards/{k}")
        for k in range(1, count + 1)
    ]


def test_merged_shards_equal_the_single_run(project: Path) -> None:
    single = _run(project, "--output-dir", "single")
    shards = _shards(project)
    for k, folder in enumerate(shards, start=1):
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        assert f"; shard {k}/3: " in meta["plan"]
        assert _summary(folder)["total_traces"] == 2  # 3 groups of 2 iterations, one each
    proc = run_cli("merge", *shards, "--output", "merged", cwd=project)
    assert proc.returncode == 0, describe(proc)
    merged = project / "merged"
    assert "status complete" in proc.stdout
    assert _rows(merged) == _rows(single)
    names = {
        "config.yaml",
        "metadata.json",
        "summary.json",
        "trace_summary.jsonl",
        "traces.jsonl",
        "observations.jsonl",
    }
    assert {p.name for p in merged.iterdir()} == names
    got, want = _summary(merged), _summary(single)
    for key in (
        "status",
        "total_cases",
        "total_traces",
        "successful",
        "failed",
        "by_status",
        "by_error_kind",
        "seed",
        "experiment_name",
        "exit_code",
    ):
        assert got[key] == want[key], key
    assert got["merge"]["shards"] == ["1/3", "2/3", "3/3"]
    assert got["merge"]["missing_shards"] == []
    strip = lambda c: {**c, "simulation": {**c["simulation"], "output_directory": None}}  # noqa: E731
    assert strip(yaml.safe_load((merged / "config.yaml").read_text())) == strip(
        yaml.safe_load((single / "config.yaml").read_text())
    )
    traces = {r["case_id"]: r for r in read_jsonl(merged / "traces.jsonl")}
    assert set(traces) == set(_rows(single))
    observed = {o["trace_id"] for o in read_jsonl(merged / "observations.jsonl")}
    assert observed == {r["trace_id"] for r in traces.values()}

    # The output folder is not replaced unless asked.
    again = run_cli("merge", *shards, "--output", "merged", cwd=project)
    assert again.returncode == 4, describe(again)
    assert "exists" in again.stderr and "--overwrite" in again.stderr
    again = run_cli("merge", *shards, "--output", "merged", "--overwrite", cwd=project)
    assert again.returncode == 0, describe(again)
    assert _rows(merged) == _rows(single)


def test_missing_shard_is_incomplete_and_named(project: Path) -> None:
    shards = _shards(project)
    proc = run_cli("merge", shards[0], shards[2], "--output", "partial", cwd=project)
    assert proc.returncode == 0, describe(proc)
    assert "Missing shards: 2/3" in proc.stdout
    summary = _summary(project / "partial")
    assert summary["status"] == "incomplete"
    assert summary["merge"]["missing_shards"] == ["2/3"]
    assert summary["total_cases"] == 6
    assert summary["total_traces"] == 4


def test_folders_of_different_experiments_are_refused(project: Path) -> None:
    first = _run(project, "--shard", "1/2", "--output-dir", "a")
    other = _run(project, "--shard", "2/2", "--iterations", "3", "--output-dir", "b")
    proc = run_cli("merge", first, other, "--output", "merged", cwd=project)
    assert proc.returncode == 4, describe(proc)
    assert "not the same experiment" in proc.stderr
    assert "simulation.iterations" in proc.stderr
    assert str(first) in proc.stderr and str(other) in proc.stderr
    assert not (project / "merged").exists()


def test_different_shard_counts_are_refused(project: Path) -> None:
    first = _run(project, "--shard", "1/2", "--output-dir", "a")
    other = _run(project, "--shard", "2/3", "--output-dir", "b")
    proc = run_cli("merge", first, other, "--output", "merged", cwd=project)
    assert proc.returncode == 4, describe(proc)
    assert "different numbers of shards" in proc.stderr


def test_bad_shard_option_is_a_usage_error(project: Path) -> None:
    proc = run_cli("run", "experiment", "--yes", "--shard", "4/3", cwd=project)
    assert proc.returncode == 4, describe(proc)
    assert "--shard: '4/3'" in proc.stderr


def test_latest_attempt_wins(project: Path) -> None:
    shards = _shards(project)
    rerun = _run(project, "--shard", "1/3", "--output-dir", "rerun")
    # Make the rerun's attempts distinguishable: a later, different output for one case.
    lines = read_jsonl(rerun / "traces.jsonl")
    target = lines[0]["case_id"]
    for path in (rerun / "traces.jsonl", rerun / "trace_summary.jsonl"):
        rows = read_jsonl(path)
        for row in rows:
            if row["case_id"] == target:
                row["output"] = "from the rerun"
                row["completed_at"] = "2999-01-01T00:00:00Z" if "started_at" in row else None
                if row["completed_at"] is None:
                    del row["completed_at"]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # Rerun given first: it still wins (later attempt), and the case is counted once.
    proc = run_cli("merge", rerun, *shards, "--output", "merged", cwd=project)
    assert proc.returncode == 0, describe(proc)
    rows = _rows(project / "merged")
    assert rows[target]["output"] == "from the rerun"
    assert _summary(project / "merged")["total_traces"] == 6

    # Within one folder, the last line of a case wins (as --resume reads it).
    folder = shards[1]
    case = read_jsonl(folder / "trace_summary.jsonl")[0]["case_id"]
    for name in ("traces.jsonl", "trace_summary.jsonl"):
        rows_ = read_jsonl(folder / name)
        extra = next(dict(r) for r in rows_ if r["case_id"] == case)
        extra["trace_id"] = "later-attempt"
        extra["output"] = "second attempt"
        with (folder / name).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(extra) + "\n")
    proc = run_cli("merge", *shards, "--output", "merged2", cwd=project)
    assert proc.returncode == 0, describe(proc)
    assert _rows(project / "merged2")[case]["output"] == "second attempt"
    assert _summary(project / "merged2")["total_traces"] == 6
