"""Resolve ``runner.target`` to a callable and plan how to call it.

Patterns: ``module:function``, ``module:Class.method`` (zero-arg constructor, a
fresh instance per case), ``module:instance.method``; or ``module_path`` + ``function_name``.
Everything that can go wrong is found here, before any case runs.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.models import RunnerConfig
from ..errors import TargetError
from .binding import BindingPlan, plan_binding

TARGET_FORMS = "'module:function', 'module:Class.method' or 'module:instance.method'"


@dataclass
class Target:
    """A resolved agent entry point."""

    spec: str
    factory: Callable[[], Callable[..., Any]]
    """Returns the callable for one case (a fresh instance's method for ``Class.method``)."""
    binding: BindingPlan
    is_async: bool

    def make_callable(self) -> Callable[..., Any]:
        """The callable to use for one case."""
        return self.factory()


ADDED_PATHS: list[str] = []
"""``sys.path`` entries :meth:`Workspace.activate` added, so the pytest adapter can take them
out again when the run ends."""


@dataclass(frozen=True)
class Workspace:
    """``working_directory`` and ``python_path`` of a runner, resolved against the project."""

    working_directory: Path
    python_path: tuple[Path, ...]

    @classmethod
    def from_runner(cls, runner: RunnerConfig, project_root: Path) -> Workspace:
        """Resolve the runner's paths; a missing directory is a TargetError."""
        workdir = (project_root / runner.working_directory).resolve()
        if not workdir.is_dir():
            raise TargetError(
                f"runner.working_directory {runner.working_directory!r} does not exist "
                f"(resolved to {workdir}, relative to the project root {project_root})"
            )
        extra = tuple((project_root / p).resolve() for p in (runner.python_path or []))
        return cls(workdir, extra)

    def activate(self, chdir: bool = True) -> None:
        """Put the import paths on ``sys.path`` (idempotent) and ``chdir`` to the workdir."""
        for entry in (*reversed(self.python_path), self.working_directory):
            text = str(entry)
            if text not in sys.path:
                sys.path.insert(0, text)
                ADDED_PATHS.append(text)
        if chdir:
            os.chdir(self.working_directory)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Activate for the duration of a block; restore the previous cwd afterwards."""
        previous = os.getcwd()
        self.activate()
        try:
            yield
        finally:
            os.chdir(previous)


def resolve_target(spec: str) -> Target:
    """Import and inspect ``spec`` (``module:attr.path``). Call inside an active Workspace."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise TargetError(
            f"runner.target {spec!r} is not a valid target; expected {TARGET_FORMS} "
            '(e.g. target: "my_agent:run")'
        )
    module = _import(module_name, spec)
    parts = attr_path.split(".")
    owner: Any = module
    for depth, part in enumerate(parts):
        if not hasattr(owner, part):
            where = module_name if depth == 0 else f"{module_name}:{'.'.join(parts[:depth])}"
            available = _public_names(owner)
            raise TargetError(
                f"runner.target {spec!r}: '{part}' not found in {where}"
                + (f" (available: {available})" if available else "")
            )
        if depth == len(parts) - 1:
            break
        owner = getattr(owner, part)
        if inspect.isclass(owner) and depth == len(parts) - 2:
            return _class_method_target(spec, owner, parts[-1])
    function = getattr(owner, parts[-1])
    if not callable(function):
        raise TargetError(
            f"runner.target {spec!r}: '{attr_path}' in {module_name} is not callable "
            f"(it is a {type(function).__name__})"
        )
    if inspect.isclass(function):
        raise TargetError(
            f"runner.target {spec!r} is a class; point at a method instead "
            f"(e.g. '{module_name}:{attr_path}.run')"
        )
    return _target(spec, lambda: function, function)


def _class_method_target(spec: str, cls: type, method_name: str) -> Target:
    if not hasattr(cls, method_name):
        available = _public_names(cls)
        raise TargetError(
            f"runner.target {spec!r}: '{method_name}' not found in "
            f"{spec.partition(':')[0]}:{cls.__name__}"
            + (f" (available: {available})" if available else "")
        )
    static = inspect.getattr_static(cls, method_name)
    if isinstance(static, (staticmethod, classmethod)):
        bound = getattr(cls, method_name)
        return _target(spec, lambda: bound, bound)
    if not callable(static):
        raise TargetError(f"runner.target {spec!r}: '{method_name}' is not callable")
    required = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if (p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        or (p.kind is p.KEYWORD_ONLY and p.default is p.empty)
    ]
    if required:
        raise TargetError(
            f"runner.target {spec!r}: {cls.__name__}() needs arguments ({', '.join(required)}); "
            "Class.method targets need a zero-argument constructor — use a module-level "
            "instance instead ('module:instance.method')"
        )

    def factory() -> Callable[..., Any]:
        return getattr(cls(), method_name)

    # Inspect the function through the class so no instance is created at resolve time.
    return _target(spec, factory, static, skip_first=True)


def _target(
    spec: str, factory: Callable[[], Callable[..., Any]], function: Any, skip_first: bool = False
) -> Target:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise TargetError(f"runner.target {spec!r}: cannot read its signature ({exc})") from None
    if skip_first:
        params = list(signature.parameters.values())[1:]
        signature = signature.replace(parameters=params)
    binding = plan_binding(signature, spec)
    unwrapped = inspect.unwrap(function)
    is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(unwrapped)
    return Target(spec=spec, factory=factory, binding=binding, is_async=is_async)


def _import(module_name: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise TargetError(
                f"runner.target {spec!r}: module '{module_name}' not found on the import path "
                f"({sys.path[0]!r} first); check runner.working_directory / runner.python_path"
            ) from None
        raise TargetError(_import_failure(module_name, spec, exc)) from None
    except BaseException as exc:  # the module's own import code raised
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not isinstance(exc, SystemExit):
            raise
        raise TargetError(_import_failure(module_name, spec, exc)) from None


def _import_failure(module_name: str, spec: str, exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return (
        f"runner.target {spec!r}: importing module '{module_name}' raised "
        f"{type(exc).__name__}: {exc}\n\nOriginal traceback:\n{tb}"
    )


def _public_names(owner: Any) -> str:
    names = [n for n in dir(owner) if not n.startswith("_") and callable(getattr(owner, n, None))]
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
