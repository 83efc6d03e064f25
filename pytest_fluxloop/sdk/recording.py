"""Argument recording: what an agent was called with, one JSON line per call.

The earlier FluxLoop SDK's names (``record_call_args``, ``enable_recording``,
``disable_recording``, ``set_recording_options``) with one line format::

    {"_version": "1", "target": "app.handler:run", "iteration": 0, "args": [],
     "kwargs": {"message": "hi", "send": {"__fluxloop__": "callable", "name": "send"}},
     "timestamp": "2025-01-01T12:00:00.000000Z"}

**When.** Recording is on with ``FLUXLOOP_RECORD_ARGS=true`` (the environment, or a ``.env``
in the current directory for a variable the environment does not set),
``configure(record_args=True)`` or after :func:`enable_recording`; off after
:func:`disable_recording`. The answer is decided once and cached, so with recording off an
``@agent`` call pays one attribute check. Then every call of an ``@agent``-decorated
function appends a line: ``target`` = ``"<module>:<qualname>"`` (what a config's
``runner.target`` names; a script run directly is named as a module relative to the
current directory, ``python app/main.py`` -> ``app.main``, not ``__main__``), the
positional arguments in ``args`` and the keyword arguments in ``kwargs`` as the caller
passed them (a method's ``self``/``cls`` left out), and the target's next ``iteration``.
:func:`record_call_args` records explicitly.

Nothing is recorded inside a FluxLoop experiment case (the trace a case runs in): replaying
recorded arguments would otherwise record the replays. A trace that a standalone
:func:`~pytest_fluxloop.sdk.instrument` block opens is not a case; calls inside it are
recorded. An explicit ``record_call_args(target, ...)`` inside a call of the ``@agent``
function with that same target writes nothing (the decorator has recorded the call), so an
agent written for the earlier SDK, which recorded by hand, gets one line per call, not two.

**What.** Values with no JSON form become typed placeholders
(:func:`pytest_fluxloop.jsonsafe.placeholder`: ``{"__fluxloop__": "callable", "name":
"send"}``, ``{"__fluxloop__": "bytes", "length": 12}``, ``{"__fluxloop__": "object", ...}``).
Arguments named by ``record_deny`` (``FLUXLOOP_RECORD_DENY``, comma-separated; ``data.token``
reaches into a dict, and into each dict of a list) are replaced by the redaction marker; with
``record_allow`` (``FLUXLOOP_RECORD_ALLOW``) only the arguments (or dotted paths) it names are
kept and everything else is replaced. Secret redaction (:mod:`pytest_fluxloop.redact`:
secret-looking key names such as ``api_key``, credential-shaped text such as ``sk-...`` or
``Bearer ...``, the values of secret environment variables) always applies on top, before
anything is written.

**Where.** ``FLUXLOOP_RECORDING_FILE`` / ``recording_file`` (default
:data:`DEFAULT_RECORDING_FILE`, relative to the current directory when written). Lines are
appended safely from many threads and processes (one ``os.write`` per line on an
``O_APPEND`` descriptor, :mod:`~pytest_fluxloop.sdk.jsonl`). Past ``recording_max_bytes``
(``FLUXLOOP_RECORDING_MAX_BYTES``, default 50 MiB, 0: no cap) the file is rotated to
``<file>.1`` ... keeping ``recording_backups`` (``FLUXLOOP_RECORDING_BACKUPS``, default 3).

**Never in the way.** A failure to serialise or write a line (a hostile object, a full disk,
a bad setting) is logged once on the ``fluxloop`` logger and the call goes on unrecorded.

:func:`write_call_record` is the line writer itself, for callers that record on their own
terms.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..jsonsafe import dumps_line, to_jsonable
from ..records import utcnow
from .context import TraceContext, current_trace
from .jsonl import append_lines
from .settings import (
    RECORDING,
    get_config,
    recording_enabled,
    recording_override,
    set_recording_override,
)

__all__ = [
    "DEFAULT_RECORDING_FILE",
    "LOGGER_NAME",
    "RECORDING_VERSION",
    "CallSite",
    "active_recording_file",
    "call_record",
    "call_site",
    "disable_recording",
    "enable_recording",
    "end_agent_call",
    "record_agent_call",
    "record_call_args",
    "set_recording_options",
    "write_call_record",
]

RECORDING_VERSION = "1"
"""The ``_version`` of every recording line."""

DEFAULT_RECORDING_FILE = "recordings/args_recording.jsonl"
"""Where lines go when no file is set (relative to the current directory when written)."""

LOGGER_NAME = "fluxloop"
"""The logger a recording failure is reported on (once per process)."""

_lock = threading.Lock()
_iterations: dict[str, int] = {}
_auto_increment = True
_warned = False

# The target of the @agent call whose line was just written, while that call runs.
_recording_target: ContextVar[str | None] = ContextVar("fluxloop_recording", default=None)

_SELF_NAMES = ("self", "cls")
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

# A parsed allow/deny list: name -> None (the whole value) or the names below it.
_Tree = dict[str, "_Tree | None"]


@dataclass(frozen=True)
class CallSite:
    """How the calls of one ``@agent`` function are recorded (fixed at decoration time).

    Attributes:
        target: ``"<module>:<qualname>"``, the line's ``target``.
        positional: the names of the positional parameters (after ``self``/``cls``), so an
            allow/deny list can name an argument passed by position.
        varargs: the ``*args`` parameter's name, for positional arguments past those.
        drops_self: the first parameter is ``self``/``cls``: a method's first argument is
            its instance (or class), not data to replay.
    """

    target: str
    positional: tuple[str, ...] = ()
    varargs: str | None = None
    drops_self: bool = False

    def names(self, count: int) -> list[str | None]:
        """The parameter name of each of ``count`` positional arguments (None: unknown)."""
        known = self.positional
        return [known[i] if i < len(known) else self.varargs for i in range(count)]


def _main_module_name() -> str | None:
    """The importable name of the ``__main__`` module, if it has one.

    ``python -m app.main`` keeps it in ``__spec__``; ``python app/main.py`` has only the
    file, named here as a module relative to the current directory (``app.main``), as a
    config's ``runner.target`` would name it.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if isinstance(name, str) and name and name != "__main__":
        return name.removesuffix(".__main__")
    file = getattr(main, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    try:
        relative = Path(file).resolve().relative_to(Path.cwd().resolve())
    except (OSError, ValueError):  # a script outside the current directory
        relative = Path(Path(file).name)
    parts = relative.with_suffix("").parts
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts)


def call_site(fn: Callable[..., Any], signature: inspect.Signature | None) -> CallSite:
    """The :class:`CallSite` of ``fn`` (its ``signature``, when known, names its arguments).

    A function of a script run as ``__main__`` is named after the script's module (see
    :func:`_main_module_name`): ``__main__:run`` would match no ``runner.target``.
    """
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    if module == "__main__":
        module = _main_module_name() or module
    if signature is None:
        return CallSite(f"{module}:{qualname}")
    params = list(signature.parameters.values())
    drops_self = bool(params) and params[0].kind in _POSITIONAL and params[0].name in _SELF_NAMES
    if drops_self:
        params = params[1:]
    varargs = next((p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    return CallSite(
        target=f"{module}:{qualname}",
        positional=tuple(p.name for p in params if p.kind in _POSITIONAL),
        varargs=varargs,
        drops_self=drops_self,
    )


def _tree(paths: Iterable[str]) -> _Tree:
    root: _Tree = {}
    for path in paths:
        node = root
        parts = [p.strip() for p in path.split(".")]
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if child is None:  # a shorter path already covers the whole value
                break
            node = child
        else:
            node[parts[-1]] = None
    return root


def _deny(value: Any, below: _Tree) -> Any:
    """``value`` with the paths of ``below`` replaced by the marker (lists: each item)."""
    from ..redact import REDACTED

    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in below:
                out[key] = item
            else:
                sub = below[key]
                out[key] = REDACTED if sub is None else _deny(item, sub)
        return out
    if isinstance(value, list):
        return [_deny(item, below) for item in value]
    return value


def _allow(value: Any, below: _Tree) -> Any:
    """``value`` keeping only the paths of ``below`` (lists: each item); the rest replaced."""
    from ..redact import REDACTED

    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in below:
                out[key] = REDACTED
            else:
                sub = below[key]
                out[key] = item if sub is None else _allow(item, sub)
        return out
    if isinstance(value, list):
        return [_allow(item, below) for item in value]
    return REDACTED  # a path into a value that has no fields: nothing of it is allowed


def _filter_arguments(
    data: dict[str, Any],
    names: Sequence[str | None],
    allow: Iterable[str] | None,
    deny: Iterable[str],
) -> None:
    """Apply the allow and deny lists to ``data["args"]`` (named by ``names``) and
    ``data["kwargs"]``, in place."""
    from ..redact import REDACTED

    allowed = _tree(allow) if allow else None
    denied = _tree(deny)

    def one(name: str | None, value: Any) -> Any:
        if allowed is not None:
            if name is None or name not in allowed:
                return REDACTED
            sub = allowed[name]
            if sub is not None:
                value = _allow(value, sub)
        if name is not None and name in denied:
            sub = denied[name]
            value = REDACTED if sub is None else _deny(value, sub)
        return value

    args = data["args"]
    data["args"] = [one(names[i] if i < len(names) else None, v) for i, v in enumerate(args)]
    data["kwargs"] = {k: one(k, v) for k, v in data["kwargs"].items()}


def call_record(
    target: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    iteration: int | None = None,
    arg_names: Sequence[str | None] = (),
    allow: Iterable[str] | None = None,
    deny: Iterable[str] = (),
) -> dict[str, Any]:
    """One recording line as data: JSON-safe (placeholders for non-JSON values), redacted.

    Args:
        arg_names: the parameter name of each positional argument (for the lists below).
        allow: when given, only these arguments (names or dotted paths) are kept; the others
            become the redaction marker (a positional argument with no name too).
        deny: these arguments (names or dotted paths) become the redaction marker.
    """
    # Imported on first use: it compiles its patterns, a cost agents that never record skip.
    from ..redact import redact

    record = {
        "_version": RECORDING_VERSION,
        "target": target,
        "iteration": iteration,
        "args": list(args),
        "kwargs": dict(kwargs or {}),
        "timestamp": utcnow(),
    }
    if any(arg_names):
        # Which parameter each positional argument went to: replay then finds
        # `data.content` in a `data` passed positionally, with no import of the target.
        record["arg_names"] = list(arg_names)[: len(args)]
    data: dict[str, Any] = to_jsonable(record, placeholders=True)
    deny = tuple(deny)
    if allow or deny:
        _filter_arguments(data, arg_names, allow, deny)
    redacted: dict[str, Any] = redact(data)
    return redacted


def write_call_record(
    path: str | os.PathLike[str],
    target: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    iteration: int | None = None,
    arg_names: Sequence[str | None] = (),
    allow: Iterable[str] | None = None,
    deny: Iterable[str] = (),
    max_bytes: int = 0,
    backups: int = 0,
) -> dict[str, Any]:
    """Append one :func:`call_record` line to ``path`` (thread- and process-safe, parents
    created, one write per line, handed to the OS before returning). Returns the record.

    ``max_bytes``/``backups`` rotate the file as ``recording_max_bytes`` /
    ``recording_backups`` do (0: no cap); the other arguments are :func:`call_record`'s.
    """
    record = call_record(
        target, args, kwargs, iteration=iteration, arg_names=arg_names, allow=allow, deny=deny
    )
    append_lines(path, [dumps_line(record)], max_bytes=max_bytes, backups=backups)
    return record


def active_recording_file() -> Path | None:
    """The file recording writes to now, or None when recording is off.

    Raises:
        ValueError: a ``FLUXLOOP_*`` environment variable has a bad value.
    """
    if not recording_enabled():
        return None
    override = recording_override()
    if override is False:
        return None
    if override is not None:
        return override
    return _resolve(get_config().recording_file)


def _resolve(file: str | os.PathLike[str] | None) -> Path:
    path = Path(file or DEFAULT_RECORDING_FILE).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def _iteration(target: str, iteration: int | None) -> int:
    with _lock:
        if iteration is not None:
            # Later calls without an iteration continue from here.
            _iterations[target] = iteration
            return iteration
        if not _auto_increment:
            return 0
        value = _iterations.get(target, -1) + 1
        _iterations[target] = value
        return value


def _in_experiment(ctx: TraceContext | None) -> bool:
    return ctx is not None and ctx.experiment


def _write(
    target: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    iteration: int | None,
    arg_names: Sequence[str | None] = (),
) -> dict[str, Any] | None:
    """Record one call if recording is on; failures are logged once, never raised."""
    try:
        path = active_recording_file()
        if path is None:
            return None
        config = get_config()
        return write_call_record(
            path,
            target,
            args,
            kwargs,
            iteration=_iteration(target, iteration),
            arg_names=arg_names,
            allow=config.record_allow,
            deny=config.record_deny,
            max_bytes=config.recording_max_bytes,
            backups=config.recording_backups,
        )
    except Exception as exc:  # recording must never break the agent's call
        _warn_once(target, exc)
        return None


def _warn_once(target: str, exc: Exception) -> None:
    global _warned
    with _lock:
        if _warned:
            return
        _warned = True
    # Imported on this failure path only: the SDK's import stays light.
    import logging

    from ..redact import redact

    # The message may quote an argument (a failing __repr__'s text): redacted like a line.
    reason = redact(f"{type(exc).__name__}: {exc}")
    logging.getLogger(LOGGER_NAME).warning(
        "fluxloop: could not record a call of %s (%s); the call went on unrecorded. "
        "Further recording failures in this process are not logged.",
        target,
        reason,
    )


def record_call_args(
    target: str, *, iteration: int | None = None, **kwargs: Any
) -> dict[str, Any] | None:
    """Record that ``target`` was called with ``kwargs`` (when recording is on).

    Appends one line to :func:`active_recording_file` and returns the record written; does
    nothing and returns None when recording is off, inside a FluxLoop experiment case,
    inside a call of the ``@agent`` function with this same ``target`` (the decorator has
    recorded that call), or when the line cannot be written (logged once, never raised).

    Args:
        target: what was called (e.g. ``"app.handler:run"``).
        iteration: the iteration number to record; default: the next number for this
            target (0, 1, 2, ...), or always 0 after
            ``set_recording_options(iteration_auto_increment=False)``.
        **kwargs: the call's arguments. Callables, sockets, bytes and other objects with no
            JSON form become ``{"__fluxloop__": kind, ...}`` placeholders; the allow/deny
            lists apply and secrets are redacted.
    """
    if RECORDING.on is False:
        return None
    if _recording_target.get() == target or _in_experiment(current_trace()):
        return None
    return _write(target, (), kwargs, iteration)


def record_agent_call(
    site: CallSite,
    ctx: TraceContext | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    mark: bool = True,
) -> Token[str | None] | None:
    """Record one call of an ``@agent`` function (the decorator calls this when
    :data:`~pytest_fluxloop.sdk.settings.RECORDING` is not off).

    Returns, when a line was written and ``mark`` is true, a token the caller passes to
    :func:`end_agent_call` when the call returns: until then an explicit
    :func:`record_call_args` of the same target writes nothing. (Generator agents pass
    ``mark=False``: a context variable set inside a generator would leak to its consumer.)
    """
    if _in_experiment(ctx):
        return None
    if site.drops_self:
        args = args[1:]
        if "self" in kwargs or "cls" in kwargs:
            kwargs = {k: v for k, v in kwargs.items() if k not in _SELF_NAMES}
    written = _write(site.target, args, kwargs, None, site.names(len(args)))
    if written is None or not mark:
        return None
    return _recording_target.set(site.target)


def end_agent_call(token: Token[str | None]) -> None:
    """Undo :func:`record_agent_call`'s mark when the recorded call returns."""
    _recording_target.reset(token)


def enable_recording(output_file: str | os.PathLike[str] | None = None) -> Path:
    """Turn argument recording on, writing to ``output_file`` (resolved now, against the
    current directory; empty or None: :data:`DEFAULT_RECORDING_FILE`). Returns the file.

    Stays on until :func:`disable_recording`, or a :func:`configure` call that sets
    ``record_args``/``recording_file``, or :func:`reset_config`.
    """
    path = _resolve(output_file if output_file else None).resolve()
    set_recording_override(path)
    return path


def disable_recording() -> None:
    """Turn argument recording off (even when the config or the environment turn it on)."""
    set_recording_override(False)


def set_recording_options(*, iteration_auto_increment: bool | None = None) -> None:
    """Change how recording numbers iterations.

    Args:
        iteration_auto_increment: True (default): a call without ``iteration`` gets the
            target's next number; False: it gets 0.
    """
    global _auto_increment
    if iteration_auto_increment is not None:
        with _lock:
            _auto_increment = bool(iteration_auto_increment)
