"""Data loss and torn files (issue 8): a failed write keeps every file whole and consistent,
resume repairs torn tails, and a run that died can be told from one that is running.

The disk-full cases use real kernel limits (a file-size rlimit in a child process, or a real
small tmpfs, see ``support/disk_helpers.py``), not a mocked file object.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from support.disk_helpers import fsize_command, small_tmpfs

from pytest_fluxloop.artifacts import ArtifactWriteError, ExperimentWriter
from pytest_fluxloop.artifacts import resume as resume_mod
from pytest_fluxloop.artifacts import writer as writer_mod
from pytest_fluxloop.artifacts.resume import (
    find_dead_runs,
    process_alive,
    read_resume_state,
    reopen_writer,
)
from pytest_fluxloop.errors import FluxloopWarning
from pytest_fluxloop.records import Observation, TraceRecord

T0 = datetime(2024, 11, 1, 14, 30, 22, tzinfo=timezone.utc)
JSONL = ("trace_summary.jsonl", "traces.jsonl", "observations.jsonl")


def make_record(i: int, size: int = 1000) -> TraceRecord:
    """A finished case of about ``size`` bytes of text, with two observations."""
    return TraceRecord(
        trace_id=f"trace-{i}",
        case_id=f"case-{i}",
        iteration=0,
        persona="novice_user",
        input=f"question {i} " + "q" * size,
        output=f"answer {i} " + "a" * size,
        duration_ms=10.0,
        success=True,
        status="success",
        started_at=T0,
        completed_at=T0,
        observations=[
            Observation(trace_id=f"trace-{i}", type="span_start", name="run", timestamp=T0),
            Observation(trace_id=f"trace-{i}", type="span_end", name="run", timestamp=T0),
        ],
    )


def create_writer(root: Path, total: int = 100) -> ExperimentWriter:
    return ExperimentWriter.create(
        root,
        experiment_name="crash_safety",
        description="",
        config_snapshot={"name": "crash_safety"},
        metadata={},
        seed=1,
        total_cases=total,
        now=T0,
    )


def lines_of(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file, parsed; fails on a torn or glued line."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path.name} ends in a torn line"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def assert_consistent(folder: Path) -> set[str]:
    """Every line parses, and each record is in all of its files or in none."""
    listed = [line["trace_id"] for line in lines_of(folder / "trace_summary.jsonl")]
    traces = [line["trace_id"] for line in lines_of(folder / "traces.jsonl")]
    observed = {line["trace_id"] for line in lines_of(folder / "observations.jsonl")}
    assert traces == listed
    assert observed == set(listed)
    return set(listed)


# -- a failed append: disk full, file too large ---------------------------------------------

APPEND_UNTIL_FULL = """
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from unit.test_crash_safety import create_writer, make_record
from pytest_fluxloop.artifacts import ArtifactWriteError

writer = create_writer(Path({root!r}))
appended, error = 0, None
try:
    for i in range(1000):
        writer.append(make_record(i))
        appended += 1
except ArtifactWriteError as exc:
    error = exc
summary = writer.finish("interrupted")
print(json.dumps({{"folder": str(writer.path), "appended": appended, "error": str(error),
                  "path": str(error.path) if error else None, "total": summary.total_traces}}))
"""


def test_file_size_limit_keeps_every_file_whole(tmp_path: Path) -> None:
    """Writes past RLIMIT_FSIZE fail with EFBIG halfway through a line: that line, and the
    record's lines in the other files, are cut back; the summary counts what is on disk."""
    script = APPEND_UNTIL_FULL.format(tests=str(Path(__file__).parents[1]), root=str(tmp_path))
    proc = subprocess.run(
        fsize_command(40_000, sys.executable, "-c", script),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert "File too large" in result["error"]
    assert result["path"] in result["error"]  # the message names the file
    assert 5 < result["appended"] < 1000
    folder = Path(result["folder"])
    written = assert_consistent(folder)
    assert len(written) == result["appended"] == result["total"]
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["status"], summary["total_traces"]) == ("interrupted", len(written))


def test_real_full_disk_keeps_files_whole_and_still_writes_the_summary(tmp_path: Path) -> None:
    """A real full tmpfs (ENOSPC): nothing torn, and the final summary.json still fits."""
    with small_tmpfs(tmp_path / "mnt", "256k") as mnt:
        writer = create_writer(mnt)
        appended = 0
        with pytest.raises(ArtifactWriteError, match="No space left on device") as info:
            for i in range(1000):
                writer.append(make_record(i))
                appended += 1
        assert info.value.path.parent == writer.path
        # A later record fails the same way and leaves nothing behind either.
        with pytest.raises(ArtifactWriteError):
            writer.append(make_record(5000, size=20_000))
        summary = writer.finish("interrupted")
        written = assert_consistent(writer.path)
        assert len(written) == appended == summary.total_traces > 5
        on_disk = json.loads((writer.path / "summary.json").read_text())
        assert (on_disk["status"], on_disk["total_traces"]) == ("interrupted", appended)
        assert not (writer.path / writer_mod.RESERVE_FILE).exists()


# -- the running summary: counts kept current, with the writing process ---------------------


def test_running_summary_follows_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record arriving CHECKPOINT_SECONDS after the last rewrite rewrites summary.json
    (slow agents: every record); faster ones wait, so a fast run pays little for it."""
    now = [time.monotonic()]
    monkeypatch.setattr(writer_mod.time, "monotonic", lambda: now[0])
    writer = create_writer(tmp_path)
    step = writer_mod.CHECKPOINT_SECONDS / 4
    on_disk: list[int] = []
    for i in range(10):
        now[0] += step
        writer.append(make_record(i, size=10))
        on_disk.append(json.loads((writer.path / "summary.json").read_text())["total_traces"])
    assert on_disk == [0, 0, 0, 4, 4, 4, 4, 8, 8, 8]
    summary = json.loads((writer.path / "summary.json").read_text())
    assert summary["status"] == "running"
    assert (summary["pid"], summary["host"]) == (os.getpid(), platform.node())
    now[0] += writer_mod.CHECKPOINT_SECONDS  # a slow agent: its record is counted at once
    writer.append(make_record(10, size=10))
    assert json.loads((writer.path / "summary.json").read_text())["total_traces"] == 11
    writer.finish("complete")


# -- resume: torn tails are cut before anything is appended ----------------------------------


def _tear(path: Path, keep: int) -> None:
    """Cut ``path``'s last line to ``keep`` bytes (as a failed or killed write leaves it)."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + keep])


def _state_after_crash(tmp_path: Path, n: int = 6) -> Path:
    writer = create_writer(tmp_path, total=n)
    for i in range(n):
        writer.append(make_record(i, size=50))
    return writer.path  # never finished: summary.json says running


@pytest.mark.parametrize("chunk", [resume_mod._CHUNK, 7])
def test_resume_cuts_torn_and_unfinished_tails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """The last record was being written: its trace_summary line is torn, its traces line
    whole, its observations half there. All of it goes; the case runs again."""
    monkeypatch.setattr(resume_mod, "_CHUNK", chunk)  # also reads across chunk boundaries
    folder = _state_after_crash(tmp_path)
    _tear(folder / "trace_summary.jsonl", 30)
    _tear(folder / "observations.jsonl", 11)
    state = read_resume_state(folder)
    assert sorted(state.done) == [f"case-{i}" for i in range(5)]
    with pytest.warns(FluxloopWarning) as caught:
        writer = reopen_writer(
            state,
            experiment_name="crash_safety",
            description="",
            config_snapshot={},
            total_cases=6,
            save_traces=True,
            save_aggregated_metrics=True,
        )
    messages = [str(w.message) for w in caught]
    assert any("trace_summary.jsonl: removed a truncated last line" in m for m in messages)
    assert any("observations.jsonl: removed a truncated last line" in m for m in messages)
    assert any("traces.jsonl: removed 1 line(s) of a case" in m for m in messages)
    assert any("observations.jsonl: removed 1 line(s) of a case" in m for m in messages)
    assert assert_consistent(folder) == {f"trace-{i}" for i in range(5)}
    writer.append(make_record(5, size=50))
    summary = writer.finish("complete")
    assert assert_consistent(folder) == {f"trace-{i}" for i in range(6)}
    assert summary.total_traces == 6


def test_a_torn_line_that_parses_is_still_torn(tmp_path: Path) -> None:
    """Without its newline a line is torn even if its JSON happens to be complete: read and
    repair agree, so a case is never counted done while its line is cut off."""
    folder = _state_after_crash(tmp_path, n=3)
    path = folder / "trace_summary.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    state = read_resume_state(folder)
    assert sorted(state.done) == ["case-0", "case-1"]
    with pytest.warns(FluxloopWarning) as caught:
        reopen_writer(
            state,
            experiment_name="crash_safety",
            description="",
            config_snapshot={},
            total_cases=3,
            save_traces=True,
            save_aggregated_metrics=True,
        ).finish("interrupted")
    assert "trace_summary.jsonl: removed a truncated last line" in str(caught[0].message)
    assert assert_consistent(folder) == {"trace-0", "trace-1"}


def test_torn_multibyte_text_does_not_break_resume(tmp_path: Path) -> None:
    folder = _state_after_crash(tmp_path, n=2)
    with open(folder / "trace_summary.jsonl", "ab") as fh:
        fh.write('{"case_id": "case-9", "input": "日本'.encode()[:-1])  # cut inside a character
    assert sorted(read_resume_state(folder).done) == ["case-0", "case-1"]


# -- runs that died ---------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _summary(root: Path, name: str, **fields: Any) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    data = {"status": "running", "total_traces": 3, "total_cases": 9, "host": platform.node()}
    data.update(fields)
    (folder / "summary.json").write_text(json.dumps(data))
    return folder


def test_find_dead_runs(tmp_path: Path) -> None:
    dead = _summary(tmp_path, "exp_1", pid=_dead_pid())
    _summary(tmp_path, "exp_2", pid=os.getpid())  # still running
    _summary(tmp_path, "exp_3", pid=_dead_pid(), status="complete")
    _summary(tmp_path, "exp_4", pid=_dead_pid(), host="another-machine")  # can't tell
    _summary(tmp_path, "exp_5")  # an older version: no pid
    (tmp_path / "exp_6").mkdir()
    (tmp_path / "exp_6" / "summary.json").write_text("{torn")
    resumed = _summary(tmp_path, "exp_7", pid=_dead_pid())
    found = find_dead_runs(tmp_path, skip=resumed)
    assert [(d.path, d.total_traces, d.total_cases) for d in found] == [(dead, 3, 9)]
    assert find_dead_runs(tmp_path / "missing") == []


def test_a_killed_unreaped_child_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not process_alive(proc.pid)  # a zombie until waited for
    finally:
        proc.kill()
        proc.wait()
