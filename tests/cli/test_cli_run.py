"""``fluxloop run experiment``: options, argument building, errors, and end-to-end runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.cli_helpers import clean_env, describe, run_cli

from pytest_fluxloop.cli import cli
from pytest_fluxloop.cli import run as run_module
from pytest_fluxloop.cli.bridge import API_KEY_ENV, ExperimentResult, _env_var
from pytest_fluxloop.cli.pytest_args import (
    BOOL_FLAGS,
    NOT_FORWARDED,
    VALUE_FLAGS,
    ConfigNotFoundError,
    build_pytest_args,
    resolve_config_path,
)
from pytest_fluxloop.cli.scaffold import scaffold_project
from pytest_fluxloop.config import Overrides

CONFIG = Path("/proj/configs/simulation.yaml")
BASE = [str(CONFIG), f"--fluxloop-config={CONFIG}"]
TAIL = ["-q", "--fluxloop-progress", "-o", "console_output_style=classic"]

# --------------------------------------------------------------------------- --help


RUN_OPTIONS = [
    "--config",
    "-c",
    "--project",
    "--root",
    "--iterations",
    "-i",
    "--personas",
    "-p",
    "--inputs",
    "--multi-turn",
    "--no-multi-turn",
    "--max-turns",
    "--auto-approve-tools",
    "--manual-approve-tools",
    "--auto-approve",
    "--persona-override",
    "--persona",
    "--supervisor-provider",
    "--supervisor-model",
    "--supervisor-temperature",
    "--supervisor-api-key",
    "--output-dir",
    "--experiment-name",
    "--name",
    "--resume",
    "--yes",
    "-y",
]


def test_help_lists_every_option(tmp_path: Path) -> None:
    proc = run_cli("run", "experiment", "--help", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    words = set(proc.stdout.replace(",", " ").replace("/", " ").split())
    missing = [opt for opt in RUN_OPTIONS if opt not in words]
    assert not missing, f"--help does not list {missing}\n{proc.stdout}"
    assert "openai|anthropic|mock" in proc.stdout


def test_top_level_help_lists_commands(tmp_path: Path) -> None:
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    for command in ("run", "init", "config"):
        assert command in proc.stdout


# --------------------------------------------------------------------------- build_pytest_args


def test_no_overrides() -> None:
    args = build_pytest_args(CONFIG)
    assert args == [*BASE, *TAIL]


def test_config_is_positional_and_option_and_rootdir_pins_project() -> None:
    args = build_pytest_args(CONFIG, Overrides(), project_root=Path("/proj"))
    assert args[0] == str(CONFIG)
    assert f"--fluxloop-config={CONFIG}" in args
    assert "--rootdir=/proj" in args


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("iterations", 3, ["--fluxloop-iterations=3"]),
        ("personas", ["novice", "expert"], ["--fluxloop-personas=novice,expert"]),
        ("inputs_file", "/x/inputs.yaml", ["--fluxloop-inputs=/x/inputs.yaml"]),
        ("output_directory", "/x/out", ["--fluxloop-output-dir=/x/out"]),
        ("experiment_name", "baseline-test", ["--fluxloop-experiment-name=baseline-test"]),
        ("multi_turn", True, ["--fluxloop-multi-turn"]),
        ("multi_turn", False, ["--fluxloop-no-multi-turn"]),
        ("max_turns", 12, ["--fluxloop-max-turns=12"]),
        ("auto_approve_tools", True, ["--fluxloop-auto-approve-tools"]),
        ("auto_approve_tools", False, ["--fluxloop-manual-approve-tools"]),
        ("persona_override", "expert_user", ["--fluxloop-persona-override=expert_user"]),
        ("supervisor_provider", "mock", ["--fluxloop-supervisor-provider=mock"]),
        ("supervisor_model", "gpt-4o", ["--fluxloop-supervisor-model=gpt-4o"]),
        ("supervisor_temperature", 0.3, ["--fluxloop-supervisor-temperature=0.3"]),
        ("resume", "/x/exp_1", ["--fluxloop-resume=/x/exp_1"]),
    ],
)
def test_each_override_is_forwarded(field: str, value: Any, expected: list[str]) -> None:
    args = build_pytest_args(CONFIG, Overrides(**{field: value}))
    assert args == [*BASE, *expected, *TAIL]


def test_value_starting_with_dash_stays_one_argument() -> None:
    args = build_pytest_args(CONFIG, Overrides(experiment_name="-k"))
    assert "--fluxloop-experiment-name=-k" in args
    assert "-k" not in args


def test_api_key_never_on_the_command_line() -> None:
    args = build_pytest_args(CONFIG, Overrides(supervisor_api_key="sk-secret-123"))
    assert not any("sk-secret-123" in arg for arg in args)
    assert not any("api-key" in arg for arg in args)


def test_every_override_field_has_a_pytest_option() -> None:
    """Contract drift guard: a new Overrides field must be forwarded (or deliberately not)."""
    known = set(VALUE_FLAGS) | set(BOOL_FLAGS) | NOT_FORWARDED
    assert set(Overrides.model_fields) <= known, set(Overrides.model_fields) - known


def test_extra_args_come_last_and_unchanged() -> None:
    extra = ["-x", "-k", "refund", "--junitxml=out.xml"]
    args = build_pytest_args(CONFIG, Overrides(iterations=2), extra_args=extra)
    assert args[-4:] == extra


def test_progress_and_quiet_can_be_turned_off() -> None:
    args = build_pytest_args(CONFIG, progress=False, quiet=False)
    assert args == BASE


def test_env_var_is_set_only_inside_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "previous")
    import os

    with _env_var(API_KEY_ENV, "sk-new"):
        assert os.environ[API_KEY_ENV] == "sk-new"
    assert os.environ[API_KEY_ENV] == "previous"
    monkeypatch.delenv(API_KEY_ENV)
    with _env_var(API_KEY_ENV, "sk-new"):
        assert os.environ[API_KEY_ENV] == "sk-new"
    assert API_KEY_ENV not in os.environ
    with _env_var(API_KEY_ENV, None):
        assert API_KEY_ENV not in os.environ


# --------------------------------------------------------------------------- config path


def test_resolve_config_path_variants(tmp_path: Path) -> None:
    scaffold_project(tmp_path / "fluxloop", "demo")
    expected = tmp_path / "fluxloop" / "demo" / "configs" / "simulation.yaml"
    from_project = resolve_config_path(
        Path("configs/simulation.yaml"), "demo", Path("fluxloop"), tmp_path
    )
    assert from_project == expected
    from_cwd = resolve_config_path(
        Path("configs/simulation.yaml"), None, Path("fluxloop"), tmp_path / "fluxloop" / "demo"
    )
    assert from_cwd == expected
    absolute = resolve_config_path(expected, "ignored", Path("nowhere"), Path("/"))
    assert absolute == expected


def test_missing_project_lists_the_ones_that_exist(tmp_path: Path) -> None:
    scaffold_project(tmp_path / "fluxloop", "demo")
    scaffold_project(tmp_path / "fluxloop", "other")
    with pytest.raises(ConfigNotFoundError) as info:
        resolve_config_path(Path("configs/simulation.yaml"), "typo", Path("fluxloop"), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "fluxloop" / "typo" / "configs" / "simulation.yaml") in message
    assert "no project 'typo'" in message
    assert "demo, other" in message


# --------------------------------------------------------------------------- errors (subprocess)


def test_missing_config_suggests_project(tmp_path: Path) -> None:
    scaffold_project(tmp_path / "fluxloop", "demo")
    proc = run_cli("run", "experiment", "--yes", cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert f"config file not found: {tmp_path / 'configs' / 'simulation.yaml'}" in proc.stderr
    assert "--project demo" in proc.stderr
    assert "Starting experiment" not in proc.stdout


def test_missing_config_without_projects_suggests_init(tmp_path: Path) -> None:
    proc = run_cli("run", "experiment", "-c", "nope.yaml", cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert f"config file not found: {tmp_path / 'nope.yaml'}" in proc.stderr
    assert "fluxloop init project" in proc.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--iterations", "0"], "--iterations"),
        (["--iterations", "many"], "--iterations"),
        (["--supervisor-temperature", "abc"], "--supervisor-temperature"),
        (["--supervisor-temperature", "9"], "--supervisor-temperature"),
        (["--supervisor-provider", "gemini"], "--supervisor-provider"),
        (["--max-turns", "1"], "--max-turns"),
        (["--personas", "nobody"], "--personas"),
        (["--personas", " , "], "--personas"),
        (["--inputs", "missing.yaml"], "--inputs"),
        (["--experiment-name", "../escape"], "experiment name"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_override_is_a_usage_error_naming_the_option(
    tmp_path: Path, args: list[str], option: str
) -> None:
    scaffold_project(tmp_path / "fluxloop", "demo")
    proc = run_cli("run", "experiment", "--project", "demo", "--yes", *args, cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert option in proc.stderr, describe(proc)
    assert "Error" in proc.stderr
    # Nothing ran: no experiment directory appeared.
    assert not (tmp_path / "fluxloop" / "demo" / "experiments").exists()


def test_broken_config_fails_before_running(tmp_path: Path) -> None:
    result = scaffold_project(tmp_path / "fluxloop", "demo")
    sim = result.project_dir / "configs" / "simulation.yaml"
    sim.write_text(sim.read_text().replace("iterations: 1", "iterations: -3"))
    proc = run_cli("run", "experiment", "--project", "demo", cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert str(sim) in proc.stderr and "iterations" in proc.stderr
    assert not (result.project_dir / "experiments").exists()


def test_replay_without_recordings_fails_before_the_plan_is_shown(tmp_path: Path) -> None:
    """The CLI loads through Experiment.load: replay_args.enabled with no recording file is
    refused up front (the recordings are read before anything is shown)."""
    result = scaffold_project(tmp_path / "fluxloop", "demo")
    sim = result.project_dir / "configs" / "simulation.yaml"
    text = sim.read_text()
    assert "replay_args:\n  enabled: false" in text
    sim.write_text(text.replace("replay_args:\n  enabled: false", "replay_args:\n  enabled: true"))
    proc = run_cli("run", "experiment", "--project", "demo", "--yes", cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert "replay_args" in proc.stderr, describe(proc)
    assert str(sim) in proc.stderr, describe(proc)
    assert "[INFO] Starting experiment" not in proc.stdout, describe(proc)
    assert not proc.stdout.strip(), describe(proc)
    assert not (result.project_dir / "experiments").exists()


# --------------------------------------------------------------------------- confirmation


class FakeRun:
    """Stands in for bridge.run_pytest in the in-process prompt tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, args: list[str], api_key: str | None = None) -> tuple[int, Any]:
        self.calls.append((args, api_key))
        return 0, ExperimentResult()


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    fake = FakeRun()
    monkeypatch.setattr("pytest_fluxloop.cli.bridge.run_pytest", fake)
    return fake


@pytest.fixture
def demo_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scaffold_project(tmp_path / "fluxloop", "demo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_tty_prompt_declined_runs_nothing(
    demo_cwd: Path, fake_run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "stdin_is_interactive", lambda: True)
    result = CliRunner().invoke(
        cli, ["run", "experiment", "--project", "demo"], input="n\n", catch_exceptions=False
    )
    assert "Proceed?" in result.output
    assert "3 input/persona pairs × 1 iteration = 3 runs" in result.output
    assert fake_run.calls == []
    assert result.exit_code == 1
    assert not (demo_cwd / "fluxloop" / "demo" / "experiments").exists()


def test_tty_prompt_accepted_runs_with_forwarded_args(
    demo_cwd: Path, fake_run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "stdin_is_interactive", lambda: True)
    result = CliRunner().invoke(
        cli,
        [
            "run", "experiment", "--project", "demo", "-i", "2", "--auto-approve",
            "--persona", "expert_user", "--name", "baseline", "--supervisor-api-key", "sk-x",
            "--", "-x", "-k", "refund",
        ],
        input="y\n",
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Proceed?" in result.output
    [(args, api_key)] = fake_run.calls
    config = demo_cwd / "fluxloop" / "demo" / "configs" / "simulation.yaml"
    assert args[0] == str(config)
    assert f"--fluxloop-config={config}" in args
    for expected in (
        "--fluxloop-iterations=2",
        "--fluxloop-auto-approve-tools",
        "--fluxloop-persona-override=expert_user",
        "--fluxloop-experiment-name=baseline",
        "--fluxloop-progress",
    ):
        assert expected in args
    assert args[-3:] == ["-x", "-k", "refund"]
    assert api_key == "sk-x"
    assert not any("sk-x" in arg for arg in args)


def test_yes_skips_prompt_even_on_a_tty(
    demo_cwd: Path, fake_run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "stdin_is_interactive", lambda: True)
    result = CliRunner().invoke(cli, ["run", "experiment", "--project", "demo", "-y"])
    assert result.exit_code == 0, result.output
    assert "Proceed?" not in result.output
    assert len(fake_run.calls) == 1


def test_no_tty_skips_prompt(demo_cwd: Path, fake_run: FakeRun) -> None:
    # CliRunner's stdin is not a terminal: no prompt, no hang, the run proceeds.
    result = CliRunner().invoke(cli, ["run", "experiment", "--project", "demo"])
    assert result.exit_code == 0, result.output
    assert "Proceed?" not in result.output
    assert len(fake_run.calls) == 1


def test_experiment_notices_are_shown_as_warnings(demo_cwd: Path, fake_run: FakeRun) -> None:
    # persona_override without multi-turn: a notice from the shared loading (check_supported).
    result = CliRunner().invoke(
        cli, ["run", "experiment", "--project", "demo", "-y", "--persona", "expert_user"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    [warning] = [line for line in lines if "multi_turn.persona_override" in line]
    assert warning.startswith("[WARN] ")
    assert lines.index(warning) > lines.index("[INFO] Starting experiment...")
    assert len(fake_run.calls) == 1


def test_relative_paths_are_taken_from_cwd(demo_cwd: Path, fake_run: FakeRun) -> None:
    result = CliRunner().invoke(
        cli, ["run", "experiment", "--project", "demo", "-y", "--output-dir", "out"]
    )
    assert result.exit_code == 0, result.output
    [(args, _)] = fake_run.calls
    assert f"--fluxloop-output-dir={demo_cwd / 'out'}" in args


# --------------------------------------------------------------------------- end to end


def _experiment_dirs(project_dir: Path) -> list[Path]:
    return sorted((project_dir / "experiments").glob("exp_*"))


@pytest.mark.slow
def test_scaffolded_project_runs_end_to_end(tmp_path: Path) -> None:
    init = run_cli("init", "project", "demo", "--root", tmp_path / "fluxloop", cwd=tmp_path)
    assert init.returncode == 0, describe(init)
    proc = run_cli(
        "run", "experiment", "--project", "demo", "--root", tmp_path / "fluxloop", "--yes",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    assert "[INFO] Starting experiment..." in proc.stdout
    assert "[INFO] Loaded 3 inputs" in proc.stdout
    assert "= 3 runs" in proc.stdout
    project_dir = tmp_path / "fluxloop" / "demo"
    [exp_dir] = _experiment_dirs(project_dir)
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["total_traces"] == 3
    assert summary["successful"] == 3
    assert summary["failed"] == 0
    assert "3 successful, 0 failed" in proc.stdout
    assert f"Results: {exp_dir.relative_to(tmp_path)}" in proc.stdout


@pytest.mark.slow
def test_run_from_project_dir_without_yes_does_not_wait_for_input(tmp_path: Path) -> None:
    result = scaffold_project(tmp_path / "fluxloop", "demo")
    proc = run_cli("run", "experiment", "-i", "2", cwd=result.project_dir)
    assert proc.returncode == 0, describe(proc)
    assert "Proceed?" not in proc.stdout
    assert "× 2 iterations = 6 runs" in proc.stdout
    [exp_dir] = _experiment_dirs(result.project_dir)
    assert json.loads((exp_dir / "summary.json").read_text())["total_traces"] == 6


@pytest.mark.slow
def test_failing_case_exits_1(tmp_path: Path) -> None:
    result = scaffold_project(tmp_path / "fluxloop", "demo")
    agent = result.project_dir / "agent.py"
    agent.write_text(
        agent.read_text().replace(
            "    text = input_text.lower()\n",
            "    text = input_text.lower()\n"
            '    if "refund" in text:\n'
            '        raise ValueError("refund service down")\n',
        )
    )
    proc = run_cli("run", "experiment", "-y", cwd=result.project_dir)
    assert proc.returncode == 1, describe(proc)
    [exp_dir] = _experiment_dirs(result.project_dir)
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert (summary["successful"], summary["failed"]) == (2, 1)
    assert "2 successful, 1 failed" in proc.stdout


@pytest.mark.slow
def test_no_selected_cases_exits_5(tmp_path: Path) -> None:
    result = scaffold_project(tmp_path / "fluxloop", "demo")
    proc = run_cli(
        "run", "experiment", "-y", "--", "-k", "matches_nothing_zzz", cwd=result.project_dir
    )
    assert proc.returncode == 5, describe(proc)
    assert "no cases selected" in proc.stderr


# --------------------------------------------------------------------------- misc


def test_importing_the_cli_is_cheap(tmp_path: Path) -> None:
    code = (
        "import sys, pytest_fluxloop.cli\n"
        "heavy = [m for m in ('pytest', 'pydantic', 'yaml', 'openai') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_describe_summary_lines(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from pytest_fluxloop.records import ExperimentSummary

    summary = ExperimentSummary(
        experiment_name="x",
        run_id="r1",
        status="complete",
        total_cases=4,
        total_traces=3,
        successful=2,
        failed=1,
        avg_duration_ms=250.54,
        started_at=datetime(2025, 1, 1, tzinfo=timezone.utc),
    )
    exp_dir = tmp_path / "experiments" / "exp_1"
    lines = run_module.describe_summary(summary, exp_dir, tmp_path)
    assert lines == [
        "[INFO] Experiment complete: 3 total of 4 selected, 2 successful, 1 failed, "
        "avg duration 250.5 ms",
        "Results: experiments/exp_1",
    ]
    assert run_module.describe_summary(None, None, tmp_path) == []
