"""``fluxloop status`` (the experiments a config's runs left) and ``fluxloop doctor`` (is
this installation and config ready). Real CLI subprocesses."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli_helpers import describe, run_cli
from support.experiment_helpers import make_project

from pytest_fluxloop.cli.scaffold import scaffold_project

# The `fluxloop` command of this environment first on PATH, as when it is activated.
VENV_PATH = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
FAKE_KEY = "sk-proj-DOCTORcanary7f3e9a1b5c2d8e4f"
FAKE_ENV_KEY = "sk-ant-api03-ENVcanary9q8w7e6r5t4y3u2i"
FAKE_CONFIG_KEY = "cfg-canary-Zx81Qw72Er63"

# --------------------------------------------------------------------------- status


def _summary(folder: Path, status: str, started: str, **fields: Any) -> None:
    """A summary.json with the keys status reads (as the writer lays them out)."""
    folder.mkdir(parents=True)
    data = {
        "experiment_name": "plain_python",
        "run_id": folder.name,
        "status": status,
        "total_cases": 6,
        "total_traces": 6,
        "successful": 4,
        "failed": 2,
        "avg_duration_ms": 1.0,
        "started_at": started,
        **fields,
    }
    (folder / "summary.json").write_text(json.dumps(data))


def _dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _status_rows(stdout: str) -> list[list[str]]:
    """The table rows of ``fluxloop status`` (after its header row), split into cells."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["FOLDER", "STATUS"])
    rows = []
    for line in lines[start + 1 :]:
        if not line.startswith("  exp_"):
            break
        rows.append(line.split())
    return rows


@pytest.mark.slow
def test_status_lists_a_finished_and_an_interrupted_run(tmp_path: Path) -> None:
    make_project(tmp_path, iterations=1)  # one of its three inputs fails
    # Stopped at the first failure (-x) with cases left unrun: interrupted.
    failing = "inputs:\n" + "".join(f"  - input: 'fail {i}'\n" for i in range(3))
    (tmp_path / "inputs" / "failing.yaml").write_text(failing)
    stopped = run_cli(
        "run", "experiment", "-y", "--inputs", "inputs/failing.yaml", "--", "-x", cwd=tmp_path
    )
    assert stopped.returncode == 1, describe(stopped)
    finished = run_cli("run", "experiment", "-y", cwd=tmp_path)
    assert finished.returncode == 1, describe(finished)
    first, second = sorted(
        (tmp_path / "experiments").glob("exp_*"),
        key=lambda p: json.loads((p / "summary.json").read_text())["started_at"],
    )

    proc = run_cli("status", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert "Config: configs/simulation.yaml" in proc.stdout
    assert "Experiment: plain_python" in proc.stdout
    assert "Output directory: experiments" in proc.stdout
    assert "Experiments: 2" in proc.stdout
    rows = _status_rows(proc.stdout)
    # Newest first: folder, status, traces written/selected, successful, failed, date, time.
    assert rows[0][:5] == [second.name, "complete", "3/3", "2", "1"], proc.stdout
    assert rows[1][:5] == [first.name, "interrupted", "1/3", "0", "1"], proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="dead runs are detected on POSIX only")
def test_status_of_died_incomplete_and_limited(tmp_path: Path) -> None:
    make_project(tmp_path)
    out = tmp_path / "experiments"
    _summary(out / "exp_20260101_090000", "complete", "2026-01-01T09:00:00+00:00")
    _summary(
        out / "exp_20260102_090000",
        "running",
        "2026-01-02T09:00:00+00:00",
        total_traces=2,
        pid=_dead_pid(),
        host=platform.node(),
    )
    _summary(
        out / "exp_20260103_090000",
        "interrupted",
        "2026-01-03T09:00:00+00:00",
        total_traces=3,
    )
    no_summary = out / "exp_20260104_090000"
    no_summary.mkdir()
    (no_summary / "trace_summary.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "torn')

    proc = run_cli("status", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    rows = _status_rows(proc.stdout)
    assert [row[:3] for row in rows] == [
        ["exp_20260104_090000", "incomplete", "2/?"],  # whole lines only
        ["exp_20260103_090000", "interrupted", "3/6"],
        ["exp_20260102_090000", "died", "2/6"],
        ["exp_20260101_090000", "complete", "6/6"],
    ], proc.stdout
    assert "finish it with: fluxloop run experiment --resume experiments/exp_20260102_090000" in (
        proc.stdout
    )

    limited = run_cli("status", "--limit", "2", cwd=tmp_path)
    assert [row[0] for row in _status_rows(limited.stdout)] == [
        "exp_20260104_090000",
        "exp_20260103_090000",
    ]
    assert "Experiments: 4, the 2 newest shown" in limited.stdout
    assert "2 older (--limit N shows more)" in limited.stdout

    as_json = run_cli("status", "--json", "-l", "1", cwd=tmp_path)
    report = json.loads(as_json.stdout)
    assert report["experiment"] == "plain_python"
    assert report["total"] == 4
    assert [e["status"] for e in report["experiments"]] == ["incomplete"]


@pytest.mark.parametrize(
    "args",
    [["status", "experiments"], ["status", "check"], ["status", "experiments", "-l", "5"]],
)
def test_status_accepts_the_earlier_subcommands(tmp_path: Path, args: list[str]) -> None:
    make_project(tmp_path)
    _summary(tmp_path / "experiments" / "exp_20260101_090000", "complete", "2026-01-01T09:00:00")
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert [row[:2] for row in _status_rows(proc.stdout)] == [["exp_20260101_090000", "complete"]]


def test_status_of_a_project_by_name_and_of_a_folder_without_config(tmp_path: Path) -> None:
    project_dir = scaffold_project(tmp_path / "fluxloop", "demo").project_dir
    proc = run_cli("status", "--project", "demo", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert "Config: fluxloop/demo/configs/simulation.yaml" in proc.stdout
    assert "No experiments yet" in proc.stdout

    _summary(project_dir / "experiments" / "exp_20260101_090000", "complete", "2026-01-01T09:00")
    by_folder = run_cli("status", "experiments", "-o", "fluxloop/demo/experiments", cwd=tmp_path)
    assert by_folder.returncode == 0, describe(by_folder)
    assert "Config: none (--output-dir)" in by_folder.stdout
    assert [row[0] for row in _status_rows(by_folder.stdout)] == ["exp_20260101_090000"]

    missing = run_cli("status", cwd=tmp_path)
    assert missing.returncode == 4, describe(missing)
    assert "fluxloop status --project demo" in missing.stderr


# --------------------------------------------------------------------------- doctor


def _levels(stdout: str) -> dict[str, list[str]]:
    """Check name -> levels of its lines (``config`` may have several)."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        level, _, rest = line.partition("  ")
        if level.strip() in {"OK", "WARN", "FAIL"}:
            name = rest.strip().split("  ")[0]
            found.setdefault(name, []).append(level.strip())
    return found


def test_doctor_on_a_good_project(tmp_path: Path) -> None:
    scaffold_project(tmp_path / "fluxloop", "demo")
    proc = run_cli("doctor", "--project", "demo", cwd=tmp_path, env=VENV_PATH)
    assert proc.returncode == 0, describe(proc)
    levels = _levels(proc.stdout)
    for name in ("Python", "pytest-fluxloop", "pytest", "openai", "import fluxloop"):
        assert levels[name] == ["OK"], proc.stdout
    assert levels["fluxloop command"] == ["OK"], proc.stdout
    assert levels["conflicting packages"] == ["OK"], proc.stdout
    assert levels["config"][0] == "OK", proc.stdout
    assert "3 input/persona pairs × 1 iteration = 3 runs" in proc.stdout
    assert "FAIL" not in proc.stdout
    for line in proc.stdout.splitlines():
        assert not line or line.startswith(("OK  ", "WARN", "FAIL", " ")) or "checks:" in line


@pytest.mark.slow
def test_doctor_fails_on_a_broken_config(tmp_path: Path) -> None:
    project_dir = scaffold_project(tmp_path / "fluxloop", "demo").project_dir
    (project_dir / "configs" / "simulation.yaml").write_text(
        "name: demo\nrunner:\n  target: no_such_agent:run\n"
    )
    proc = run_cli("doctor", "--project", "demo", cwd=tmp_path, env=VENV_PATH)
    assert proc.returncode == 1, describe(proc)
    assert _levels(proc.stdout)["config"] == ["FAIL"], proc.stdout
    assert "'no_such_agent' not found" in proc.stdout
    assert "1 failed" in proc.stdout

    as_json = run_cli("doctor", "--project", "demo", "--json", cwd=tmp_path, env=VENV_PATH)
    assert as_json.returncode == 1, describe(as_json)
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert [c["level"] for c in report["checks"] if c["name"] == "config"] == ["FAIL"]


def test_doctor_without_a_config_checks_the_installation(tmp_path: Path) -> None:
    proc = run_cli("doctor", cwd=tmp_path, env=VENV_PATH)
    assert proc.returncode == 0, describe(proc)
    assert _levels(proc.stdout)["config"] == ["WARN"]
    named = run_cli("doctor", "--config", "nope.yaml", cwd=tmp_path, env=VENV_PATH)
    assert named.returncode == 1, describe(named)
    assert _levels(named.stdout)["config"] == ["FAIL"]


def test_doctor_fails_when_path_has_another_fluxloop(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "fluxloop"
    script.write_text(
        "#!/opt/legacy/bin/python3.11\nimport sys\nfrom fluxloop_cli.main import app\n"
        "sys.exit(app())\n"
    )
    script.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{VENV_PATH['PATH']}"
    proc = run_cli("doctor", cwd=tmp_path, env={"PATH": path})
    assert proc.returncode == 1, describe(proc)
    assert _levels(proc.stdout)["fluxloop command"] == ["FAIL"]
    assert "fluxloop_cli.main:app (fluxloop-cli, the earlier FluxLoop CLI)" in proc.stdout


def _pieces(secret: str, size: int = 6) -> list[str]:
    """Every run of ``size`` characters of ``secret``'s distinctive tail."""
    tail = secret.split("-")[-1]
    return [tail[i : i + size] for i in range(len(tail) - size + 1)]


@pytest.mark.slow
def test_doctor_never_prints_a_key(tmp_path: Path) -> None:
    project = tmp_path / "p"
    make_project(
        project,
        multi_turn={
            "enabled": True,
            "supervisor": {"provider": "openai", "api_key": FAKE_CONFIG_KEY},
        },
    )
    (project / ".env").write_text(f"ANTHROPIC_API_KEY={FAKE_ENV_KEY}\n")
    env = {**VENV_PATH, "OPENAI_API_KEY": FAKE_KEY}
    outputs = []
    for args in (["doctor"], ["doctor", "--json"]):
        proc = run_cli(*args, cwd=project, env=env)
        assert proc.returncode == 0, describe(proc)
        outputs.append(proc.stdout + proc.stderr)
    levels = _levels(outputs[0])
    assert levels["OPENAI_API_KEY"] == ["OK"]
    assert "set (from the project's .env)" in outputs[0]  # ANTHROPIC_API_KEY, by name
    for secret in (FAKE_KEY, FAKE_ENV_KEY, FAKE_CONFIG_KEY):
        for output in outputs:
            assert secret not in output
            leaked = [piece for piece in _pieces(secret) if piece in output]
            assert not leaked, (leaked, output)

    # A failing config check quotes settings: still no key in it.
    (project / "configs" / "simulation.yaml").write_text(
        "name: x\nrunner:\n  target: nowhere:run\nmulti_turn:\n  enabled: true\n"
        f"  supervisor:\n    provider: openai\n    api_key: {FAKE_CONFIG_KEY}\n"
        f"    model: {FAKE_KEY}\n"
    )
    broken = run_cli("doctor", cwd=project, env=env)
    assert broken.returncode == 1, describe(broken)
    for secret in (FAKE_KEY, FAKE_ENV_KEY, FAKE_CONFIG_KEY):
        assert not [p for p in _pieces(secret) if p in broken.stdout + broken.stderr], broken.stdout
