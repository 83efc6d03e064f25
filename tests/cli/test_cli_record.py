"""``fluxloop record enable | disable | status``: the project's ``.env`` and simulation.yaml's
``replay_args`` edited in place, and what a recording file holds. Real CLI subprocesses."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from support.cli_helpers import describe, run_cli
from support.experiment_helpers import make_project

from pytest_fluxloop.cli.scaffold import scaffold_project

SECRET = "sk-proj-RECORDcanary7f3e9a1b5c2d8e4f"
"""An argument value in the recordings: status must never print it (nor any value)."""


def _demo(tmp_path: Path) -> Path:
    """A scaffolded project ``fluxloop/demo`` (its simulation.yaml has comments and a
    replay_args block); commands run from ``tmp_path`` with ``--project demo``."""
    return scaffold_project(tmp_path / "fluxloop", "demo").project_dir


def _call(target: str | None, stamp: str, **kwargs: object) -> str:
    """One recording line in the documented shape."""
    line: dict[str, object] = {"_version": "1", "iteration": 0, "args": [], "kwargs": kwargs}
    if target is not None:
        line["target"] = target
    line["timestamp"] = stamp
    return json.dumps(line)


def _write_recording(project: Path, lines: list[str], tail: str = "\n") -> Path:
    path = project / "recordings" / "args_recording.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + tail, encoding="utf-8")
    return path


def _load_replay(config: Path) -> dict[str, object]:
    from pytest_fluxloop.config import load_config

    replay = load_config(config).simulation.replay_args
    return replay.model_dump()


# --------------------------------------------------------------------------- enable


def test_enable_creates_the_env_file(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    config = project / "configs" / "simulation.yaml"
    before = config.read_bytes()

    proc = run_cli("record", "enable", "--project", "demo", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    env = project / ".env"
    assert env.read_text() == (
        "FLUXLOOP_RECORD_ARGS=true\nFLUXLOOP_RECORDING_FILE=recordings/args_recording.jsonl\n"
    )
    assert stat.S_IMODE(env.stat().st_mode) == 0o600  # a .env usually ends up holding keys
    assert "Created fluxloop/demo/.env:" in proc.stdout
    assert "FLUXLOOP_RECORD_ARGS=true  (added, line 1)" in proc.stdout
    assert "Start the application from the project root (fluxloop/demo)" in proc.stdout
    assert "wins over .env" in proc.stdout
    assert config.read_bytes() == before  # enable never touches replay_args


def test_enable_updates_the_env_in_place(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    env = project / ".env"
    env.write_text(
        "# API keys: keep this file out of git\n"
        "OPENAI_API_KEY=sk-test-not-real\n"
        "\n"
        "FLUXLOOP_RECORD_ARGS=true\n"
        "export FLUXLOOP_RECORD_ARGS='false'  # off for now\n"
        'OTHER="quoted value"\n'
        "FLUXLOOP_RECORDING_FILE=old.jsonl # where calls go\n"
        "LAST=1",  # no line end
    )
    env.chmod(0o640)

    proc = run_cli(
        "record", "enable", "--project", "demo", "--file", "recs/prod calls.jsonl", cwd=tmp_path
    )

    assert proc.returncode == 0, describe(proc)
    assert env.read_text() == (
        "# API keys: keep this file out of git\n"
        "OPENAI_API_KEY=sk-test-not-real\n"
        "\n"
        "FLUXLOOP_RECORD_ARGS=true\n"
        "export FLUXLOOP_RECORD_ARGS='true'  # off for now\n"
        'OTHER="quoted value"\n'
        'FLUXLOOP_RECORDING_FILE="recs/prod calls.jsonl" # where calls go\n'
        "LAST=1"
    )
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert "Updated fluxloop/demo/.env:" in proc.stdout
    assert "FLUXLOOP_RECORD_ARGS=true  (was 'false', line 5)" in proc.stdout
    assert "FLUXLOOP_RECORDING_FILE=recs/prod calls.jsonl  (was 'old.jsonl', line 7)" in proc.stdout
    assert "[WARN] FLUXLOOP_RECORD_ARGS is set more than once (lines 4, 5)" in proc.stdout
    assert "sk-test-not-real" not in proc.stdout


def test_enable_keeps_the_file_setting_and_warns_about_the_environment(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    env = project / ".env"
    env.write_text("FLUXLOOP_RECORDING_FILE=/var/rec/calls.jsonl\r\nA=1\r\n")

    proc = run_cli(
        "record", "enable", "--project", "demo", cwd=tmp_path, env={"FLUXLOOP_RECORD_ARGS": "0"}
    )

    assert proc.returncode == 0, describe(proc)
    # The .env's file is kept (enable again resumes the same recording); CRLF stays CRLF.
    assert env.read_bytes() == (
        b"FLUXLOOP_RECORDING_FILE=/var/rec/calls.jsonl\r\nA=1\r\nFLUXLOOP_RECORD_ARGS=true\r\n"
    )
    assert "calls will be appended to /var/rec/calls.jsonl" in proc.stdout
    assert "Start the application from the project root" not in proc.stdout  # absolute
    assert "[WARN] FLUXLOOP_RECORD_ARGS is set in this shell's environment ('0')" in proc.stdout


def test_enable_says_when_replay_is_on(tmp_path: Path) -> None:
    make_project(tmp_path, replay_args={"enabled": True})

    proc = run_cli("record", "enable", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    assert "[INFO] replay_args.enabled is true in configs/simulation.yaml" in proc.stdout
    assert "not recorded" in proc.stdout  # an experiment never records its own calls


def test_enable_without_a_project_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("record", "enable", cwd=tmp_path)

    assert proc.returncode == 4, describe(proc)
    assert "Error: config file not found" in proc.stderr
    assert not (tmp_path / ".env").exists()


# --------------------------------------------------------------------------- disable


def test_disable_keeps_the_file_and_the_config(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    env = project / ".env"
    env.write_text("FLUXLOOP_RECORD_ARGS=true\nFLUXLOOP_RECORDING_FILE=recs/a.jsonl\n")
    config = project / "configs" / "simulation.yaml"
    before = config.read_bytes()

    proc = run_cli("record", "disable", "--project", "demo", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    assert env.read_text() == "FLUXLOOP_RECORD_ARGS=false\nFLUXLOOP_RECORDING_FILE=recs/a.jsonl\n"
    assert "FLUXLOOP_RECORD_ARGS=false  (was 'true', line 1)" in proc.stdout
    assert "replay_args unchanged" in proc.stdout
    assert config.read_bytes() == before


def test_disable_replay_edits_the_config_in_place(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    env = "FLUXLOOP_RECORD_ARGS=true\nFLUXLOOP_RECORDING_FILE=recs/prod.jsonl\n"
    (project / ".env").write_text(env)
    (project / "recs").mkdir()
    (project / "recs" / "prod.jsonl").write_text(
        _call("agent:run", "2025-01-01T12:00:00.000000Z", data={"content": "x"}) + "\n"
    )
    config = project / "configs" / "simulation.yaml"
    before = config.read_text().splitlines(keepends=True)

    proc = run_cli("record", "disable", "--project", "demo", "--replay", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    after = config.read_text().splitlines(keepends=True)
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    # Only the two values changed, in place; the template's comments are all still there.
    assert changed == [
        (
            "  enabled: false # Replay arguments captured with FLUXLOOP_RECORD_ARGS=true\n",
            "  enabled: true # Replay arguments captured with FLUXLOOP_RECORD_ARGS=true\n",
        ),
        (
            "  recording_file: recordings/args_recording.jsonl\n",
            "  recording_file: recs/prod.jsonl\n",
        ),
    ]
    assert _load_replay(config) == {
        "enabled": True,
        "recording_file": "recs/prod.jsonl",
        "override_param_path": "data.content",
    }
    assert (
        "Set in fluxloop/demo/configs/simulation.yaml: replay_args enabled: true, "
        "recording_file: recs/prod.jsonl" in proc.stdout
    )
    assert "1 call(s) in fluxloop/demo/recs/prod.jsonl" in proc.stdout

    off = run_cli("record", "disable", "--project", "demo", "--no-replay", cwd=tmp_path)

    assert off.returncode == 0, describe(off)
    assert _load_replay(config)["enabled"] is False
    now = config.read_text().splitlines(keepends=True)
    assert [line for line in now if line not in before] == ["  recording_file: recs/prod.jsonl\n"]


def test_disable_replay_adds_the_block_when_absent(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)  # no replay_args in it
    before = config.read_text()

    proc = run_cli("record", "disable", "--replay", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    text = config.read_text()
    assert text.startswith(before)
    assert text[len(before) :] == (
        "\nreplay_args:\n  enabled: true\n  recording_file: recordings/args_recording.jsonl\n"
    )
    assert _load_replay(config)["enabled"] is True
    assert "[WARN] nothing to replay yet: the file does not exist yet" in proc.stdout


def test_an_edit_that_breaks_the_config_is_undone(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    # A document end marker: a block appended after it starts a second document.
    config.write_text(config.read_text() + "...\n")
    before = config.read_bytes()

    proc = run_cli("record", "disable", "--replay", cwd=tmp_path)

    assert proc.returncode == 4, describe(proc)
    assert "the edit was undone and the file is as it was" in proc.stderr
    assert "invalid YAML" in proc.stderr
    assert config.read_bytes() == before
    assert not list(config.parent.glob(".*.tmp"))
    # Recording itself was turned off: that part needs no config edit.
    assert (tmp_path / ".env").read_text() == "FLUXLOOP_RECORD_ARGS=false\n"


def test_a_flow_style_replay_block_is_left_to_the_user(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    config.write_text(config.read_text() + "replay_args: {enabled: false}  # inline\n")
    before = config.read_bytes()

    proc = run_cli("record", "disable", "--replay", cwd=tmp_path)

    assert proc.returncode == 4, describe(proc)
    assert "cannot edit replay_args automatically" in proc.stderr
    assert "set it by hand" in proc.stderr
    assert "recording_file: recordings/args_recording.jsonl" in proc.stderr
    assert config.read_bytes() == before


def test_an_invalid_config_is_not_edited(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, iterations="many")
    before = config.read_bytes()

    proc = run_cli("record", "disable", "--replay", cwd=tmp_path)

    assert proc.returncode == 4, describe(proc)
    assert "fix the config first" in proc.stderr
    assert "iterations" in proc.stderr
    assert config.read_bytes() == before


# --------------------------------------------------------------------------- status


def test_status_without_a_recording(tmp_path: Path) -> None:
    _demo(tmp_path)

    proc = run_cli("record", "status", "--project", "demo", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    lines = proc.stdout.splitlines()
    assert lines[:5] == [
        "Config: fluxloop/demo/configs/simulation.yaml",
        "Env file: fluxloop/demo/.env (not created yet)",
        "Recording: off  (FLUXLOOP_RECORD_ARGS is not set)",
        "Recording file: fluxloop/demo/recordings/args_recording.jsonl  (the default)",
        "Recorded calls: none (the file does not exist yet)",
    ]
    assert "Replay: off  (replay_args in fluxloop/demo/configs/simulation.yaml)" in lines
    assert "  recording_file: recordings/args_recording.jsonl  (the recording file)" in lines


def test_status_counts_calls_per_target_without_values(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    (project / ".env").write_text("FLUXLOOP_RECORD_ARGS=true\n")
    _write_recording(
        project,
        [
            _call("app:handle", "2025-01-01T12:00:05.000000Z", data={"content": SECRET}),
            _call("app:handle", "2025-01-01T12:00:01.000000Z", data={"content": "hi"}),
            _call("app:other", "2025-01-02T08:00:00.000000Z", token=SECRET),
            _call("app:handle", "2025-01-03T09:30:00.000000Z", data={"content": "bye"}),
        ],
    )

    proc = run_cli("record", "status", "--project", "demo", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    assert SECRET not in proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "Recording: on  (FLUXLOOP_RECORD_ARGS=true in fluxloop/demo/.env)" in lines
    start = next(i for i, line in enumerate(lines) if line.startswith("Recorded calls:"))
    assert lines[start].startswith("Recorded calls: 4 (2 targets, ")
    assert [line.split() for line in lines[start + 1 : start + 4]] == [
        ["TARGET", "CALLS", "FIRST", "LAST"],
        ["app:handle", "3", "2025-01-01T12:00:01.000000Z", "2025-01-03T09:30:00.000000Z"],
        ["app:other", "1", "2025-01-02T08:00:00.000000Z", "2025-01-02T08:00:00.000000Z"],
    ]
    assert not [line for line in lines if line.startswith("[WARN]")]


def test_status_warns_about_a_cut_off_last_line(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    _write_recording(
        project,
        [
            _call("app:handle", "2025-01-01T12:00:00.000000Z", data={"content": "a"}),
            '{"_version":"1","target":"app:handle","kwargs":{"data":{"con',
        ],
        tail="",
    )

    proc = run_cli("record", "status", "--project", "demo", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    assert "Recorded calls: 1 (1 target, " in proc.stdout
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("[WARN]")]
    assert len(warnings) == 1, proc.stdout
    assert "line 2: the last line is cut off" in warnings[0]


def test_status_json(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    (project / ".env").write_text("FLUXLOOP_RECORD_ARGS=false\nFLUXLOOP_RECORDING_FILE=rec.jsonl\n")
    (project / "rec.jsonl").write_text(
        _call("app:handle", "2025-01-01T12:00:00.000000Z", data={"content": SECRET})
        + "\n"
        + _call(None, "2025-01-01T12:00:03.000000Z", data={"content": "b"})
        + "\n"
    )

    proc = run_cli(
        "record", "status", "--project", "demo", "--json",
        cwd=tmp_path,
        env={"FLUXLOOP_RECORD_ARGS": "true"},
    )  # fmt: skip

    assert proc.returncode == 0, describe(proc)
    assert SECRET not in proc.stdout
    report = json.loads(proc.stdout)
    assert report["recording"] == {
        "enabled": True,  # the environment wins over .env
        "value": "true",
        "source": "environment",
        "error": None,
        "file": "rec.jsonl",
        "file_source": str(project / ".env"),
        "path": str(project / "rec.jsonl"),
    }
    calls = report["calls"]
    assert calls["total"] == 2
    assert calls["file_exists"] is True
    assert calls["size_bytes"] == (project / "rec.jsonl").stat().st_size
    assert calls["targets"] == [
        {
            "target": "app:handle",
            "calls": 1,
            "first": "2025-01-01T12:00:00.000000Z",
            "last": "2025-01-01T12:00:00.000000Z",
        },
        {
            "target": None,
            "calls": 1,
            "first": "2025-01-01T12:00:03.000000Z",
            "last": "2025-01-01T12:00:03.000000Z",
        },
    ]
    assert calls["warnings"] == [] and calls["error"] is None
    assert report["replay"] == {
        "enabled": False,
        "recording_file": "recordings/args_recording.jsonl",
        "recording_file_path": str(project / "recordings" / "args_recording.jsonl"),
        "override_param_path": "data.content",
        "same_file_as_recording": False,
    }
    assert report["config_error"] is None


def test_status_reports_an_unreadable_recording_as_a_line(tmp_path: Path) -> None:
    project = _demo(tmp_path)
    _write_recording(project, ["not json", _call("a:b", "2025-01-01T00:00:00Z", x=1)])

    proc = run_cli("record", "status", "--project", "demo", "--json", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    calls = json.loads(proc.stdout)["calls"]
    assert calls["total"] == 0
    assert "line 1: not valid JSON" in calls["error"]

    empty = _write_recording(project, [], tail="")
    assert empty.stat().st_size == 0
    text = run_cli("record", "status", "--project", "demo", cwd=tmp_path)
    assert text.returncode == 0, describe(text)
    assert "Recorded calls: none (recording file" in text.stdout
    assert "holds no recorded calls" in text.stdout


def test_status_says_when_recording_and_replay_are_both_on(tmp_path: Path) -> None:
    make_project(tmp_path, replay_args={"enabled": True, "recording_file": "elsewhere.jsonl"})
    (tmp_path / ".env").write_text("FLUXLOOP_RECORD_ARGS=on\n")

    proc = run_cli("record", "status", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    assert "Recording: on  (FLUXLOOP_RECORD_ARGS=on in .env)" in proc.stdout
    assert "[INFO] recording and replay are both on" in proc.stdout
    assert "[WARN] replay is on but its recording_file does not exist" in proc.stdout
    assert "(not the recording file: elsewhere.jsonl)" in proc.stdout


def test_status_with_a_broken_config_still_reports_recording(tmp_path: Path) -> None:
    make_project(tmp_path, iterations="many")
    (tmp_path / ".env").write_text("FLUXLOOP_RECORD_ARGS=true\n")

    proc = run_cli("record", "status", cwd=tmp_path)

    assert proc.returncode == 4, describe(proc)
    assert "Recording: on" in proc.stdout
    assert "Replay: unknown: configs/simulation.yaml has problems (below)" in proc.stdout
    assert proc.stderr.startswith("Error: ")
    assert "iterations" in proc.stderr


def test_status_names_an_invalid_flag(tmp_path: Path) -> None:
    _demo(tmp_path)
    (tmp_path / "fluxloop" / "demo" / ".env").write_text("FLUXLOOP_RECORD_ARGS=maybe\n")

    proc = run_cli("record", "status", "--project", "demo", cwd=tmp_path)

    assert proc.returncode == 0, describe(proc)
    assert "Recording: invalid (" in proc.stdout
    assert "must be true or false" in proc.stdout
