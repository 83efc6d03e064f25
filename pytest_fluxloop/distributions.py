"""Finding the other ``fluxloop``: the earlier SDK and CLI that share our names.

The earlier FluxLoop SDK is the PyPI distribution ``fluxloop``: its files include
``fluxloop/__init__.py``, the same file as this project's ``fluxloop`` facade package, and
``fluxloop-cli`` installs a ``fluxloop`` console script, the same command as ours. Installed
together, whichever was installed last owns the file and the command: ``import fluxloop``
may give the other SDK (so decorated agents record nothing in our runs) and ``fluxloop`` may
run the other CLI. Uninstalling the other SDK then deletes the shared file, so
``import fluxloop`` finds nothing at all until ours is reinstalled.

This module tells which case we are in, for the CLI and the pytest plugin to report. It uses
only the standard library, imports nothing of ours, never imports the other SDK (which loads
a ``.env`` on import), and caches the scan of installed distributions, so calling it once
per run costs a few milliseconds.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported where used: the common check (ours is in place) needs no metadata at all.
    import importlib.metadata as metadata

__all__ = [
    "CLI_MODULE",
    "MARKER",
    "OUR_DISTRIBUTION",
    "conflict_advice",
    "conflict_report",
    "conflicting_distributions",
    "foreign_fluxloop_message",
    "is_ours",
]

MARKER = "__pytest_fluxloop__"
"""Attribute our ``fluxloop/__init__.py`` sets to True; any other ``fluxloop`` lacks it."""

OUR_DISTRIBUTION = "pytest-fluxloop"
CLI_MODULE = "pytest_fluxloop.cli"
"""``python -m pytest_fluxloop.cli`` runs our CLI whatever the ``fluxloop`` command is."""

_SDK_DIST = "fluxloop"
_CLI_DIST = "fluxloop-cli"
_SCRIPT = "fluxloop"
_INIT = ("fluxloop", "__init__.py")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_ours(module: ModuleType) -> bool:
    """Whether ``module`` is this project's ``fluxloop`` package (it carries :data:`MARKER`)."""
    return getattr(module, MARKER, False) is True


def conflict_advice() -> str:
    """What to do when another ``fluxloop`` SDK or CLI is installed (plain instructions)."""
    return (
        "To fix it, remove the other FluxLoop packages and reinstall pytest-fluxloop (the "
        "reinstall restores fluxloop/__init__.py, which uninstalling the other SDK deletes):\n"
        "    pip uninstall -y fluxloop fluxloop-cli && "
        "pip install --force-reinstall --no-deps pytest-fluxloop\n"
        "(from a source checkout, reinstall it with: pip install --force-reinstall --no-deps "
        "-e <checkout>)\n"
        "The other SDK is not needed: pytest-fluxloop's own `fluxloop` package provides the "
        "earlier SDK's names (agent, prompt, tool, trace, instrument, configure, get_config, "
        "load_env, record_call_args, ...), so agents written for it run unchanged.\n"
        f"pytest-fluxloop's CLI is also reachable as `python -m {CLI_MODULE}`, whatever the "
        "`fluxloop` command runs."
    )


def foreign_fluxloop_message(module: ModuleType | None = None) -> str | None:
    """None when ``import fluxloop`` gives our package; else why not, and what to do.

    Looks at ``module``, else at ``sys.modules["fluxloop"]``, else (not imported yet) at the
    file ``import fluxloop`` would load, without importing it. The message names that file
    and the distribution (and version) that installed it, and ends with
    :func:`conflict_advice`.
    """
    if module is None:
        module = sys.modules.get("fluxloop")
    if module is not None:
        if is_ours(module):
            return None
        where = _module_location(module)
    else:
        try:
            spec = importlib.util.find_spec("fluxloop")
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return (
                "`import fluxloop` finds no module: pytest-fluxloop's fluxloop/__init__.py is "
                "missing (uninstalling the earlier FluxLoop SDK, `pip uninstall fluxloop`, "
                "deletes it too), so agents that `import fluxloop` cannot start.\n"
                + conflict_advice()
            )
        if spec.origin and spec.has_location and _file_has_marker(Path(spec.origin)):
            return None
        where = _spec_location(spec)
    return (
        f"`import fluxloop` loads {where}, which is not pytest-fluxloop's SDK: "
        f"{_owner_text(where)}. Agents decorated with @fluxloop.agent() and friends then "
        "record nothing in pytest-fluxloop runs.\n" + conflict_advice()
    )


def conflicting_distributions(*, commands: bool = True) -> list[str]:
    """Installed distributions that clash with ours, each as ``"<name> <version> (<folder>):
    <why>"``: ``fluxloop`` (the earlier SDK: it overwrites ``fluxloop/__init__.py``),
    ``fluxloop-cli`` and, with ``commands``, any other distribution with a ``fluxloop``
    command. Empty when there is none. The scan runs once per process.

    ``commands=False`` skips the console-script scan, which reads every installed
    distribution's entry points (tens of milliseconds): a pytest run never goes through
    the ``fluxloop`` command, so it asks only for the two names (well under a millisecond).
    """
    return list(_scan(commands))


@functools.lru_cache(maxsize=2)
def _scan(commands: bool) -> tuple[str, ...]:
    import importlib.metadata as metadata

    found: dict[tuple[str, str, str], str] = {}

    def add(dist: metadata.Distribution, why: str) -> None:
        name = dist.metadata["Name"] or "?"
        key = (_normalize(name), dist.version, _folder(dist))
        if key not in found:
            found[key] = f"{name} {dist.version} ({key[2]}): {why}"

    # Name lookups read only folder names, unlike a full scan of every distribution.
    for dist in _distributions(_SDK_DIST):
        add(
            dist,
            "the earlier FluxLoop SDK; it installs fluxloop/__init__.py, the same file as "
            "pytest-fluxloop's `fluxloop` package, so `import fluxloop` may load the other "
            "SDK (agents then record nothing), and uninstalling it deletes the file",
        )
    for dist in _distributions(_CLI_DIST):
        add(
            dist,
            "the earlier FluxLoop CLI; it installs a `fluxloop` command, the same name as "
            "pytest-fluxloop's, so `fluxloop ...` may run the other CLI",
        )
    if not commands:
        return tuple(found.values())
    try:
        scripts = list(metadata.entry_points(group="console_scripts", name=_SCRIPT))
    except Exception:  # a broken distribution's metadata must not break the check
        scripts = []
    for ep in scripts:
        owner: metadata.Distribution | None = getattr(ep, "dist", None)
        if owner is None:
            continue
        if _normalize(owner.metadata["Name"] or "") in (OUR_DISTRIBUTION, _SDK_DIST, _CLI_DIST):
            continue  # ours, or reported above
        add(
            owner,
            f"installs a `fluxloop` command ({ep.value}), the same name as pytest-fluxloop's, "
            "so `fluxloop ...` may run it instead",
        )
    return tuple(found.values())


def _distributions(name: str) -> list[metadata.Distribution]:
    import importlib.metadata as metadata

    try:
        dists = list(metadata.distributions(name=name))
    except Exception:
        return []
    return [d for d in dists if _normalize(d.metadata["Name"] or "") == name]


def _folder(dist: metadata.Distribution) -> str:
    try:
        return str(Path(str(dist.locate_file(""))).resolve())
    except Exception:
        return "?"


def _module_location(module: ModuleType) -> str:
    file = getattr(module, "__file__", None)
    if file:
        return str(Path(file).resolve())
    paths = list(getattr(module, "__path__", None) or [])
    if paths:
        return "a namespace package (no __init__.py) in " + ", ".join(str(p) for p in paths)
    return f"a module with no file ({module!r})"


def _spec_location(spec: importlib.machinery.ModuleSpec) -> str:
    if spec.origin and spec.has_location:
        return str(Path(spec.origin).resolve())
    locations = list(spec.submodule_search_locations or [])
    if locations:
        return "a namespace package (no __init__.py) in " + ", ".join(locations)
    return f"a module with no file ({spec.origin or spec.name})"


def _file_has_marker(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(rf"^{MARKER}\s*=\s*True\b", text, re.MULTILINE) is not None


def _owner_text(where: str) -> str:
    owners = _owners(where)
    if owners:
        return "it was installed by " + " and ".join(owners)
    if where.startswith("a namespace package"):
        return (
            "pytest-fluxloop's fluxloop/__init__.py is missing (uninstalling the earlier "
            "FluxLoop SDK deletes it), leaving an empty `fluxloop` folder"
        )
    return (
        "no installed distribution owns it (a local `fluxloop` folder or module on sys.path "
        "shadows the installed package; rename it or move it off the path)"
    )


@functools.lru_cache(maxsize=8)
def _owners(where: str) -> tuple[str, ...]:
    """``"<name> <version>"`` of the distributions (not ours) whose files include ``where``."""
    import importlib.metadata as metadata

    target = Path(where)
    if target.name != "__init__.py":
        return ()
    try:
        candidates = metadata.packages_distributions().get("fluxloop", [])
    except Exception:
        candidates = []
    owners: list[str] = []
    for name in dict.fromkeys(candidates):
        if _normalize(name) == OUR_DISTRIBUTION:
            continue
        for dist in _distributions(_normalize(name)):
            for file in dist.files or ():
                if tuple(file.parts[-2:]) != _INIT:
                    continue
                try:
                    located = Path(str(dist.locate_file(file))).resolve()
                except Exception:
                    continue
                if located == target:
                    label = f"the distribution {dist.metadata['Name']} {dist.version}"
                    if _normalize(dist.metadata["Name"] or "") == _SDK_DIST:
                        label += " (the earlier FluxLoop SDK)"
                    owners.append(label)
                    break
    return tuple(dict.fromkeys(owners))


def conflict_report(foreign: str | None, conflicts: Sequence[str]) -> str | None:
    """The one message about another FluxLoop installation, or None when there is none.

    One message (not one per problem) so it reads as one thing to fix: what ``import
    fluxloop`` really loads (``foreign``, from :func:`foreign_fluxloop_message`, its advice
    left out), the conflicting distributions, then :func:`conflict_advice` once.
    """
    if foreign is None and not conflicts:
        return None
    parts = ["another FluxLoop installation conflicts with pytest-fluxloop."]
    if foreign is not None:
        parts.append(foreign)
    if conflicts:
        parts.append("Conflicting distributions installed:")
        parts += [f"  - {conflict}" for conflict in conflicts]
    parts.append(conflict_advice())
    return "\n".join(parts)
