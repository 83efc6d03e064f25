"""Argument recording: what an agent was called with, one JSON line per call.

The earlier FluxLoop SDK's names (``record_call_args``, ``enable_recording``,
``disable_recording``, ``set_recording_options``) with one line format::

    {"_version": "1", "target": "app.handler:run", "iteration": 0, "args": [],
     "kwargs": {"message": "hi", "send": {"__fluxloop__": "callable", "name": "send"}},
     "timestamp": "2025-01-01T12:00:00.000000Z"}

Values with no JSON form become typed placeholders (:func:`pytest_fluxloop.jsonsafe.placeholder`)
and secrets are redacted (:mod:`pytest_fluxloop.redact`: secret-looking key names such as
``api_key``, and credential-shaped text such as ``sk-...``) before anything is written.

Recording is on when ``configure(record_args=True)``, ``FLUXLOOP_RECORD_ARGS=true`` or after
:func:`enable_recording`, and off after :func:`disable_recording`. :func:`write_call_record`
is the line writer itself, for callers that record on their own terms.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..jsonsafe import dumps_line, to_jsonable
from ..records import utcnow
from .jsonl import append_lines
from .settings import get_config, recording_override, set_recording_override

__all__ = [
    "DEFAULT_RECORDING_FILE",
    "RECORDING_VERSION",
    "active_recording_file",
    "call_record",
    "disable_recording",
    "enable_recording",
    "record_call_args",
    "set_recording_options",
    "write_call_record",
]

RECORDING_VERSION = "1"
"""The ``_version`` of every recording line."""

DEFAULT_RECORDING_FILE = "recordings/args_recording.jsonl"
"""Where lines go when no file is set (relative to the current directory when written)."""

_lock = threading.Lock()
_iterations: dict[str, int] = {}
_auto_increment = True


def call_record(
    target: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    iteration: int | None = None,
) -> dict[str, Any]:
    """One recording line as data: JSON-safe (placeholders for non-JSON values), redacted."""
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
    data: dict[str, Any] = redact(to_jsonable(record, placeholders=True))
    return data


def write_call_record(
    path: str | os.PathLike[str],
    target: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    iteration: int | None = None,
) -> dict[str, Any]:
    """Append one :func:`call_record` line to ``path`` (thread-safe, parents created, one
    write per line, handed to the OS before returning). Returns the record written."""
    record = call_record(target, args, kwargs, iteration=iteration)
    append_lines(path, [dumps_line(record)])
    return record


def active_recording_file() -> Path | None:
    """The file :func:`record_call_args` writes to now, or None when recording is off."""
    override = recording_override()
    if override is False:
        return None
    if override is not None:
        return override
    config = get_config()
    if not config.record_args:
        return None
    return _resolve(config.recording_file)


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


def record_call_args(
    target: str, *, iteration: int | None = None, **kwargs: Any
) -> dict[str, Any] | None:
    """Record that ``target`` was called with ``kwargs`` (when recording is on).

    Appends one line to :func:`active_recording_file` and returns the record written; does
    nothing and returns None when recording is off.

    Args:
        target: what was called (e.g. ``"app.handler:run"``).
        iteration: the iteration number to record; default: the next number for this
            target (0, 1, 2, ...), or always 0 after
            ``set_recording_options(iteration_auto_increment=False)``.
        **kwargs: the call's arguments. Callables, sockets, bytes and other objects with no
            JSON form become ``{"__fluxloop__": kind, ...}`` placeholders; secrets are
            redacted.
    """
    path = active_recording_file()
    if path is None:
        return None
    return write_call_record(path, target, (), kwargs, iteration=_iteration(target, iteration))


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
