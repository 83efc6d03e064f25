"""The installation the CLI runs in: what ``import fluxloop`` and the ``fluxloop`` command give.

Users arrive from the earlier FluxLoop tools (``fluxloop-cli`` 0.2.x with its ``fluxloop``
SDK), which install a ``fluxloop`` command and a ``fluxloop`` package of their own. Left
installed beside pytest-fluxloop, either one changes what a user's script runs or what an
agent imports, and the symptom (an odd error from someone else's code) does not point at
the cause. Which distributions conflict is decided once, in
:mod:`pytest_fluxloop.distributions`; this module puts it into the CLI's words: the one
startup warning of ``fluxloop run experiment`` and the checks of ``fluxloop doctor``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "OUR_ENTRY_POINT",
    "CommandInfo",
    "conflict_problems",
    "conflict_warning",
    "describe_entry_point",
    "fluxloop_command",
]

OUR_ENTRY_POINT = "pytest_fluxloop.cli"
"""Module of our ``fluxloop`` console script (``pytest_fluxloop.cli:main``)."""

# How console-script launchers (pip, uv, setuptools) call their entry point.
_IMPORT_LINE = re.compile(r"^from\s+([A-Za-z_][\w.]*)\s+import\s+([A-Za-z_]\w*)", re.MULTILINE)
_SCRIPT_HEAD = 4096  # the launcher is a few lines; never read a big binary
# Entry-point modules of other tools that install a `fluxloop` command.
_KNOWN_TOOLS = {"fluxloop_cli": "fluxloop-cli, the earlier FluxLoop CLI"}


def conflict_problems() -> tuple[str | None, list[str], str]:
    """What is wrong, as :mod:`pytest_fluxloop.distributions` tells it: why ``import
    fluxloop`` is not ours (None when it is), the conflicting distributions (each
    ``"<name> <version> (<folder>): <why>"``), and the advice, kept apart so a report that
    shows both problems gives the advice once."""
    from ..distributions import (
        conflict_advice,
        conflicting_distributions,
        foreign_fluxloop_message,
    )

    advice = conflict_advice()
    foreign = foreign_fluxloop_message()
    if foreign is not None:
        # The message ends with the advice; it is added back once, after everything.
        foreign = foreign.removesuffix(advice).rstrip()
    return foreign, conflicting_distributions(), advice


def conflict_warning() -> str | None:
    """The startup warning of ``fluxloop run experiment``, or None when nothing conflicts."""
    from ..distributions import conflict_report

    foreign, conflicts, _ = conflict_problems()
    report = conflict_report(foreign, conflicts)
    return None if report is None else f"Warning: {report}"


@dataclass(frozen=True)
class CommandInfo:
    """The ``fluxloop`` command a shell (and a user's script) finds on ``PATH``."""

    path: Path | None
    """``shutil.which("fluxloop")``; None: no such command."""
    entry_point: str | None
    """``module:function`` its launcher calls; None when it can't be read."""
    interpreter: str | None
    """The Python of its ``#!`` line, if any."""
    owners: tuple[str, ...] = ()
    """Distributions of *this* environment declaring that entry point as ``fluxloop``
    (empty for a launcher of another environment: what is installed here says nothing
    about it)."""

    @property
    def ours(self) -> bool:
        """It runs pytest-fluxloop's CLI (in whichever environment)."""
        module = (self.entry_point or "").partition(":")[0]
        return module == OUR_ENTRY_POINT or module.startswith(OUR_ENTRY_POINT + ".")

    @property
    def same_environment(self) -> bool:
        """Its ``#!`` Python lives in the same folder as the one running now (same venv).

        Folders, not resolved files: every venv's ``python`` links to the same base
        interpreter, so resolving would call any two venvs the same.
        """
        if self.interpreter is None:
            return self.path is not None and self.path.parent == Path(sys.executable).parent
        here = Path(os.path.abspath(sys.executable)).parent
        return Path(os.path.abspath(self.interpreter)).parent == here


def fluxloop_command(path: str | None = None) -> CommandInfo:
    """Find the ``fluxloop`` command on ``path`` (default: ``PATH``) and read whose it is.

    The launcher script is read, never run: its ``from X import Y`` line names the entry
    point, and the distributions of this environment declaring a ``fluxloop`` script with
    that entry point are its owners. A launcher of another environment has no owner here.
    """
    found = shutil.which("fluxloop", path=path)
    if found is None:
        return CommandInfo(path=None, entry_point=None, interpreter=None)
    location = Path(found)
    try:
        with open(location, "rb") as fh:
            head = fh.read(_SCRIPT_HEAD)
    except OSError:
        return CommandInfo(path=location, entry_point=None, interpreter=None)
    text = head.decode("utf-8", errors="replace")
    interpreter = None
    if text.startswith("#!"):
        shebang = text[2:].splitlines()[0].strip() if text[2:] else ""
        interpreter = shebang.split()[0] if shebang and "\0" not in shebang else None
    match = _IMPORT_LINE.search(text) if b"\0" not in head else None
    entry_point = f"{match.group(1)}:{match.group(2)}" if match else None
    info = CommandInfo(path=location, entry_point=entry_point, interpreter=interpreter)
    if entry_point is None or not info.same_environment:
        return info
    from importlib import metadata  # here: `fluxloop --help` must not pay for it

    owners = {
        ep.dist.name if ep.dist is not None else "?"
        for ep in metadata.entry_points(group="console_scripts", name="fluxloop")
        if ep.value.replace(" ", "") == entry_point
    }
    return dataclasses.replace(info, owners=tuple(sorted(owners)))


def describe_entry_point(entry_point: str) -> str:
    """``entry_point`` with the tool it belongs to, when that is known by its module."""
    module = entry_point.partition(":")[0]
    for prefix, tool in _KNOWN_TOOLS.items():
        if module == prefix or module.startswith(prefix + "."):
            return f"{entry_point} ({tool})"
    return entry_point
