"""``fluxloop doctor``: is this installation, and this project's config, ready to run?

One line per check, each ``OK``, ``WARN`` or ``FAIL``; exit 0 when nothing fails, 1
otherwise. The config check is the one ``fluxloop run experiment`` makes before running
(:func:`~pytest_fluxloop.cli.run.load_and_check`: config, output location, target import,
supervisor settings), so a doctor that passes means the run gets past its checks too.

API keys are reported by name only (set or not), never by value or any part of it, and every
line goes through the run's :class:`~pytest_fluxloop.redact.Redactor` before it is printed, so
a key quoted inside an error message is hidden as well.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from ..errors import ConfigError, ConfigNotFoundError
from .environment import (
    OUR_ENTRY_POINT,
    CommandInfo,
    conflict_problems,
    describe_entry_point,
    fluxloop_command,
)
from .location import location_options
from .pytest_args import DEFAULT_CONFIG, resolve_config_path
from .run import _display, load_and_check

if TYPE_CHECKING:
    from ..redact import Redactor

__all__ = ["API_KEY_NAMES", "Check", "doctor"]

Level = Literal["OK", "WARN", "FAIL"]

API_KEY_NAMES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "FLUXLOOP_SUPERVISOR_API_KEY")
"""Environment variables reported as set or not (names only)."""

# Distribution -> (required, what it is for when missing).
_PACKAGES: tuple[tuple[str, bool, str], ...] = (
    ("pytest", True, "pytest-fluxloop runs every case as a pytest test"),
    ("pytest-xdist", False, "optional, for -n; pip install 'pytest-fluxloop[xdist]'"),
    ("openai", True, "the openai supervisor; pip install openai"),
    ("anthropic", False, "optional, for the anthropic supervisor; pip install anthropic"),
)


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    level: Level
    detail: str


def _version(dist: str) -> str | None:
    from importlib import metadata  # here: `fluxloop --help` must not pay for it

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _installation() -> list[Check]:
    """Python, pytest-fluxloop and the packages it runs with."""
    import pytest_fluxloop

    ours = _version("pytest-fluxloop") or "unknown version"
    checks = [
        Check("Python", "OK", f"{platform.python_version()} ({sys.executable})"),
        Check("pytest-fluxloop", "OK", f"{ours} ({Path(pytest_fluxloop.__file__).parent})"),
    ]
    for dist, required, purpose in _PACKAGES:
        version = _version(dist)
        if version is not None:
            checks.append(Check(dist, "OK", version))
        else:
            checks.append(Check(dist, "FAIL" if required else "WARN", f"not installed ({purpose})"))
    return checks


def _fluxloop_checks() -> tuple[list[Check], str | None]:
    """What ``import fluxloop`` loads, which ``fluxloop`` command is on PATH, and which
    installed distributions conflict with ours (judged by ``pytest_fluxloop.distributions``);
    with the advice to print once when any of them fails."""
    foreign, conflicts, advice = conflict_problems()
    checks = []
    if foreign is not None:
        checks.append(Check("import fluxloop", "FAIL", foreign))
    else:
        # Located, not imported: the check must not run any package's import-time code.
        spec = importlib.util.find_spec("fluxloop")
        where = Path(spec.origin).parent if spec and spec.origin else "?"
        checks.append(Check("import fluxloop", "OK", f"pytest-fluxloop's SDK ({where})"))
    command = _command_check(fluxloop_command())
    checks.append(command)
    if conflicts:
        checks.append(Check("conflicting packages", "FAIL", "\n".join(conflicts)))
    else:
        checks.append(Check("conflicting packages", "OK", "none"))
    failed = foreign is not None or conflicts or command.level == "FAIL"
    return checks, advice if failed else None


def _command_check(command: CommandInfo) -> Check:
    name = "fluxloop command"
    if command.path is None:
        return Check(
            name,
            "WARN",
            "no `fluxloop` on PATH (activate this environment, or run "
            f"`{sys.executable} -m pytest_fluxloop.cli`)",
        )
    if command.entry_point is None:
        return Check(
            name,
            "WARN",
            f"{command.path}: cannot read which program it runs, so cannot tell whether it "
            "is pytest-fluxloop's",
        )
    detail = f"{command.path} runs {describe_entry_point(command.entry_point)}"
    if not command.ours:
        python = f" with {command.interpreter}" if command.interpreter else ""
        return Check(
            name,
            "FAIL",
            f"{detail}{python}, not pytest-fluxloop's CLI ({OUR_ENTRY_POINT}:main): scripts "
            "calling `fluxloop` get that tool; uninstall it or put this environment's "
            f"{Path(sys.executable).parent} first on PATH",
        )
    if not command.same_environment:
        return Check(
            name,
            "WARN",
            f"{detail} from another environment ({command.interpreter}), not this one "
            f"({sys.executable}): scripts calling `fluxloop` run that installation",
        )
    owner = f" ({', '.join(command.owners)})" if command.owners else ""
    return Check(name, "OK", f"{detail}{owner}")


def _config_checks(
    config: Path, project: str | None, root: Path, explicit: bool
) -> tuple[list[Check], frozenset[str]]:
    """The run's own pre-flight check of the config, and the config's secrets (to redact).

    With no config given and none at the default place, there is nothing to check: a WARN,
    not a failure (``doctor`` also answers "is my installation fine?" outside a project).
    """
    cwd = Path.cwd()
    try:
        config_path = resolve_config_path(config, project, root, cwd, "fluxloop doctor")
    except ConfigNotFoundError as exc:
        if explicit:
            return [Check("config", "FAIL", str(exc))], frozenset()
        return [
            Check(
                "config",
                "WARN",
                f"none at {DEFAULT_CONFIG} here; pass --config PATH or --project NAME to check one",
            )
        ], frozenset()
    from ..config import Overrides

    shown = _display(config_path, cwd)
    try:
        experiment = load_and_check(config_path, Overrides())
    except ConfigError as exc:
        return [Check("config", "FAIL", f"{shown}\n{exc}")], frozenset()
    target = experiment.cfg.simulation.runner.target_spec
    checks = [
        Check(
            "config",
            "OK",
            f"{shown}: experiment {experiment.name!r}, {experiment.plan.describe()}; "
            f"target {target} imports",
        )
    ]
    checks += [Check("config", "WARN", notice) for notice in experiment.notices]
    return checks, experiment.cfg.secrets()


def _key_checks(before: set[str]) -> list[Check]:
    """Whether each API key variable is set: its name and where it came from, nothing else."""
    checks = []
    for name in API_KEY_NAMES:
        if not os.environ.get(name):
            checks.append(Check(name, "WARN", "not set"))
        elif name in before:
            checks.append(Check(name, "OK", "set"))
        else:
            checks.append(Check(name, "OK", "set (from the project's .env)"))
    return checks


def _lines(checks: list[Check], redactor: Redactor) -> list[str]:
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        first, *rest = redactor.redact_text(check.detail).splitlines() or [""]
        lines.append(f"{check.level:<4}  {check.name:<{width}}  {first}".rstrip())
        indent = " " * (4 + 2 + width + 2)
        lines += [f"{indent}{line}".rstrip() for line in rest]
    return lines


@click.command("doctor", short_help="Check the installation and the config (OK/WARN/FAIL).")
@location_options(
    "Simulation config to check; relative to the project with --project, else to the "
    "current directory.",
    project_flags=("--project", "-p"),
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option(
    # The earlier CLI's MCP index: no part of pytest-fluxloop. Accepted so scripts that pass
    # it still get a report, which says it was ignored.
    "--index-dir",
    type=click.Path(path_type=Path),
    hidden=True,
)
@click.pass_context
def doctor(
    ctx: click.Context,
    config: Path,
    project: str | None,
    root: Path,
    as_json: bool,
    index_dir: Path | None,
) -> None:
    """Check the installation and the project's config; exit 1 if any check FAILs.

    Reports Python, pytest-fluxloop and the packages it uses, whether `import fluxloop` and
    the `fluxloop` command on PATH are pytest-fluxloop's, conflicting FluxLoop packages,
    which API key variables are set (names only), and, when a config is found, the same
    config and target check `fluxloop run experiment` makes before running.
    """
    from ..redact import Redactor

    keys_before = {name for name in API_KEY_NAMES if os.environ.get(name)}
    checks = _installation()
    # Before the config check: importing the target may put the project on sys.path.
    fluxloop_checks, advice = _fluxloop_checks()
    checks += fluxloop_checks
    explicit = ctx.get_parameter_source("config") != click.core.ParameterSource.DEFAULT
    config_checks, secrets = _config_checks(config, project, root, explicit or bool(project))
    checks += config_checks
    # After the config check: loading it reads the project's .env, as a run does.
    checks += _key_checks(keys_before)
    if index_dir is not None:
        checks.append(
            Check(
                "--index-dir",
                "WARN",
                "ignored: the FluxLoop MCP index is not part of pytest-fluxloop",
            )
        )
    # Built last, so keys loaded from .env are known to it too.
    redactor = Redactor(extra_secrets=secrets)
    failed = sum(check.level == "FAIL" for check in checks)
    warned = sum(check.level == "WARN" for check in checks)
    if as_json:
        report = {
            "ok": failed == 0,
            "checks": [
                {
                    "name": check.name,
                    "level": check.level,
                    "detail": redactor.redact_text(check.detail),
                }
                for check in checks
            ],
            "advice": advice,
        }
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for line in _lines(checks, redactor):
            click.echo(line)
        if advice is not None:
            click.echo(f"\n{advice}")
        verdict = f"{failed} failed" if failed else "no problems"
        click.echo(f"\n{len(checks)} checks: {verdict}, {warned} warning{'s' * (warned != 1)}.")
    ctx.exit(1 if failed else 0)
