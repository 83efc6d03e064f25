"""``fluxloop run experiment --cassettes MODE`` in a real subprocess (issue 14).

The project is :mod:`support.cassette_project`'s multi-turn one (an openai supervisor and an
agent making two openai calls per turn against :mod:`support.sim_llm`), laid out the way
``fluxloop init project`` does it (``fluxloop/<name>/``) and run from the folder above with
``--project``, so the cassettes must land in the project, not in the working directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.cassette_project import (
    CALLS_PER_CASE,
    DEAD_URL,
    EXPERIMENT,
    SIM_TURNS,
    cassette_dir,
    cassette_files,
    environment,
    results_dir,
    run_env,
    stable_summary,
    summary,
    write_project,
)
from support.cli_helpers import describe, run_cli
from support.sim_llm import running_sim_server

pytestmark = pytest.mark.slow

PROJECT = "castest"
CASES = ("in00-hello_there-novice_user-it0", "in01-refund_please-expert_user-it0")


def project_root(tmp_path: Path) -> Path:
    root = tmp_path / "fluxloop" / PROJECT
    write_project(root, inputs=2)
    return root


def fluxloop_run(tmp_path: Path, *args: str, url: str = DEAD_URL, keys: bool = False) -> Any:
    """``fluxloop run experiment --project castest --yes ARGS`` from ``tmp_path``, with CI
    unset and the supervisor's key only with ``keys``."""
    env = {k: v for k, v in run_env(url=url, keys=keys).items() if v is not None}
    with environment({"CI": None}):
        return run_cli(
            "run", "experiment", "--project", PROJECT, "--yes", *args, cwd=tmp_path, env=env
        )


def results(proc: Any, cwd: Path) -> Path:
    """The results folder the CLI's last line names (relative to the working directory)."""
    found = [line for line in proc.stdout.splitlines() if line.startswith("Results: ")]
    assert len(found) == 1, describe(proc)
    path = Path(found[0].removeprefix("Results: "))
    return path if path.is_absolute() else cwd / path


def test_record_then_replay(tmp_path: Path) -> None:
    root = project_root(tmp_path)
    with running_sim_server(turns=SIM_TURNS) as server:
        record = fluxloop_run(tmp_path, "--cassettes", "record", url=server.openai_url, keys=True)
        calls = server.count
    assert record.returncode == 0, describe(record)
    assert calls == 2 * CALLS_PER_CASE
    assert (
        f"[INFO] Cassettes: record (fluxloop/{PROJECT}/cassettes/{EXPERIMENT})" in record.stdout
    ), describe(record)
    folder = cassette_dir(root)
    assert [p.name for p in cassette_files(root)] == [f"{case}.json" for case in CASES]
    assert not (tmp_path / "cassettes").exists()  # the project's root, not the cwd
    recorded = {p.name: p.read_bytes() for p in cassette_files(root)}
    for name, data in recorded.items():
        assert json.loads(data)["case_id"] == name.removesuffix(".json")

    # Offline: nothing listens at the URL, and the cassettes answer every call.
    replay = fluxloop_run(tmp_path, "--cassettes", "replay", keys=True)
    assert replay.returncode == 0, describe(replay)
    line = (
        f"cassettes (replay, {folder}): {2 * CALLS_PER_CASE} calls replayed, 0 recorded, 0 missed"
    )
    assert line in replay.stdout.splitlines(), describe(replay)
    assert f"[INFO] Cassettes: replay (fluxloop/{PROJECT}/cassettes/{EXPERIMENT})" in replay.stdout
    assert {p.name: p.read_bytes() for p in cassette_files(root)} == recorded

    recorded_run = results_dir(record.stdout)
    replayed_run = results_dir(replay.stdout)
    assert recorded_run != replayed_run
    assert results(replay, tmp_path) == replayed_run
    assert stable_summary(replayed_run) == stable_summary(recorded_run)
    assert summary(replayed_run)["cassettes"]["replayed"] == 2 * CALLS_PER_CASE
    assert summary(replayed_run)["exit_code"] == 0


def test_replay_needs_no_api_key(tmp_path: Path) -> None:
    root = project_root(tmp_path)
    with running_sim_server(turns=SIM_TURNS) as server:
        record = fluxloop_run(tmp_path, "--cassettes", "record", url=server.openai_url, keys=True)
    assert record.returncode == 0, describe(record)
    replay = fluxloop_run(tmp_path, "--cassettes", "replay")  # no key anywhere
    assert replay.returncode == 0, describe(replay)
    assert summary(results_dir(replay.stdout))["cassettes"]["missed"] == 0
    assert len(cassette_files(root)) == 2


def test_an_unknown_mode_is_a_usage_error(tmp_path: Path) -> None:
    root = project_root(tmp_path)
    proc = fluxloop_run(tmp_path, "--cassettes", "bogus")
    assert proc.returncode == 4, describe(proc)
    assert "--cassettes" in proc.stderr and "bogus" in proc.stderr, describe(proc)
    for mode in ("off", "record", "replay", "new", "rewrite"):
        assert f"'{mode}'" in proc.stderr, describe(proc)
    assert not (root / "experiments").exists()


def test_a_corrupt_cassette_stops_before_the_plan(tmp_path: Path) -> None:
    root = project_root(tmp_path)
    folder = cassette_dir(root)
    folder.mkdir(parents=True)
    broken = folder / f"{CASES[0]}.json"
    broken.write_text('{"fluxloop_cassette": 1, "interactions": [', encoding="utf-8")
    proc = fluxloop_run(tmp_path, "--cassettes", "replay", keys=True)
    assert proc.returncode == 4, describe(proc)
    assert str(broken) in proc.stderr, describe(proc)
    assert "--cassettes rewrite" in proc.stderr, describe(proc)
    assert "Starting experiment" not in proc.stdout, describe(proc)
    assert not (root / "experiments").exists()
