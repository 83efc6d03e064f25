"""Render the ``fluxloop init project`` scaffold from package templates.

Templates live in ``pytest_fluxloop/templates/project/`` as ``*.tmpl`` files so that no
tool (ruff, pytest collection, editors) mistakes them for live project files. A leading
``dot_`` becomes ``.`` (``dot_gitignore.tmpl`` -> ``.gitignore``) because packaging globs
skip dotfiles. Placeholders are ``{{ key }}``: neither YAML nor Python uses that spelling,
unlike ``$name`` or ``{name}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ScaffoldError

if TYPE_CHECKING:  # only the annotations need it; importlib.resources.abc is 3.11+
    import sys

    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = [
    "PROJECT_NAME_PATTERN",
    "ScaffoldError",
    "ScaffoldResult",
    "render_project",
    "scaffold_project",
    "validate_project_name",
]

TEMPLATE_SUFFIX = ".tmpl"
DOT_PREFIX = "dot_"
PROJECT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


@dataclass(frozen=True)
class ScaffoldResult:
    """What ``scaffold_project`` wrote: the project directory and the files, relative to it."""

    project_dir: Path
    files: list[Path]
    overwritten: list[Path]


def validate_project_name(name: str) -> str:
    """Return ``name`` if it is a valid project name, else raise ``ScaffoldError``.

    Letters, digits, ``-`` and ``_`` only (starting with a letter or digit, at most 64
    characters): the name becomes a directory and is written into YAML unescaped.
    """
    if not PROJECT_NAME_PATTERN.fullmatch(name):
        raise ScaffoldError(
            f"invalid project name {name!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def _template_root() -> Traversable:
    return resources.files("pytest_fluxloop").joinpath("templates").joinpath("project")


def _walk(node: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """All ``(relative parts, text)`` of template files under ``node``, sorted."""
    found: list[tuple[tuple[str, ...], str]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        parts = (*prefix, child.name)
        if child.is_dir():
            found.extend(_walk(child, parts))
        elif child.name.endswith(TEMPLATE_SUFFIX):
            found.append((parts, child.read_text(encoding="utf-8")))
    return found


def _output_name(template_name: str) -> str:
    name = template_name.removesuffix(TEMPLATE_SUFFIX)
    if name.startswith(DOT_PREFIX):
        name = "." + name.removeprefix(DOT_PREFIX)
    return name


def _substitute(text: str, values: dict[str, str], source: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            # A typo in a template must fail loudly, not ship "{{ nmae }}" to users.
            raise ScaffoldError(f"template {source} uses unknown placeholder {key!r}")
        return values[key]

    return _PLACEHOLDER.sub(replace, text)


def render_project(name: str) -> dict[Path, str]:
    """Render every project template for ``name``: relative output path -> file content."""
    validate_project_name(name)
    values = {"name": name, "name_id": name.replace("-", "_")}
    rendered: dict[Path, str] = {}
    for parts, text in _walk(_template_root()):
        rel = Path(*parts[:-1], _output_name(parts[-1]))
        rendered[rel] = _substitute(text, values, "/".join(parts))
    if not rendered:
        raise ScaffoldError("no project templates found (is the package installed correctly?)")
    return rendered


def scaffold_project(root: Path, name: str, *, force: bool = False) -> ScaffoldResult:
    """Write a new project to ``root / name``.

    Refuses (``ScaffoldError``) to overwrite any existing file unless ``force``; the check
    covers every file before the first write, so a refusal leaves the disk untouched.
    Files in the directory that are not part of the scaffold are never touched.
    """
    files = render_project(name)
    project_dir = root / name
    if project_dir.exists() and not project_dir.is_dir():
        raise ScaffoldError(f"{project_dir} exists and is not a directory")
    blocked = [rel for rel in files if (project_dir / rel).is_dir()]
    if blocked:
        raise ScaffoldError(
            f"cannot write {', '.join(str(p) for p in blocked)} in {project_dir}: "
            "a directory of that name exists"
        )
    existing = [rel for rel in files if (project_dir / rel).exists()]
    if existing and not force:
        listing = ", ".join(rel.as_posix() for rel in existing)
        raise ScaffoldError(
            f"refusing to overwrite existing files in {project_dir}: {listing}\n"
            "Use --force to overwrite them, or choose another project name."
        )
    for rel, text in files.items():
        target = project_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # newline="\n": identical bytes on every OS, so generated projects diff cleanly.
        with target.open("w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    return ScaffoldResult(project_dir=project_dir, files=list(files), overwritten=existing)
