"""Pure helpers of ``fluxloop run experiment``: find the config, build the pytest command line.

Nothing here imports pytest or touches global state, so the translation from CLI options
to pytest options is unit-tested without running anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.overrides import OVERRIDES
from ..errors import ConfigNotFoundError

if TYPE_CHECKING:  # keep `import pytest_fluxloop.cli` cheap: pydantic models load lazily
    from ..config import Overrides

__all__ = [
    "BOOL_FLAGS",
    "DEFAULT_CONFIG",
    "DEFAULT_ROOT",
    "NOT_FORWARDED",
    "QUIET_PLUGIN",
    "VALUE_FLAGS",
    "ConfigNotFoundError",
    "build_pytest_args",
    "find_projects",
    "override_args",
    "resolve_config_path",
]

DEFAULT_CONFIG = Path("configs/simulation.yaml")
QUIET_PLUGIN = "pytest_fluxloop.cli.quiet"
"""pytest plugin of ``--no-display``: no per-test progress characters."""
DEFAULT_ROOT = Path("fluxloop")

# Overrides field -> pytest option taking a value (from the override table).
VALUE_FLAGS: dict[str, str] = {
    spec.name: spec.pytest[0] for spec in OVERRIDES if spec.forwarded and spec.kind != "bool"
}
# Overrides field -> (option when True, option when False).
BOOL_FLAGS: dict[str, tuple[str, str]] = {
    spec.name: (spec.pytest[0], spec.pytest[1])
    for spec in OVERRIDES
    if spec.forwarded and spec.kind == "bool"
}
# Never on the command line: the API key travels in FLUXLOOP_SUPERVISOR_API_KEY so it does
# not show in `ps`, argv-echoing reports or artifacts; `style` is message formatting only.
NOT_FORWARDED = frozenset({spec.name for spec in OVERRIDES if not spec.forwarded} | {"style"})


def find_projects(root: Path, config: Path = DEFAULT_CONFIG) -> list[str]:
    """Names of the project folders under ``root`` that contain ``config``, sorted."""
    if config.is_absolute() or not root.is_dir():
        return []
    try:
        return sorted(child.name for child in root.iterdir() if (child / config).is_file())
    except OSError:  # unreadable root: just no suggestions
        return []


def resolve_config_path(
    config: Path,
    project: str | None,
    root: Path,
    cwd: Path,
    command: str = "fluxloop run experiment",
) -> Path:
    """Locate the simulation config as the user asked for it; absolute path or ConfigNotFound.

    ``config`` relative → under ``<root>/<project>/`` with ``--project``, else under ``cwd``
    (``root`` itself is relative to ``cwd``). An absolute ``config`` wins over ``--project``.
    ``command`` is what the not-found message suggests running again with ``--project``.
    """
    config = config.expanduser()
    root_dir = root.expanduser()
    if not root_dir.is_absolute():
        root_dir = cwd / root_dir
    if config.is_absolute():
        candidate = config
    elif project:
        candidate = root_dir / project / config
    else:
        candidate = cwd / config
    if candidate.is_file():
        return candidate
    raise ConfigNotFoundError(
        _not_found_message(candidate, config, project, root, root_dir, command)
    )


def _not_found_message(
    candidate: Path, config: Path, project: str | None, root: Path, root_dir: Path, command: str
) -> str:
    projects = find_projects(root_dir, config)
    if candidate.is_dir():
        head = f"config path is a directory, not a file: {candidate}"
    else:
        head = f"config file not found: {candidate}"
    if project and not (root_dir / project).is_dir():
        head += f"\nThere is no project '{project}' under {root_dir}."
    if projects and not config.is_absolute():
        names = ", ".join(projects)
        example = projects[0]
        return (
            f"{head}\nFluxLoop projects found under {root}/: {names}.\n"
            f"Pass --project NAME, e.g. `{command} --project {example}"
            + (f" --root {root}" if root != DEFAULT_ROOT else "")
            + "`, or --config PATH."
        )
    return (
        f"{head}\nRun from a project directory (one with {DEFAULT_CONFIG}), pass --config PATH "
        "or --project NAME, or create a project with `fluxloop init project NAME`."
    )


def _value_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def override_args(overrides: Overrides) -> list[str]:
    """The ``--fluxloop-*`` arguments that give a pytest run the same ``overrides``.

    One per overridden, forwarded row of the override table, in table order; the plugin's
    ``overrides_from_options`` parses them back into equal Overrides. Rows that are not
    forwarded (the API key) are left to the environment.
    """
    args: list[str] = []
    for spec in OVERRIDES:
        value = overrides.get(spec.name)
        if value is None or not spec.forwarded:
            continue
        if spec.kind == "bool":
            on, off = spec.pytest
            args.append(on if value else off)
        else:
            args.append(f"{spec.pytest[0]}={_value_text(value)}")
    return args


def build_pytest_args(
    config_path: Path,
    overrides: Overrides | None = None,
    *,
    project_root: Path | None = None,
    extra_args: Sequence[str] = (),
    progress: bool = True,
    quiet: bool = True,
    display: bool = True,
) -> list[str]:
    """The ``pytest.main`` argument list for one ``fluxloop run experiment``.

    The config path goes in twice: as the positional argument (what pytest collects, and
    where it looks for ``conftest.py``) and as ``--fluxloop-config`` (what the plugin loads).
    ``--rootdir`` pins the project root so a project ``conftest.py`` is found and the
    pytest cache lands there rather than in ``configs/``. Options use the ``--opt=value``
    form so a value starting with ``-`` cannot be mistaken for an option. ``extra_args``
    (everything after ``--``) come last, so the user has the final word.

    With ``progress`` the CLI replaces pytest's per-test characters: by the progress bar
    when ``display`` (``--display``), else by nothing (``--no-display``: the
    :mod:`~pytest_fluxloop.cli.quiet` plugin), so only the closing summary is printed.
    Everything is on the command line, so ``python -m pytest <args>`` does the same run.
    """
    config = str(config_path)
    args = [config, f"--fluxloop-config={config}"]
    if project_root is not None:
        args.append(f"--rootdir={project_root}")
    if overrides is not None:
        args += override_args(overrides)
    if quiet:
        args.append("-q")
    if progress:
        args += ["--fluxloop-progress"] if display else ["-p", QUIET_PLUGIN]
        # "classic" drops pytest's own "[NN%]" column, which would otherwise be appended to
        # the progress bar's line (or stand alone without it); a user's
        # `-- -o console_output_style=...` still wins.
        args += ["-o", "console_output_style=classic"]
    args.extend(extra_args)
    return args
