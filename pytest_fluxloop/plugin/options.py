"""Command-line options and ini keys of the plugin, and turning them into config overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The override table imports nothing heavy; the pydantic model loads only when used.
from ..config.overrides import (
    OVERRIDES,
    SUPERVISOR_KEY_ENV,
    SUPERVISOR_PROVIDERS,
    OverrideSpec,
    split_names,
)

if TYPE_CHECKING:
    from ..config.loader import Overrides

__all__ = [
    "SUPERVISOR_KEY_ENV",
    "SUPERVISOR_PROVIDERS",
    "add_options",
    "config_path",
    "overrides_from_options",
    "value_options",
]


def add_options(parser: pytest.Parser) -> None:
    """Register ``--fluxloop-*`` options (in their own group) and the ``fluxloop_config`` ini.

    One option per row of the override table (two for an on/off pair), between
    ``--fluxloop-config`` and ``--fluxloop-progress``, which are not overrides.
    """
    group = parser.getgroup("fluxloop", "FluxLoop agent simulation")
    group.addoption(
        "--fluxloop-config",
        metavar="PATH",
        default=None,
        help="simulation.yaml of the experiment to run as test items",
    )
    for spec in OVERRIDES:
        _add_override_option(group, spec)
    group.addoption(
        "--fluxloop-progress",
        action="store_true",
        default=False,
        help="show a FluxLoop progress bar instead of per-test characters",
    )
    group.addoption(
        "--fluxloop-gate",
        action="append",
        default=[],
        metavar="GATE",
        help='a run-level gate, e.g. "pass^3>=0.8", "success_rate>=90%%", '
        '"p95_latency_ms<2000" (repeatable; adds to evaluation.yaml gates); a failed gate '
        "fails the session with exit code 1",
    )
    group.addoption(
        "--fluxloop-report",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="write the single-file HTML report at the end of the run (default: "
        "<experiment folder>/report.html; with several experiments, one in each folder)",
    )
    group.addoption(
        "--fluxloop-strict-judges",
        action="store_true",
        default=False,
        help="fail the session when an LLM judge could not give a verdict (unscored)",
    )
    group.addoption(
        "--fluxloop-no-evaluate",
        action="store_true",
        default=False,
        help="do not run evaluation.yaml's evaluators in this run (gates still apply; "
        "evaluate later with `fluxloop evaluate experiment DIR`)",
    )
    parser.addini(
        "fluxloop_config",
        "simulation.yaml run as test items (like --fluxloop-config)",
        default=None,
    )


def _add_override_option(group: pytest.OptionGroup, spec: OverrideSpec) -> None:
    """The pytest option(s) of one override row; rows without a pytest flag get none."""
    if not spec.pytest:
        return  # e.g. the supervisor API key: read from the environment instead
    dest = spec.pytest_dest
    if spec.kind == "bool":
        on, off = spec.pytest
        on_help, off_help = spec.pytest_help
        # default=None on the shared dest: "neither flag given" must stay "not overridden".
        group.addoption(on, dest=dest, action="store_true", default=None, help=on_help)
        group.addoption(off, dest=dest, action="store_false", help=off_help)
        return
    attrs: dict[str, Any] = {"dest": dest, "default": None, "help": spec.pytest_help[0]}
    if spec.kind in _PYTEST_TYPES:
        attrs["type"] = _PYTEST_TYPES[spec.kind]
    if spec.choices:
        attrs["choices"] = spec.choices
    if spec.metavar:
        attrs["metavar"] = spec.metavar
    group.addoption(spec.pytest[0], **attrs)


def value_options() -> frozenset[str]:
    """The long ``--fluxloop-*`` options that take a value (``--fluxloop-config PATH`` ...).

    xdist needs them as one ``--option=value`` word for remote workers (see
    :func:`.xdist.remote_args`); on/off flags take none.
    """
    names = {"--fluxloop-config", "--fluxloop-gate"}
    names.update(spec.pytest[0] for spec in OVERRIDES if spec.pytest and spec.kind != "bool")
    return frozenset(names)


# Option types argparse converts; every other kind stays text until overrides_from_options.
_PYTEST_TYPES: dict[str, type] = {"int": int, "float": float}


def config_path(config: pytest.Config) -> Path | None:
    """The experiment config given by option or ini, resolved against the rootdir."""
    value = config.getoption("fluxloop_config") or config.getini("fluxloop_config")
    if not value:
        return None
    path = Path(str(value)).expanduser()
    # Command-line paths are relative to the invocation dir, like pytest's own arguments;
    # the ini value is relative to the rootdir (where the ini file lives).
    base = config.invocation_params.dir if config.getoption("fluxloop_config") else config.rootpath
    return (path if path.is_absolute() else base / path).resolve()


def overrides_from_options(config: pytest.Config, **extra: Any) -> Overrides:
    """Build config overrides from the ``--fluxloop-*`` options (and a marker's kwargs).

    Path options are resolved against the invocation directory, like pytest's own path
    arguments; the supervisor API key comes from ``FLUXLOOP_SUPERVISOR_API_KEY`` (the CLI
    puts it there rather than on the command line). Marker kwargs win over options.
    """
    from ..config.loader import Overrides

    values = {spec.name: _option_value(config, spec) for spec in OVERRIDES}
    values.update({k: v for k, v in extra.items() if v is not None})
    return Overrides(style="pytest", **values)


def _option_value(config: pytest.Config, spec: OverrideSpec) -> Any:
    """One override's value as the pytest run was given it (None: not given)."""
    if spec.pytest_dest is None:
        return (os.environ.get(spec.env) or None) if spec.env else None
    value = config.getoption(spec.pytest_dest)
    if value is None:
        return None
    if spec.kind == "list":
        # An empty list ("--fluxloop-personas=") means "not overridden", not "run nothing".
        return split_names(value) or None
    if spec.kind == "path":
        return _path_value(spec, str(value), config.invocation_params.dir)
    return value


def _path_value(spec: OverrideSpec, value: str, base: Path) -> str:
    """A path option made absolute against ``base`` (the invocation directory).

    An output location (``stays_inside``) is checked here, where its base is known, and
    passed on unresolved, so the loader's check still sees the symlinks along it (a
    resolved path would hide the escape); other paths are resolved.
    """
    path = Path(value).expanduser()
    if spec.path is not None and spec.path.stays_inside:
        from ..artifacts.paths import check_output_option

        check_output_option(spec.pytest[0], value, base)  # a ConfigError: usage error
        return str(path if path.is_absolute() else base / path)
    return str((base / path).resolve())
