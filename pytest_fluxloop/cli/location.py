"""The options every command that finds a project takes: ``--config``, ``--project``, ``--root``.

One definition, so ``run experiment``, ``status`` and ``doctor`` find a project the same way
(:func:`pytest_fluxloop.cli.pytest_args.resolve_config_path` reads the three values).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .pytest_args import DEFAULT_CONFIG, DEFAULT_ROOT

F = TypeVar("F", bound=Callable[..., Any])


def location_options(
    config_help: str, project_flags: tuple[str, ...] = ("--project",)
) -> Callable[[F], F]:
    """Decorator adding ``--config/-c``, ``--project`` and ``--root`` (in that order).

    ``project_flags``: the spellings of ``--project`` (``doctor`` also takes the earlier
    CLI's ``-p``, which ``run experiment`` uses for ``--personas``).
    """
    decorators = [
        click.option(
            "--config",
            "-c",
            "config",
            type=click.Path(path_type=Path),
            default=DEFAULT_CONFIG,
            show_default=True,
            help=config_help,
        ),
        click.option(
            *project_flags,
            "project",
            help="Project name under the FluxLoop root (<root>/<NAME>/).",
        ),
        click.option(
            "--root",
            type=click.Path(file_okay=False, path_type=Path),
            default=DEFAULT_ROOT,
            help="FluxLoop root directory holding the projects.  [default: ./fluxloop]",
        ),
    ]

    def decorate(command: F) -> F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return decorate
