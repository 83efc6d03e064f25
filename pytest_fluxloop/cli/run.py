"""``fluxloop run experiment``: load and plan the experiment, confirm, then run it as pytest.

The CLI decides nothing about *how* cases run: it loads the experiment through the same entry
point as the plugin (``Experiment.load``, so a typo or an unsupported setting fails before
anything is shown or started, with exit code 4), shows the plan, and hands a pytest command
line to ``pytest.main``. Everything it can do, ``pytest --fluxloop-config ...`` can do too.

The override options (``--iterations``, ``--inputs`` ...) are generated from the override
table in ``pytest_fluxloop.config.overrides``. ``--dry-run`` stops after the checks and the
plan; ``--display/--no-display`` only choose what is printed while cases run, so they are
plain options here rather than overrides.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ..config.overrides import (
    OVERRIDES,
    SUPERVISOR_KEY_ENV,
    SUPERVISOR_PROVIDERS,
    OverrideSpec,
    split_names,
)
from .location import location_options
from .pytest_args import (
    build_pytest_args,
    resolve_config_path,
)

if TYPE_CHECKING:
    from ..config import LoadedConfig, Overrides
    from ..plan.cases import ExperimentPlan
    from ..records import ExperimentSummary
    from ..run import Experiment

__all__ = [
    "SUPERVISOR_PROVIDERS",
    "describe_dead_runs",
    "describe_plan",
    "describe_summary",
    "load_and_check",
    "output_root_of",
    "run_experiment",
]

F = TypeVar("F", bound=Callable[..., Any])

# pytest's exit codes, which `fluxloop run experiment` passes through.
EXIT_OK = 0
EXIT_TESTS_FAILED = 1
EXIT_INTERRUPTED = 2
EXIT_USAGE_ERROR = 4
EXIT_NO_TESTS = 5


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


def _split_list(
    spec: OverrideSpec,
) -> Callable[[click.Context, click.Parameter, str | None], list[str] | None]:
    """Click callback of a ``list`` override: ``"a, b"`` -> ``["a", "b"]``; no items is a
    usage error (an empty selection would run nothing)."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
        if value is None:
            return None
        names = split_names(value)
        if not names:
            raise click.BadParameter(spec.empty_list_message)
        return names

    return callback


def _click_option(spec: OverrideSpec) -> Callable[[F], F]:
    """The ``click.option`` decorator of one override row (all aliases, its help)."""
    attrs: dict[str, Any] = {"help": spec.cli_help, "default": None}
    if spec.choices:
        attrs["type"] = click.Choice(spec.choices)
    elif spec.kind == "int":
        attrs["type"] = int
    elif spec.kind == "float":
        attrs["type"] = float
    elif spec.kind == "list":
        attrs["callback"] = _split_list(spec)
    elif spec.path is not None:
        attrs["type"] = click.Path(
            file_okay=not spec.path.is_dir, dir_okay=spec.path.is_dir, path_type=Path
        )
    # The field name as the last declaration: click passes the value as that keyword.
    return click.option(*spec.cli, spec.name, **attrs)


def override_options(command: F) -> F:
    """Decorator: one click option per row of the override table, in table order.

    The command receives every override as a keyword argument named like the Overrides
    field (None when not given); ``_cli_overrides`` turns them into ``Overrides``.
    """
    # click lists options in decorator order, top first: apply the last row first.
    for spec in reversed(OVERRIDES):
        command = _click_option(spec)(command)
    return command


def _cli_overrides(
    ctx: click.Context, values: dict[str, Any], cwd: Path, project_root: Path
) -> Overrides:
    """``Overrides`` from the generated options' values, with paths resolved as the table says.

    ``--output-dir`` is taken from the current directory; ``--inputs``/``--resume`` too,
    unless only the project root has that path (then the project-relative spelling stays).
    ``--output-dir`` must not leave the current directory through ``..`` or a symlink when
    relative (checked here, where the base is known), and stays unresolved for the loader,
    which checks that no symlink leads it out of the project.
    """
    fields: dict[str, Any] = {}
    for spec in OVERRIDES:
        value = values.get(spec.name)
        if spec.path is not None:
            if spec.path.stays_inside and value is not None:
                from ..artifacts.paths import check_output_option

                # OutputPathError is a ConfigError: the CLI's error boundary exits 4.
                check_output_option(spec.cli_flag, value, cwd)
            base = project_root if spec.path.cli_base == "cwd_or_project" else None
            value = _user_path(value, cwd, base)
        fields[spec.name] = value
    return _build_overrides(ctx, fields)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_plan(plan: ExperimentPlan, cfg: LoadedConfig, cwd: Path) -> list[str]:
    """The ``[INFO]`` lines shown before running: the experiment, its inputs and its plan."""
    n_loaded = plan.n_inputs if plan.factored else plan.full_total // max(plan.iterations, 1)
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
    lines.append(f"[INFO] Output: {_display(output_root_of(cfg), cwd)}")
    from ..run.experiment import experiment_cassettes

    cassettes = experiment_cassettes(cfg)
    if cassettes is not None:
        lines.append(f"[INFO] Cassettes: {cassettes.mode} ({_display(cassettes.folder, cwd)})")
    if cfg.overrides.get("no_collector"):
        # Said only when asked: without a collector_url nothing is sent either.
        lines.append(
            f"[INFO] Collector: off ({cfg.overrides.option('no_collector')}); "
            "traces stay local (files only)"
        )
    else:
        from ..sinks.http import collector_target_for

        target = collector_target_for(cfg)  # checked by Experiment.load already
        if target is not None:
            lines.append(f"[INFO] Collector: {target.url} (traces are sent there too)")
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


def describe_dead_runs(cfg: LoadedConfig, cwd: Path) -> list[str]:
    """``[WARN]`` lines about earlier runs in the output directory that died before their end
    (``summary.json`` still ``running``, their process gone), each with how to finish it.

    The folder being resumed is left out; nothing is read beyond each ``summary.json``.
    """
    from ..artifacts.resume import find_dead_runs

    root = output_root_of(cfg)
    resume = cfg.overrides.get("resume")
    skip = None
    if resume is not None:
        skip = Path(resume) if Path(resume).is_absolute() else cfg.project_root / resume
    lines = []
    for dead in find_dead_runs(root, skip=skip):
        folder = _display(dead.path, cwd)
        lines.append(
            f"[WARN] An earlier run did not finish: {folder} (summary.json still says "
            f"'running' with {dead.total_traces} of {dead.total_cases} traces counted; its "
            f"process {dead.pid} is gone). To finish it, run this command again with "
            f"--resume {folder}"
        )
    return lines


def output_root_of(cfg: LoadedConfig) -> Path:
    """The folder holding the experiment folders, as ``output_directory`` (after overrides)
    names it: relative to the project root. Only for reading and messages: it is neither
    checked nor created here (the run's files sink does that)."""
    root = Path(cfg.simulation.output_directory).expanduser()
    return root if root.is_absolute() else cfg.project_root / root


def _build_overrides(ctx: click.Context, fields: dict[str, Any]) -> Overrides:
    from pydantic import ValidationError

    from ..config import Overrides

    try:
        return Overrides(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        # Type checks already happened in click; this only trips on contract drift.
        problems = "; ".join(f"{_option_of(err['loc'])}: {err['msg']}" for err in exc.errors())
        _fail(ctx, f"invalid option value: {problems}")


def _option_of(loc: tuple[int | str, ...]) -> str:
    """The CLI option of a validation error's field (the field name if it is not one)."""
    from ..config.overrides import option_name

    name = str(loc[0]) if loc else "?"
    try:
        return option_name(name, "cli")
    except KeyError:
        return name


def evaluation_args(gates: Sequence[str], *, strict_judges: bool, evaluate: bool) -> list[str]:
    """The pytest options of ``--gate``, ``--strict-judges`` and ``--no-evaluate``."""
    args = [f"--fluxloop-gate={gate}" for gate in gates]
    if strict_judges:
        args.append("--fluxloop-strict-judges")
    if not evaluate:
        args.append("--fluxloop-no-evaluate")
    return args


def load_and_check(
    config_path: Path,
    overrides: Overrides,
    *,
    gates: Sequence[str] = (),
    evaluate: bool = True,
) -> Experiment:
    """``Experiment.load``, the plugin's entry point, plus ``Experiment.check``: the output
    location, the target (imported and inspected), the supervisor settings. A ConfigError
    fails the command (exit 4) before the plan is shown or anything is asked.

    ``fluxloop doctor`` calls this too, so it judges a config exactly as a run would.
    """
    from ..run import Experiment

    experiment = Experiment.load(config_path, overrides, gates=gates, evaluate=evaluate)
    experiment.check()
    return experiment


@click.command("experiment")
@location_options(
    "Simulation config; relative to the project with --project, else to the current directory."
)
@override_options
@click.option("--yes", "-y", is_flag=True, help="Skip the confirmation prompt (CI/automation).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the config and target and show the plan as a run would, then stop: nothing "
    "runs, no results folder is created.",
)
@click.option(
    "--display/--no-display",
    default=True,
    help="Show live progress while cases run; --no-display prints only the final summary.  "
    "[default: display]",
)
@click.option(
    "--gate",
    "gates",
    multiple=True,
    metavar="GATE",
    help='A run-level gate, e.g. "pass^3>=0.8" or "success_rate>=90%" (repeatable; adds to '
    "evaluation.yaml gates). A failed gate exits 1 even when every case passed.",
)
@click.option(
    "--strict-judges",
    is_flag=True,
    help="Exit 1 when an LLM judge could not give a verdict (unscored).",
)
@click.option(
    "--report",
    "report",
    is_flag=True,
    help="Write the single-file HTML report (report.html) into the experiment folder.",
)
@click.option(
    "--no-evaluate",
    is_flag=True,
    help="Run the agent only: evaluation.yaml's evaluators are not run (gates still apply); "
    "evaluate later with `fluxloop evaluate experiment DIR`.",
)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- PYTEST_ARGS]...")
@click.pass_context
def run_experiment(
    ctx: click.Context,
    config: Path,
    project: str | None,
    root: Path,
    yes: bool,
    dry_run: bool,
    display: bool,
    gates: Sequence[str],
    strict_judges: bool,
    no_evaluate: bool,
    report: bool,
    pytest_args: Sequence[str],
    **overrides: Any,
) -> None:
    """Run a simulation experiment: every input × persona × iteration as a pytest test.

    Options override configs/simulation.yaml for this run. Arguments after `--` go to
    pytest unchanged, e.g. `fluxloop run experiment -y -- -x -k refund`.

    Exit codes (pytest's): 0 all cases passed (or --dry-run found no problem), 1 some case
    failed or a gate failed, 2 interrupted, 4 usage or configuration error, 5 no cases selected.
    """
    from .environment import conflict_warning

    # First: another FluxLoop installation can change what `import fluxloop` gives the
    # agent, so any error below may be its consequence.
    warning = conflict_warning()
    if warning is not None:
        click.echo(warning, err=True)

    cwd = Path.cwd()
    config_path = resolve_config_path(config, project, root, cwd)  # ConfigNotFoundError: exit 4

    from ..config import project_root_for

    guessed_root = project_root_for(config_path.resolve())
    given = _cli_overrides(ctx, overrides, cwd, guessed_root)

    # Load, check and plan now, before showing or asking anything: a bad or unsupported
    # setting must fail fast, with nothing printed that looks like a start.
    experiment = load_and_check(config_path, given, gates=gates, evaluate=not no_evaluate)
    for line in describe_plan(experiment.plan, experiment.cfg, cwd):
        click.echo(line)
    for notice in experiment.notices:
        click.echo(f"[WARN] {notice}")
    for line in describe_dead_runs(experiment.cfg, cwd):
        click.echo(line)

    args = build_pytest_args(
        experiment.cfg.config_path,
        given,
        project_root=experiment.cfg.project_root,
        extra_args=[
            *evaluation_args(gates, strict_judges=strict_judges, evaluate=not no_evaluate),
            *(["--fluxloop-report"] if report else []),
            *pytest_args,
        ],
        display=display,
    )
    if dry_run:
        # Everything a run checks before its first case has passed by now (a problem exits
        # 4 above); pytest is not started, so no results folder or cache appears.
        click.echo("[INFO] Dry run: the config and target check out; nothing was run.")
        key_note = ""
        if given.get("supervisor_api_key") is not None:
            key_note = f" (with {SUPERVISOR_KEY_ENV} set to the --supervisor-api-key value)"
        click.echo(f"[INFO] The run would be: pytest {shlex.join(args)}{key_note}")
        ctx.exit(EXIT_OK)

    # No terminal on stdin (CI, pipes) means nobody can answer: proceed rather than hang.
    if not yes and stdin_is_interactive() and not click.confirm("Proceed?", default=True):
        click.echo("Cancelled; nothing was run.", err=True)
        ctx.exit(EXIT_TESTS_FAILED)

    from .bridge import run_pytest

    # Not forwarded on the command line: run_pytest hands it over in the environment.
    code, result = run_pytest(args, api_key=given.text("supervisor_api_key"))
    for line in describe_summary(result.summary, result.experiment_dir, cwd):
        click.echo(line)
    if code == EXIT_NO_TESTS:
        click.echo(
            "Error: no cases selected (check --personas, the inputs file and any -k/-m "
            "passed to pytest)",
            err=True,
        )
    ctx.exit(code)
