"""``fluxloop status``: which config is found, and the experiments in its output directory.

A read-only look at what earlier runs left behind, newest first: each ``exp_*`` folder with
its status from ``summary.json`` (or its absence), its trace counts and when it started. A
run that died is told from one still going the way ``run experiment`` tells it
(:func:`pytest_fluxloop.artifacts.resume.find_dead_runs`), with the ``--resume`` that
finishes it.

The earlier FluxLoop CLI had ``status check``, ``status experiments`` and ``status traces``;
scripts still call them, so they are accepted and give this same report.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .location import location_options
from .pytest_args import DEFAULT_CONFIG, DEFAULT_ROOT, resolve_config_path
from .run import _display, output_root_of

__all__ = ["ExperimentEntry", "read_experiments", "status_group"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LIMIT = 10
_NAME_TIME = "%Y%m%d_%H%M%S"  # exp_<YYYYMMDD_HHMMSS>, as make_experiment_dir names folders
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExperimentEntry:
    """One experiment folder as ``status`` reports it."""

    path: Path
    status: str
    """``complete``, ``incomplete`` (cases reported without a record), ``interrupted``,
    ``failed``, ``running`` (from ``summary.json``), ``died`` (``running``, its process gone
    on this host), ``incomplete`` also for a folder with no ``summary.json``, or
    ``unreadable`` (a ``summary.json`` that does not parse)."""
    total_traces: int | None
    total_cases: int | None
    successful: int | None
    failed: int | None
    started: datetime | None
    pid: int | None = None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form for ``--json``."""
        return {
            "folder": self.path.name,
            "path": str(self.path),
            "status": self.status,
            "total_traces": self.total_traces,
            "total_cases": self.total_cases,
            "successful": self.successful,
            "failed": self.failed,
            "started_at": self.started.isoformat() if self.started else None,
        }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return None


def _time_from_name(folder: Path) -> datetime | None:
    """The start time in the folder's name (local time), or None for another name."""
    stamp = folder.name.removeprefix("exp_")[: len("YYYYmmdd_HHMMSS")]
    try:
        return datetime.strptime(stamp, _NAME_TIME).astimezone()
    except ValueError:
        return None


def _count_lines(path: Path) -> int | None:
    """Whole lines of a JSONL file (a torn last line is not a trace), or None if unreadable."""
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(_CHUNK), b""))
    except OSError:
        return None


def _entry(folder: Path, dead: dict[Path, int]) -> ExperimentEntry:
    from ..artifacts.writer import SUMMARY_FILE, TRACE_SUMMARY_FILE

    summary_file = folder / SUMMARY_FILE
    if not summary_file.is_file():
        # No summary (save_aggregated_metrics off, or killed before its first checkpoint):
        # the trace lines on disk are all there is to count.
        return ExperimentEntry(
            path=folder,
            status="incomplete",
            total_traces=_count_lines(folder / TRACE_SUMMARY_FILE),
            total_cases=None,
            successful=None,
            failed=None,
            started=_time_from_name(folder),
        )
    try:
        data = json.loads(summary_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        started = _time_from_name(folder)
        return ExperimentEntry(folder, "unreadable", None, None, None, None, started)
    status = str(data.get("status") or "unknown")
    key = folder.resolve()
    if key in dead:
        status = "died"
    return ExperimentEntry(
        path=folder,
        status=status,
        total_traces=_int(data.get("total_traces")),
        total_cases=_int(data.get("total_cases")),
        successful=_int(data.get("successful")),
        failed=_int(data.get("failed")),
        started=_time(data.get("started_at")) or _time_from_name(folder),
        pid=dead.get(key),
    )


def read_experiments(output_root: Path) -> list[ExperimentEntry]:
    """The ``exp_*`` folders under ``output_root``, newest first; reads only each folder's
    ``summary.json`` (``trace_summary.jsonl`` too when there is no summary)."""
    from ..artifacts.resume import find_dead_runs

    if not output_root.is_dir():
        return []
    dead = {run.path.resolve(): run.pid for run in find_dead_runs(output_root)}
    try:
        folders = [path for path in output_root.glob("exp_*") if path.is_dir()]
    except OSError:
        return []
    entries = [_entry(folder, dead) for folder in folders]

    def newest_first(entry: ExperimentEntry) -> tuple[float, str]:
        when = entry.started.timestamp() if entry.started else _mtime(entry.path)
        return (-when, entry.path.name)

    return sorted(entries, key=newest_first)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _counts(entry: ExperimentEntry) -> str:
    traces = "?" if entry.total_traces is None else str(entry.total_traces)
    cases = "?" if entry.total_cases is None else str(entry.total_cases)
    return f"{traces}/{cases}"


def _optional(value: int | None) -> str:
    return "-" if value is None else str(value)


def describe_experiments(
    entries: list[ExperimentEntry],
    shown: int,
    cwd: Path,
    verbose: bool = False,
    run_command: str = "fluxloop run experiment",
) -> list[str]:
    """The table of ``status``: one row per folder, then how to finish each dead run
    (``run_command`` names the same config as the status did, so it can be pasted)."""
    rows = [("FOLDER", "STATUS", "TRACES", "OK", "FAILED", "STARTED")]
    for entry in entries[:shown]:
        started = entry.started.strftime("%Y-%m-%d %H:%M:%S") if entry.started else "-"
        folder = str(entry.path) if verbose else entry.path.name
        rows.append(
            (
                folder,
                entry.status,
                _counts(entry),
                _optional(entry.successful),
                _optional(entry.failed),
                started,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]
    lines = [line.rstrip() for line in lines]
    if len(entries) > shown:
        lines.append(f"  ... {len(entries) - shown} older (--limit N shows more)")
    for entry in entries[:shown]:
        if entry.status == "died":
            folder = _display(entry.path, cwd)
            lines.append(
                f"[WARN] {entry.path.name} did not finish (its process {entry.pid} is gone); "
                f"finish it with: {run_command} --resume {folder}"
            )
    return lines


def _status_options(command: F) -> F:
    """The options of ``status`` and of each legacy subcommand (the same report)."""
    decorators = [
        location_options(
            "Simulation config; relative to the project with --project, else to the "
            "current directory."
        ),
        click.option(
            "--output-dir",
            "--output",
            "-o",
            "output_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Look here for experiment folders instead of the config's output_directory "
            "(relative to the current directory); no config is needed then.",
        ),
        click.option(
            "--limit",
            "-l",
            type=click.IntRange(min=1),
            default=DEFAULT_LIMIT,
            show_default=True,
            help="Show at most N experiments, newest first.",
        ),
        click.option("--verbose", "-v", is_flag=True, help="Show full folder paths."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _report(
    config: Path,
    project: str | None,
    root: Path,
    output_dir: Path | None,
    limit: int,
    verbose: bool,
    as_json: bool,
    only: str | None = None,
) -> None:
    """Find the config and output directory, read the experiments there, print the report."""
    from ..errors import ConfigNotFoundError

    cwd = Path.cwd()
    config_path: Path | None
    try:
        config_path = resolve_config_path(config, project, root, cwd, "fluxloop status")
    except ConfigNotFoundError:
        if output_dir is None:
            raise  # nothing tells where experiments are: exit 4 with the finder's advice
        config_path = None
    name: str | None = None
    if config_path is not None:
        from ..config import Overrides, load_config

        given = (
            Overrides.model_validate({"output_directory": str(cwd / output_dir)})
            if output_dir
            else None
        )
        cfg = load_config(config_path, given)  # ConfigError: exit 4, as a run would
        name = cfg.experiment_name
        output_root = output_root_of(cfg)
    else:
        assert output_dir is not None
        output_root = output_dir.expanduser()
        output_root = output_root if output_root.is_absolute() else cwd / output_root

    entries = read_experiments(output_root)
    if only is not None:
        entries = [entry for entry in entries if entry.path.name.startswith(only)]
    shown = min(limit, len(entries))
    if as_json:
        report = {
            "config": str(config_path) if config_path else None,
            "experiment": name,
            "output_directory": str(output_root),
            "total": len(entries),
            "experiments": [entry.as_json() for entry in entries[:shown]],
        }
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    click.echo(f"Config: {_display(config_path, cwd) if config_path else 'none (--output-dir)'}")
    if name is not None:
        click.echo(f"Experiment: {name}")
    click.echo(f"Output directory: {_display(output_root, cwd)}")
    if not entries:
        where = "" if output_root.is_dir() else " (the folder does not exist yet)"
        match = f" matching {only!r}" if only is not None else ""
        click.echo(f"No experiments{match} yet{where}; run one with: fluxloop run experiment")
        return
    newest = "" if shown == len(entries) else f", the {shown} newest shown"
    click.echo(f"Experiments: {len(entries)}{newest}")
    for line in describe_experiments(
        entries, shown, cwd, verbose, _run_command(config, project, root)
    ):
        click.echo(line)


def _run_command(config: Path, project: str | None, root: Path) -> str:
    """``fluxloop run experiment`` with the options that find the config status used."""
    words = ["fluxloop", "run", "experiment"]
    if project:
        words += ["--project", project]
        if root != DEFAULT_ROOT:
            words += ["--root", str(root)]
    if config != DEFAULT_CONFIG:
        words += ["--config", str(config)]
    return shlex.join(words)


@click.group(
    "status",
    invoke_without_command=True,
    short_help="List the experiments in the config's output directory.",
)
@_status_options
@click.pass_context
def status_group(ctx: click.Context, **options: Any) -> None:
    """Show the config found, its output directory and the experiments there, newest first.

    Each experiment folder is listed with its status (complete, interrupted, failed,
    running, died: its process is gone, incomplete: records missing or no summary.json),
    its traces (written / selected), successes, failures and start time. Read-only.
    """
    ctx.obj = options  # defaults for the legacy subcommands
    if ctx.invoked_subcommand is None:
        _report(**options)


def _merged(ctx: click.Context, options: dict[str, Any]) -> dict[str, Any]:
    """A subcommand's options, taking the group's where the subcommand left the default:
    ``fluxloop status --project demo experiments`` means the same as putting it after."""
    inherited: dict[str, Any] = ctx.obj if isinstance(ctx.obj, dict) else {}
    defaulted = {ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None}
    return {
        key: inherited[key]
        if key in inherited and ctx.get_parameter_source(key) in defaulted
        else value
        for key, value in options.items()
    }


@status_group.command("experiments")
@_status_options
@click.pass_context
def status_experiments(ctx: click.Context, **options: Any) -> None:
    """The same report as `fluxloop status` (the earlier CLI's spelling)."""
    _report(**_merged(ctx, options))


@status_group.command("check")
@_status_options
@click.pass_context
def status_check(ctx: click.Context, **options: Any) -> None:
    """The same report as `fluxloop status`; `fluxloop doctor` checks the installation."""
    _report(**_merged(ctx, options))


@status_group.command("traces")
@click.argument("experiment", required=False)
@_status_options
@click.pass_context
def status_traces(ctx: click.Context, experiment: str | None, **options: Any) -> None:
    """The same report, limited to folders starting with EXPERIMENT when given.

    Each folder's traces are in its trace_summary.jsonl (one line per trace).
    """
    _report(**_merged(ctx, options), only=experiment)
