"""Resolve ``runner.target`` to a callable and plan how to call it.

Patterns: ``module:function``, ``module:Class.method`` (a fresh instance per case, made by
the zero-argument constructor or by ``runner.factory``), ``module:instance.method``; or
``module_path`` + ``function_name``. Everything that can go wrong is found here, before any
case runs; what is accepted but partly ignored (``runner.args`` the agent does not declare)
comes back as :attr:`Target.notices`.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.models import RunnerConfig
from ..distributions import foreign_fluxloop_message
from ..errors import TargetError
from .binding import BindingPlan, plan_binding

TARGET_FORMS = "'module:function', 'module:Class.method' or 'module:instance.method'"


@dataclass(frozen=True)
class TargetOptions:
    """The runner settings that shape how the target is called (besides the target itself)."""

    args: Mapping[str, Any] = field(default_factory=dict)
    """``runner.args``: keyword arguments for the agent."""
    factory: str | None = None
    """``runner.factory``: ``module:callable`` that builds the instance of a ``Class.method``
    target."""
    factory_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """``runner.factory_kwargs``: keyword arguments for the factory."""
    replay: bool = False
    """``replay_args.enabled``: the arguments come from recorded calls, not from the case by
    parameter name, so no input parameter is looked for; :mod:`.replay` checks the
    recorded calls against :attr:`Target.signature` instead."""

    @classmethod
    def from_runner(cls, runner: RunnerConfig) -> TargetOptions:
        """The options of ``runner``."""
        return cls(
            args=dict(runner.args or {}),
            factory=runner.factory,
            factory_kwargs=dict(runner.factory_kwargs or {}),
        )


@dataclass
class Target:
    """A resolved agent entry point."""

    spec: str
    factory: Callable[[], Callable[..., Any]]
    """Returns the callable for one case (a fresh instance's method for ``Class.method``)."""
    binding: BindingPlan
    is_async: bool
    notices: tuple[str, ...] = ()
    """Settings accepted but not (fully) in effect, for the caller to show."""
    signature: inspect.Signature | None = None
    """The agent's signature as FluxLoop calls it (without ``self`` for ``Class.method``)."""

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


def resolve_target(spec: str, options: TargetOptions | None = None) -> Target:
    """Import and inspect ``spec`` (``module:attr.path``) with the runner's ``options``.

    Call inside an active Workspace (and after ``runner.environment_vars`` are applied, for
    modules that read the environment at import).
    """
    options = options or TargetOptions()
    if options.factory_kwargs and not options.factory:
        raise TargetError(
            "runner.factory_kwargs is set but runner.factory is not; factory_kwargs are the "
            "keyword arguments of runner.factory ('module:callable'): set runner.factory or "
            "remove runner.factory_kwargs"
        )
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
            return _class_method_target(spec, owner, parts[-1], options)
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
    if options.factory:
        raise TargetError(
            f"runner.factory {options.factory!r} is set, but runner.target {spec!r} is not a "
            "'module:Class.method' target: the factory only builds the instance of such a "
            "class. Point runner.target at a class's method, or remove runner.factory"
        )
    return _target(spec, lambda: function, function, options)


def _class_method_target(spec: str, cls: type, method_name: str, options: TargetOptions) -> Target:
    if not hasattr(cls, method_name):
        available = _public_names(cls)
        raise TargetError(
            f"runner.target {spec!r}: '{method_name}' not found in "
            f"{spec.partition(':')[0]}:{cls.__name__}"
            + (f" (available: {available})" if available else "")
        )
    static = inspect.getattr_static(cls, method_name)
    if options.factory:
        if not isinstance(static, (staticmethod, classmethod)) and not callable(static):
            raise TargetError(f"runner.target {spec!r}: '{method_name}' is not callable")
        return _factory_target(spec, cls, method_name, static, options)
    if isinstance(static, (staticmethod, classmethod)):
        bound = getattr(cls, method_name)
        return _target(spec, lambda: bound, bound, options)
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
            "Class.method targets need a zero-argument constructor, or runner.factory "
            "('module:callable', with runner.factory_kwargs) to build the instance; or use a "
            "module-level instance instead ('module:instance.method')"
        )

    def factory() -> Callable[..., Any]:
        return getattr(cls(), method_name)

    # Inspect the function through the class so no instance is created at resolve time.
    return _target(spec, factory, static, options, skip_first=True)


def _factory_target(
    spec: str, cls: type, method_name: str, static: Any, options: TargetOptions
) -> Target:
    """A ``Class.method`` target whose instance ``runner.factory`` builds, once per case."""
    name = options.factory
    assert name is not None
    build = _load_factory(name)
    kwargs = dict(options.factory_kwargs)
    try:
        inspect.signature(build).bind(**kwargs)
    except TypeError as exc:
        raise TargetError(
            f"runner.factory {name!r} can't be called with runner.factory_kwargs "
            f"({', '.join(kwargs) or 'none'}): {exc}"
        ) from None
    except ValueError:
        pass  # no readable signature (a builtin): the call itself will tell

    def factory() -> Callable[..., Any]:
        try:
            # A copy per case: a factory that changes its arguments can't leak into the next.
            instance = build(**copy.deepcopy(kwargs))
        except Exception as exc:
            raise TargetError(
                f"runner.factory {name!r} raised {type(exc).__name__} building the "
                f"{cls.__name__} instance for runner.target {spec!r}: {exc}"
            ) from exc
        method = getattr(instance, method_name, None)
        if not callable(method):
            raise TargetError(
                f"runner.factory {name!r} returned a {type(instance).__name__}, which has no "
                f"callable '{method_name}' (runner.target {spec!r})"
            )
        return method

    # Inspected through the class (no instance at resolve time), as without a factory.
    if isinstance(static, (staticmethod, classmethod)):
        return _target(spec, factory, getattr(cls, method_name), options)
    return _target(spec, factory, static, options, skip_first=True)


def _load_factory(name: str) -> Callable[..., Any]:
    module_name, sep, attr_path = name.partition(":")
    if not sep or not module_name or not attr_path:
        raise TargetError(
            f"runner.factory {name!r} is not valid; expected 'module:callable' "
            '(e.g. factory: "my_agent:build_agent")'
        )
    try:
        owner: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise TargetError(
                f"runner.factory {name!r}: module '{module_name}' not found on the import "
                f"path ({sys.path[0]!r} first); check runner.working_directory / "
                "runner.python_path"
            ) from None
        raise TargetError(_import_failure(module_name, f"runner.factory {name!r}", exc)) from None
    except BaseException as exc:  # the module's own import code raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise TargetError(_import_failure(module_name, f"runner.factory {name!r}", exc)) from None
    for part in attr_path.split("."):
        if not hasattr(owner, part):
            available = _public_names(owner)
            raise TargetError(
                f"runner.factory {name!r}: '{part}' not found in {module_name}"
                + (f" (available: {available})" if available else "")
            )
        owner = getattr(owner, part)
    if not callable(owner):
        raise TargetError(
            f"runner.factory {name!r} is not callable (it is a {type(owner).__name__})"
        )
    return owner


def _target(
    spec: str,
    factory: Callable[[], Callable[..., Any]],
    function: Any,
    options: TargetOptions,
    skip_first: bool = False,
) -> Target:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise TargetError(f"runner.target {spec!r}: cannot read its signature ({exc})") from None
    if skip_first:
        params = list(signature.parameters.values())[1:]
        signature = signature.replace(parameters=params)
    if options.replay:
        # Replayed calls bring their own arguments (runner.args are laid over them there).
        binding = BindingPlan("input", (), ())
    else:
        binding = plan_binding(signature, spec, options.args)
    notices: tuple[str, ...] = ()
    if binding.ignored_args:
        names = ", ".join(f"runner.args.{k}" for k in binding.ignored_args)
        notices = (
            f"{names}: runner.target {spec!r} has no parameter of that name (and no "
            "**kwargs), so the value is not passed; fix the name or remove it",
        )
    # Checked after the agent's module ran its imports: an agent that got the earlier
    # FluxLoop SDK under the name `fluxloop` records into that SDK, and its traces here
    # would be silently empty.
    foreign = foreign_fluxloop_message()
    if foreign is not None:
        notices += (f"runner.target {spec!r}: the agent's spans will not be recorded. {foreign}",)
    unwrapped = inspect.unwrap(function)
    is_async = any(
        check(fn)
        for fn in (function, unwrapped)
        for check in (inspect.iscoroutinefunction, inspect.isasyncgenfunction)
    )
    return Target(
        spec=spec,
        factory=factory,
        binding=binding,
        is_async=is_async,
        notices=notices,
        signature=signature,
    )


def _import(module_name: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise TargetError(
                f"runner.target {spec!r}: module '{module_name}' not found on the import path "
                f"({sys.path[0]!r} first); check runner.working_directory / runner.python_path"
            ) from None
        raise TargetError(_import_failure(module_name, f"runner.target {spec!r}", exc)) from None
    except BaseException as exc:  # the module's own import code raised
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not isinstance(exc, SystemExit):
            raise
        raise TargetError(_import_failure(module_name, f"runner.target {spec!r}", exc)) from None


def _import_failure(module_name: str, setting: str, exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return (
        f"{setting}: importing module '{module_name}' raised "
        f"{type(exc).__name__}: {exc}\n\nOriginal traceback:\n{tb}"
    )


def _public_names(owner: Any) -> str:
    names = [n for n in dir(owner) if not n.startswith("_") and callable(getattr(owner, n, None))]
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
