"""Options of the earlier ``fluxloop run experiment`` that users' scripts still pass.

``--dry-run`` (check and plan, run nothing), ``--output/-o`` (``--output-dir``),
``--no-collector`` (traces stay local) and ``--display/--no-display`` (live progress or only
the summary); and the one startup warning when another FluxLoop installation conflicts.
Real CLI subprocesses, except where a prompt needs a faked terminal (``CliRunner``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.cli_helpers import describe, run_cli
from support.experiment_helpers import make_project

from pytest_fluxloop.cli import cli
from pytest_fluxloop.cli import run as run_module
from pytest_fluxloop.cli.bridge import ExperimentResult
from pytest_fluxloop.cli.pytest_args import QUIET_PLUGIN, build_pytest_args
from pytest_fluxloop.cli.scaffold import scaffold_project
from pytest_fluxloop.config import Overrides

CONFIG = Path("/proj/configs/simulation.yaml")
PROGRESS_BAR = re.compile(r"\[[▓░]+\] \d+/\d+")


def _demo(tmp_path: Path) -> Path:
    """A scaffolded project whose cases all pass; its folder."""
    return scaffold_project(tmp_path / "fluxloop", "demo").project_dir


def _anything_written(project_dir: Path) -> list[str]:
    """What a run would have created in the project (results, pytest cache)."""
    return sorted(
        path.name
        for path in project_dir.iterdir()
        if path.name in {"experiments", ".pytest_cache"} or path.name.startswith("exp_")
    )


# --------------------------------------------------------------------------- --help


def test_help_lists_the_legacy_options(tmp_path: Path) -> None:
    proc = run_cli("run", "experiment", "--help", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    words = set(proc.stdout.replace(",", " ").replace("/", " ").split())
    for option in ("--dry-run", "--output", "-o", "--no-collector", "--display", "--no-display"):
        assert option in words, proc.stdout


# --------------------------------------------------------------------------- --dry-run


def test_dry_run_checks_and_plans_but_runs_nothing(tmp_path: Path) -> None:
    project_dir = _demo(tmp_path)
    proc = run_cli("run", "experiment", "--project", "demo", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert "[INFO] Starting experiment..." in proc.stdout
    assert "3 input/persona pairs × 1 iteration = 3 runs" in proc.stdout
    assert "[INFO] Output: fluxloop/demo/experiments" in proc.stdout
    assert "[INFO] Dry run: the config and target check out; nothing was run." in proc.stdout
    # The pytest command line it would run, complete enough to run by hand.
    [would] = [line for line in proc.stdout.splitlines() if "The run would be: pytest" in line]
    assert f"--fluxloop-config={project_dir / 'configs' / 'simulation.yaml'}" in would
    assert "Warning: another FluxLoop installation" not in proc.stderr  # a clean environment
    assert not _anything_written(project_dir)
    assert not (tmp_path / "experiments").exists()


class FakeRun:
    """Stands in for bridge.run_pytest: a dry run must never get there."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], api_key: str | None = None) -> tuple[int, Any]:
        self.calls.append(args)
        return 0, ExperimentResult()


def test_dry_run_asks_nothing_even_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _demo(tmp_path)
    monkeypatch.chdir(tmp_path)
    fake = FakeRun()
    monkeypatch.setattr("pytest_fluxloop.cli.bridge.run_pytest", fake)
    monkeypatch.setattr(run_module, "stdin_is_interactive", lambda: True)
    result = CliRunner().invoke(cli, ["run", "experiment", "--project", "demo", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Proceed?" not in result.output
    assert "Dry run" in result.output
    assert fake.calls == []


@pytest.mark.slow
def test_dry_run_reports_every_problem_and_fails(tmp_path: Path) -> None:
    project = tmp_path / "p"
    make_project(
        project,
        runner={"target": "no_such_agent:run"},
        output_directory="../outside",
        multi_turn={"enabled": True, "supervisor": {"provider": "openai"}},
    )
    proc = run_cli("run", "experiment", "--dry-run", cwd=project)
    assert proc.returncode == 4, describe(proc)
    for problem in ("3 problems", "output_directory", "'no_such_agent' not found", "API_KEY"):
        assert problem in proc.stderr, describe(proc)
    assert "Dry run" not in proc.stdout
    assert not (project / "experiments").exists()
    assert not (tmp_path / "outside").exists()


def test_dry_run_of_an_invalid_config_fails(tmp_path: Path) -> None:
    project_dir = _demo(tmp_path)
    sim = project_dir / "configs" / "simulation.yaml"
    sim.write_text(sim.read_text().replace("iterations: 1", "iterations: -3"))
    proc = run_cli("run", "experiment", "--project", "demo", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert str(sim) in proc.stderr and "iterations" in proc.stderr
    assert not proc.stdout.strip(), describe(proc)
    assert not _anything_written(project_dir)


# --------------------------------------------------------------------------- pytest argv


def test_no_display_asks_for_no_bar_and_no_progress_characters() -> None:
    args = build_pytest_args(CONFIG, display=False)
    assert "--fluxloop-progress" not in args
    assert args[-4:] == ["-p", QUIET_PLUGIN, "-o", "console_output_style=classic"]
    assert build_pytest_args(CONFIG)[-3:] == [
        "--fluxloop-progress",
        "-o",
        "console_output_style=classic",
    ]


def test_no_collector_is_forwarded_to_pytest() -> None:
    args = build_pytest_args(CONFIG, Overrides.model_validate({"no_collector": True}))
    assert "--fluxloop-no-collector" in args
    args = build_pytest_args(CONFIG, Overrides.model_validate({"no_collector": False}))
    assert "--fluxloop-collector" in args


# --------------------------------------------------------------------------- end to end


def _only_experiment(folder: Path) -> Path:
    found = sorted(folder.glob("exp_*"))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.slow
def test_short_output_alias_and_no_collector(tmp_path: Path) -> None:
    project_dir = _demo(tmp_path)
    proc = run_cli(
        "run", "experiment", "--project", "demo", "-y", "-o", "results", "--no-collector",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    assert "[INFO] Output: results" in proc.stdout
    assert "[INFO] Collector: off (--no-collector); traces stay local (files only)" in proc.stdout
    exp_dir = _only_experiment(tmp_path / "results")  # relative to the cwd, like --output-dir
    assert json.loads((exp_dir / "summary.json").read_text())["total_traces"] == 3
    assert not (project_dir / "experiments").exists()
    assert PROGRESS_BAR.search(proc.stdout), describe(proc)  # --display is the default


@pytest.mark.slow
def test_long_output_alias_and_no_display(tmp_path: Path) -> None:
    _demo(tmp_path)
    proc = run_cli(
        "run", "experiment", "--project", "demo", "-y", "--output", "out", "--no-display",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    exp_dir = _only_experiment(tmp_path / "out")
    assert "Collector" not in proc.stdout  # said only when --no-collector is given
    # No bar, no per-case characters ("..."), no percentage column: only the end of the run.
    assert not PROGRESS_BAR.search(proc.stdout), describe(proc)
    assert "ETA" not in proc.stdout
    assert not re.search(r"^[.FEsx]+\s*(\[\s*\d+%\])?$", proc.stdout, re.MULTILINE), describe(proc)
    assert "[INFO] Experiment complete: 3 total, 3 successful, 0 failed" in proc.stdout
    assert f"Results: {exp_dir.relative_to(tmp_path)}" in proc.stdout
    assert "3 passed" in proc.stdout


# --------------------------------------------------------------------------- conflicts


def _fake_legacy_cli(site: Path) -> None:
    """Metadata of the earlier ``fluxloop-cli`` as pip leaves it (no code needed)."""
    info = site / "fluxloop_cli-0.2.36.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fluxloop-cli\nVersion: 0.2.36\n")
    (info / "entry_points.txt").write_text("[console_scripts]\nfluxloop = fluxloop_cli.main:app\n")


def _fake_legacy_sdk(site: Path) -> None:
    """A ``fluxloop`` package that is not ours, found before ours on sys.path."""
    (site / "fluxloop").mkdir(parents=True)
    (site / "fluxloop" / "__init__.py").write_text('__version__ = "0.1.8"\n')


@pytest.mark.parametrize(
    ("install", "expected"),
    [
        (_fake_legacy_cli, "fluxloop-cli 0.2.36"),
        (_fake_legacy_sdk, "`import fluxloop` loads"),
    ],
    ids=["legacy-cli", "foreign-import"],
)
def test_conflicting_installation_is_one_warning(
    tmp_path: Path, install: Any, expected: str
) -> None:
    site = tmp_path / "site"
    install(site)
    project = tmp_path / "p"
    _, module = make_project(project, iterations=1)
    # An agent that does not import fluxloop, so the foreign package does not break it.
    (project / f"{module}.py").write_text("def run(input_text):\n    return input_text\n")
    proc = run_cli("run", "experiment", "--dry-run", cwd=project, env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, describe(proc)
    assert proc.stderr.startswith("Warning: another FluxLoop installation"), describe(proc)
    assert proc.stderr.count("Warning:") == 1, describe(proc)
    assert expected in proc.stderr
    assert "pip uninstall" in proc.stderr  # the advice, once
    assert proc.stderr.count("To fix it") == 1, describe(proc)
