"""Helpers shared by the engine tests: agent modules on disk, isolation, cases, fake sleep."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest_fluxloop
from pytest_fluxloop.engine import Target, Workspace, resolve_target
from pytest_fluxloop.plan.cases import Case


def unique(prefix: str = "agent") -> str:
    """A module name no other test uses (avoids sys.modules caching across tests)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def write_module(directory: Path, relpath: str, source: str) -> Path:
    """Write dedented ``source`` to ``directory/relpath`` (creating folders) and return it."""
    path = directory / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    importlib.invalidate_caches()
    return path


# Modules from these places (stdlib, site-packages, this repo) stay imported: dropping them
# would make a second copy of their classes on the next import.
_KEEP_ROOTS = tuple(
    {sys.prefix, sys.base_prefix, str(Path(pytest_fluxloop.__file__).resolve().parents[1])}
)


def _is_test_module(name: str) -> bool:
    """A module a test created: synthetic (no file) or written into a temporary folder."""
    if name in sys.builtin_module_names:
        return False
    file = getattr(sys.modules.get(name), "__file__", None)
    return file is None or not str(Path(file).resolve()).startswith(_KEEP_ROOTS)


@contextmanager
def isolated_imports() -> Iterator[None]:
    """Restore ``sys.path`` and the cwd, and drop the agent modules a test imported."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    saved_cwd = os.getcwd()
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if _is_test_module(name):
                del sys.modules[name]
        importlib.invalidate_caches()


def resolve_in(
    directory: Path, spec: str, python_path: tuple[Path, ...] = (), chdir: bool = True
) -> Target:
    """Activate a workspace on ``directory`` and resolve ``spec`` there."""
    Workspace(working_directory=directory, python_path=python_path).activate(chdir=chdir)
    return resolve_target(spec)


def target_of(fn: Callable[..., Any], attr: str | None = None) -> Target:
    """Resolve ``fn`` through the real resolver by putting it in a synthetic module."""
    name = unique("synthetic")
    module = types.ModuleType(name)
    attr = attr or fn.__name__
    setattr(module, attr, fn)
    sys.modules[name] = module
    return resolve_target(f"{name}:{attr}")


def make_case(input: str = "hello", **fields: Any) -> Case:
    """A Case with sensible defaults."""
    data: dict[str, Any] = {
        "case_id": f"in00-{uuid.uuid4().hex[:6]}-default-it0",
        "input_index": 0,
        "input": input,
        "persona": "novice_user",
        "iteration": 0,
        "seed": 1234,
    }
    data.update(fields)
    return Case(**data)


class FakeSleep:
    """Records requested delays instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
