"""``fluxloop run experiment``: load and plan the experiment, confirm, then run it as pytest.

The CLI decides nothing about *how* cases run: it validates the config up front (so a typo
fails before anything starts, with exit code 4), shows the plan, and hands a pytest command
line to ``pytest.main``. Everything it can do, ``pytest --fluxloop-config ...`` can do too.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .pytest_args import (
    DEFAULT_CONFIG,
    DEFAULT_ROOT,
    ConfigNotFoundError,
    build_pytest_args,
    resolve_config_path,
)

if TYPE_CHECKING:
    from ..config import LoadedConfig, Overrides
    from ..plan.cases import ExperimentPlan
    from ..records import ExperimentSummary

# pytest's exit codes, which `fluxloop run experiment` passes through.
EXIT_OK = 0
EXIT_TESTS_FAILED = 1
EXIT_INTERRUPTED = 2
EXIT_USAGE_ERROR = 4
EXIT_NO_TESTS = 5

SUPERVISOR_PROVIDERS = ("openai", "anthropic", "mock")


def stdin_is_interactive() -> bool:
    """True when a person can answer a prompt (stdin is a terminal). Tests monkeypatch this."""
    stream = sys.stdin
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def _fail(ctx: click.Context, message: str, code: int = EXIT_USAGE_ERROR) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    ctx.exit(code)


def _display(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when it is inside it (shorter output), else absolute."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def _user_path(value: Path | None, cwd: Path, project_root: Path | None = None) -> str | None:
    """A path option as the plugin should see it.

    Relative paths are relative to the current directory, as the shell completed them; if
    nothing exists there but does under the project root (the FluxLoop convention for
    ``--inputs inputs/x.yaml``), the project-relative spelling is kept for the loader.
    """
    if value is None:
        return None
    path = value.expanduser()
    if path.is_absolute():
        return str(path)
    here = cwd / path
    if project_root is not None and not here.exists() and (project_root / path).exists():
        return str(path)
    return str(here)


def _split_personas(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[str] | None:
    """Click callback: ``"a, b"`` -> ``["a", "b"]``; an empty list is a usage error."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give at least one persona name, e.g. -p novice,expert")
    return names


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_plan(plan: ExperimentPlan, cfg: LoadedConfig, cwd: Path) -> list[str]:
    """The ``[INFO]`` lines shown before running (seeds/001's progress section)."""
    n_loaded = plan.n_inputs if plan.factored else plan.total // max(plan.iterations, 1)
    source = plan.source
    if source != "base_inputs":
        source = _display(Path(source), cwd)
    lines = [
        "[INFO] Starting experiment...",
        f"[INFO] Experiment: {cfg.experiment_name} ({_display(cfg.config_path, cwd)})",
        f"[INFO] Loaded {_plural(n_loaded, 'input')} from {source}",
        f"[INFO] {plan.describe()}",
    ]
    sim = cfg.simulation
    if sim.multi_turn.enabled:
        sup = sim.multi_turn.supervisor
        lines.append(
            f"[INFO] Multi-turn: up to {sim.multi_turn.max_turns} turns, "
            f"supervisor {sup.provider}" + (f" ({sup.model})" if sup.provider != "mock" else "")
        )
    return lines


def describe_summary(
    summary: ExperimentSummary | None, experiment_dir: Path | None, cwd: Path
) -> list[str]:
    """The closing lines: counts, average duration, status, and where the results are."""
    lines: list[str] = []
    if summary is not None:
        selected = (
            f" of {summary.total_cases} selected"
            if summary.total_cases != summary.total_traces
            else ""
        )
        lines.append(
            f"[INFO] Experiment {summary.status}: {summary.total_traces} total{selected}, "
            f"{summary.successful} successful, {summary.failed} failed, "
            f"avg duration {summary.avg_duration_ms:.1f} ms"
        )
    if experiment_dir is not None:
        lines.append(f"Results: {_display(experiment_dir, cwd)}")
    return lines


def _build_overrides(ctx: click.Context, fields: dict[str, Any]) -> Overrides:
    from pydantic import ValidationError

    from ..config import Overrides

    try:
        return Overrides(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        # Type checks already happened in click; this only trips on contract drift.
        problems = "; ".join(
            f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}" for err in exc.errors()
        )
        _fail(ctx, f"invalid option value: {problems}")


@click.command("experiment")
@click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Simulation config; relative to the project with --project, else to the current "
    "directory.",
)
@click.option("--project", help="Project name under the FluxLoop root (<root>/<NAME>/).")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_ROOT,
    help="FluxLoop root directory holding the projects.  [default: ./fluxloop]",
)
@click.option("--iterations", "-i", type=int, help="Runs per input (1-1000). [default: config]")
@click.option(
    "--personas",
    "-p",
    callback=_split_personas,
    help="Comma-separated personas to use. [default: all]",
)
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inputs file to run instead of the configured one.",
)
@click.option(
    "--multi-turn/--no-multi-turn",
    default=None,
    help="Enable/disable supervisor-driven conversations. [default: config]",
)
@click.option("--max-turns", type=int, help="Maximum turns per conversation (2-50).")
@click.option(
    "--auto-approve-tools/--manual-approve-tools",
    "--auto-approve/--manual-approve",
    "auto_approve_tools",
    default=None,
    help="Tool approval behaviour in conversations. [default: config]",
)
@click.option("--persona-override", "--persona", "persona_override", help="Force one persona id.")
@click.option(
    "--supervisor-provider",
    type=click.Choice(SUPERVISOR_PROVIDERS),
    help="Supervisor implementation. [default: config]",
)
@click.option("--supervisor-model", help="Supervisor model name. [default: config]")
@click.option("--supervisor-temperature", type=float, help="Supervisor sampling temperature (0-2).")
@click.option(
    "--supervisor-api-key",
    help="API key for supervisor calls (prefer the FLUXLOOP_SUPERVISOR_API_KEY or "
    "OPENAI_API_KEY environment variable: options are visible to other local users).",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for results (relative to the current directory). [default: config, "
    "experiments/]",
)
@click.option("--experiment-name", "--name", "experiment_name", help="Custom experiment name.")
@click.option(
    "--resume",
    type=click.Path(file_okay=False, path_type=Path),
    help="Resume an interrupted experiment directory, skipping completed cases.",
)
@click.option("--yes", "-y", is_flag=True, help="Skip the confirmation prompt (CI/automation).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- PYTEST_ARGS]...")
@click.pass_context
def run_experiment(
    ctx: click.Context,
    config: Path,
    project: str | None,
    root: Path,
    iterations: int | None,
    personas: list[str] | None,
    inputs_file: Path | None,
    multi_turn: bool | None,
    max_turns: int | None,
    auto_approve_tools: bool | None,
    persona_override: str | None,
    supervisor_provider: str | None,
    supervisor_model: str | None,
    supervisor_temperature: float | None,
    supervisor_api_key: str | None,
    output_dir: Path | None,
    experiment_name: str | None,
    resume: Path | None,
    yes: bool,
    pytest_args: Sequence[str],
) -> None:
    """Run a simulation experiment: every input × persona × iteration as a pytest test.

    Options override configs/simulation.yaml for this run. Arguments after `--` go to
    pytest unchanged, e.g. `fluxloop run experiment -y -- -x -k refund`.

    Exit codes (pytest's): 0 all cases passed, 1 some case failed, 2 interrupted,
    4 usage or configuration error, 5 no cases selected.
    """
    cwd = Path.cwd()
    try:
        config_path = resolve_config_path(config, project, root, cwd)
    except ConfigNotFoundError as err:
        _fail(ctx, str(err))

    from ..config import project_root_for

    guessed_root = project_root_for(config_path.resolve())
    fields: dict[str, Any] = {
        "iterations": iterations,
        "personas": personas,
        "inputs_file": _user_path(inputs_file, cwd, guessed_root),
        "output_directory": _user_path(output_dir, cwd),
        "experiment_name": experiment_name,
        "multi_turn": multi_turn,
        "max_turns": max_turns,
        "auto_approve_tools": auto_approve_tools,
        "persona_override": persona_override,
        "supervisor_provider": supervisor_provider,
        "supervisor_model": supervisor_model,
        "supervisor_temperature": supervisor_temperature,
        "supervisor_api_key": supervisor_api_key,
        "resume": _user_path(resume, cwd, guessed_root),
    }
    overrides = _build_overrides(ctx, fields)

    # Load and plan now, before asking or running anything: a bad config must fail fast.
    from ..artifacts.paths import OutputPathError, resolve_output_root, validate_experiment_name
    from ..config import load_config
    from ..errors import ConfigError
    from ..plan.cases import plan_experiment

    try:
        loaded = load_config(config_path, overrides)
        plan = plan_experiment(loaded)
        # Same checks the plugin applies before writing; here they fail before the prompt.
        validate_experiment_name(loaded.experiment_name)
        resolve_output_root(loaded.simulation.output_directory, loaded.project_root)
    except (ConfigError, OutputPathError) as err:
        _fail(ctx, str(err))
    for line in describe_plan(plan, loaded, cwd):
        click.echo(line)
    for notice in loaded.notices:
        click.echo(f"[WARN] {notice}")

    # No terminal on stdin (CI, pipes) means nobody can answer: proceed rather than hang.
    if not yes and stdin_is_interactive() and not click.confirm("Proceed?", default=True):
        click.echo("Cancelled; nothing was run.", err=True)
        ctx.exit(EXIT_TESTS_FAILED)

    args = build_pytest_args(
        loaded.config_path,
        overrides,
        project_root=loaded.project_root,
        extra_args=pytest_args,
    )
    from .bridge import run_pytest

    code, result = run_pytest(args, api_key=supervisor_api_key)
    for line in describe_summary(result.summary, result.experiment_dir, cwd):
        click.echo(line)
    if code == EXIT_NO_TESTS:
        click.echo(
            "Error: no cases selected (check --personas, the inputs file and any -k/-m "
            "passed to pytest)",
            err=True,
        )
    ctx.exit(code)
