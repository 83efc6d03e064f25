"""Recording files: the one reader of recorded call arguments (``replay_args``).

A recording file holds one JSON object a line, one recorded call each. Three line shapes are
read, all as ``_version`` 1:

* ours (:func:`pytest_fluxloop.sdk.recording.call_record`)::

    {"_version": "1", "target": "app.ws:handle", "iteration": 0, "args": [],
     "kwargs": {"data": {"content": "hi"}, "send": {"__fluxloop__": "callable", "name": "send"}},
     "timestamp": "2025-01-01T12:00:00.000000Z"}

* the earlier FluxLoop SDK's: the same without ``args``, callables written as text such as
  ``"<callable:send>"`` or ``"<builtin:collector.send>"``;
* the documented example (no ``_version``, no ``target``):
  ``{"args": [], "kwargs": {...}, "timestamp": "..."}``.

Values are kept as recorded here (placeholders included); turning placeholders back into
working stand-ins is the engine's business (:mod:`pytest_fluxloop.engine.replay`).

Errors name the file and the line, and come before any case runs. The one problem that is
only a warning is a last line cut off mid-JSON: a process that crashed while appending leaves
exactly that, and the calls before it are sound.

:class:`ArgPath` is ``replay_args.override_param_path``: where in a recorded call the case's
input goes (``data.content``, ``messages.0.content``, ``args.0.text``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..jsonsafe import PLACEHOLDER_KEY

__all__ = [
    "MAX_CALLS",
    "SUPPORTED_VERSIONS",
    "ArgPath",
    "RecordedCall",
    "Recordings",
    "is_placeholder",
    "read_recordings",
]

SUPPORTED_VERSIONS = ("1",)
"""The ``_version`` values this reader understands (a line without one is version 1)."""

MAX_CALLS = 100_000
"""More recorded calls than this in one file is an error: replay keeps every call in memory,
and a file this large is almost always a recorder left on, not a test set."""

_MAIN = "__main__"
_MAX_SUGGESTED_PATHS = 6
_MAX_LISTED_PATHS = 2_000
"""Paths collected from a call for suggestions: enough for any real call, bounded for huge ones."""


@dataclass(frozen=True)
class RecordedCall:
    """One recorded call, as read from its line (values as recorded, placeholders included)."""

    line: int
    """1-based line number in the file."""
    version: str
    target: str | None
    """``module:qualname`` the call was recorded for; None when the line does not say."""
    args: list[Any]
    kwargs: dict[str, Any]
    iteration: int | None = None
    timestamp: str | None = None
    arg_names: list[str | None] = field(default_factory=list)
    """The parameter each positional argument was bound to, when the line says (our SDK
    writes ``arg_names``), so ``data.content`` reaches a ``data`` passed positionally."""


@dataclass
class Recordings:
    """The calls of one recording file, in file order, and what the reader had to say."""

    path: Path
    calls: list[RecordedCall]
    warnings: list[str] = field(default_factory=list)
    """Things the caller must show (a skipped last line, calls matched loosely or left out)."""

    def targets(self) -> dict[str | None, int]:
        """Each recorded target (None: lines without one) and its number of calls, in the
        order first seen."""
        counts: dict[str | None, int] = {}
        for call in self.calls:
            counts[call.target] = counts.get(call.target, 0) + 1
        return counts

    def calls_for(self, target_spec: str) -> Recordings:
        """The calls recorded for ``target_spec`` (``module:qualname``), as a new
        :class:`Recordings` whose warnings say what was matched loosely or left out.

        A call matches when its target is ``target_spec``, when it names no target (the
        documented example line), or when it is ``__main__:<same qualname>`` (the
        application was run as a script: ``python app.py`` records its functions under
        ``__main__``; a warning says so). Calls for other targets are left out with a
        warning.

        Raises:
            ConfigError: no call in the file is for ``target_spec`` (the message lists the
                targets the file holds).
        """
        qualname = target_spec.partition(":")[2]
        matched: list[RecordedCall] = []
        as_main = 0
        others: dict[str | None, int] = {}
        for call in self.calls:
            target = call.target
            if target is None or target == target_spec:
                matched.append(call)
            elif qualname and target == f"{_MAIN}:{qualname}":
                matched.append(call)
                as_main += 1
            else:
                others[target] = others.get(target, 0) + 1
        if not matched:
            raise ConfigError(
                f"recording file {self.path} holds no call recorded for runner.target "
                f"{target_spec!r}; it holds calls for {_describe_targets(self.targets())}. "
                "Point runner.target at the recorded function, or record calls of this one"
            )
        warnings = list(self.warnings)
        if as_main:
            warnings.append(
                f"{self.path}: {as_main} recorded call(s) name target '{_MAIN}:{qualname}' "
                "(the application ran as a script); they are replayed for runner.target "
                f"{target_spec!r}, the function of the same name"
            )
        if others:
            skipped = sum(others.values())
            warnings.append(
                f"{self.path}: {skipped} recorded call(s) for other targets are not replayed "
                f"({_describe_targets(others)}); replaying the {len(matched)} recorded for "
                f"runner.target {target_spec!r}"
            )
        return Recordings(self.path, matched, warnings)


def read_recordings(path: Path | str, *, max_calls: int = MAX_CALLS) -> Recordings:
    """Read every recorded call of ``path`` (streamed, line by line).

    Blank lines are skipped. A last line that is not complete JSON is skipped with a warning
    naming it (what a crash mid-write leaves); every other problem is an error.

    Raises:
        ConfigError: the file is missing or unreadable, holds no call, holds more than
            ``max_calls``, or has a line that is not JSON (other than the last), not an
            object, of an unknown ``_version``, or with ``args``/``kwargs`` of the wrong type.
            The message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(
            f"recording file {path} {what}; record calls first (FLUXLOOP_RECORD_ARGS=true, "
            "or fluxloop.enable_recording() in the application), or fix "
            "replay_args.recording_file"
        )
    calls: list[RecordedCall] = []
    warnings: list[str] = []
    # A line that does not parse is an error only once a later line shows it is not the last.
    broken: tuple[int, str] | None = None
    try:
        for number, raw in _lines(path):
            if broken is not None:
                raise ConfigError(
                    f"{path}, line {broken[0]}: not valid JSON ({broken[1]}); each line must "
                    "be one recorded call as a JSON object"
                )
            try:
                data = json.loads(raw.decode("utf-8").rstrip("\r\n"))
            except (UnicodeDecodeError, ValueError) as exc:
                broken = (number, _short(exc))
                continue
            calls.append(_recorded_call(path, number, data))
            if len(calls) > max_calls:
                raise ConfigError(
                    f"recording file {path} holds more than {max_calls:,} recorded calls (line "
                    f"{number}); replay reads at most {max_calls:,}. Keep the calls to replay in "
                    "a smaller file and point replay_args.recording_file at it"
                )
    except OSError as exc:
        raise ConfigError(f"cannot read recording file {path}: {exc}") from None
    if broken is not None:
        warnings.append(
            f"{path}, line {broken[0]}: the last line is cut off ({broken[1]}), as a process "
            "stopped mid-write leaves it; skipped"
        )
    if not calls:
        detail = f" (line {broken[0]}, the only one, is cut off)" if broken else ""
        raise ConfigError(
            f"recording file {path} holds no recorded calls{detail}; record calls first "
            "(FLUXLOOP_RECORD_ARGS=true while the application runs)"
        )
    return Recordings(path, calls, warnings)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines as bytes, numbered from 1 (bytes: a line cut inside a multi-byte
    character must be reported as cut off, not fail the whole file's decoding)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw


def _recorded_call(path: Path, number: int, data: Any) -> RecordedCall:
    where = f"{path}, line {number}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a recorded call must be a JSON object, not {_json_type(data)}")
    version = data.get("_version", "1")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError(
            f"{where}: recording _version {version!r} is not supported; this version of "
            f"pytest-fluxloop reads _version {', '.join(SUPPORTED_VERSIONS)}. Upgrade "
            "pytest-fluxloop, or record the calls again"
        )
    if "args" not in data and "kwargs" not in data:
        raise ConfigError(
            f"{where}: not a recorded call: it has neither 'args' nor 'kwargs' "
            f"(keys: {', '.join(sorted(map(str, data))) or 'none'})"
        )
    args = data.get("args", [])
    kwargs = data.get("kwargs", {})
    if not isinstance(args, list):
        raise ConfigError(f"{where}: 'args' must be a JSON list, not {_json_type(args)}")
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: 'kwargs' must be a JSON object, not {_json_type(kwargs)}")
    target = data.get("target")
    if target is not None and not isinstance(target, str):
        raise ConfigError(
            f"{where}: 'target' must be a string ('module:function'), not {_json_type(target)}"
        )
    iteration = data.get("iteration")
    timestamp = data.get("timestamp")
    names = data.get("arg_names")
    arg_names = (
        [n if isinstance(n, str) else None for n in names] if isinstance(names, list) else []
    )
    return RecordedCall(
        line=number,
        version=str(version),
        target=target or None,
        args=args,
        kwargs=kwargs,
        iteration=iteration
        if isinstance(iteration, int) and not isinstance(iteration, bool)
        else None,
        timestamp=timestamp if isinstance(timestamp, str) else None,
        arg_names=arg_names,
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _short(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        # json's own "line 1 column 5" counts within the one line: the column is what helps.
        return f"{exc.msg} at column {exc.colno}"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _describe_targets(counts: dict[str | None, int]) -> str:
    parts = [
        f"{target!r} ({count} call{'s' * (count != 1)})"
        if target is not None
        else f"no named target ({count} call{'s' * (count != 1)})"
        for target, count in list(counts.items())[:10]
    ]
    if len(counts) > 10:
        parts.append(f"and {len(counts) - 10} more")
    return ", ".join(parts)


# ------------------------------------------------------------------ override_param_path


def is_placeholder(value: Any) -> bool:
    """Whether ``value`` is a typed placeholder (``{"__fluxloop__": kind, ...}``)."""
    return isinstance(value, dict) and isinstance(value.get(PLACEHOLDER_KEY), str)


@dataclass(frozen=True)
class ArgPath:
    """``replay_args.override_param_path``: a dot path into a recorded call.

    The first segment names a keyword argument (``data.content``); ``args.N`` starts at the
    N-th positional argument and ``kwargs.NAME`` at a keyword argument explicitly (for a
    keyword argument that is itself called ``args``). Later segments are object keys or
    list indices (``messages.0.content``; ``-1`` is the last item). The whole path must exist
    in the recorded call: the value found there is replaced by the case's input.
    """

    text: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ArgPath:
        """Parse ``text``; ConfigError for an empty path or an empty segment."""
        segments = tuple(text.split("."))
        if not text or any(not s for s in segments):
            raise ConfigError(
                f"replay_args.override_param_path {text!r} is not a dot path; write it like "
                "data.content or messages.0.content"
            )
        return cls(text, segments)

    def _start(
        self, args: list[Any], kwargs: dict[str, Any], names: Sequence[str | None] = ()
    ) -> tuple[Any, tuple[str, ...], str]:
        """The container the path starts in, the segments left, and its name (messages).

        ``names``: the parameter of each positional argument; a first segment naming one
        starts in that argument (``data.content`` with ``data`` passed positionally).
        """
        first, rest = self.segments[0], self.segments[1:]
        if first in kwargs:
            return kwargs, self.segments, ""
        if first in names and names.index(first) < len(args):
            return args, (str(names.index(first)), *rest), ""
        if first == "args" and rest:
            return args, rest, "args"
        if first == "kwargs" and rest:
            return kwargs, rest, "kwargs"
        return kwargs, self.segments, ""

    def problem(
        self, args: list[Any], kwargs: dict[str, Any], names: Sequence[str | None] = ()
    ) -> str | None:
        """Why the path is not in the call ``(args, kwargs)``; None when it is."""
        container, segments, walked = self._start(args, kwargs, names)
        for depth, segment in enumerate(segments):
            here = walked or "the recorded call"
            if is_placeholder(container):
                return f"{here} is a recorded {container[PLACEHOLDER_KEY]} (no data inside)"
            if isinstance(container, dict):
                if segment not in container:
                    keys = ", ".join(map(str, list(container)[:12])) or "none"
                    if container is kwargs and depth == 0:
                        return f"no argument named {segment!r} (keyword arguments: {keys})"
                    return f"{here} has no key {segment!r} (its keys: {keys})"
                container = container[segment]
            elif isinstance(container, list):
                index = _index(segment)
                if index is None:
                    return f"{here} is a list; {segment!r} is not an index"
                if not -len(container) <= index < len(container):
                    return f"{here} has {len(container)} item(s), no index {index}"
                container = container[index]
            else:
                return f"{here} is {_json_type(container)}, not an object or a list"
            walked = f"{walked}.{segment}" if walked else segment
        return None

    def assign(
        self,
        args: list[Any],
        kwargs: dict[str, Any],
        value: Any,
        names: Sequence[str | None] = (),
    ) -> None:
        """Put ``value`` at the path (which :meth:`problem` found in this call's shape)."""
        container, segments, _ = self._start(args, kwargs, names)
        for segment in segments[:-1]:
            container = container[_key(container, segment)]
        container[_key(container, segments[-1])] = value

    def check(self, calls: list[RecordedCall], source: Path) -> None:
        """ConfigError unless the path is in every call; the message names the first call
        without it (file and line) and the paths nearest to it that do exist there."""
        for call in calls:
            problem = self.problem(call.args, call.kwargs, call.arg_names)
            if problem is None:
                continue
            paths = [_named(p, call.arg_names) for p in _paths(call.args, call.kwargs)]
            near = difflib.get_close_matches(self.text, paths, n=_MAX_SUGGESTED_PATHS, cutoff=0.5)
            if not near:
                leaves = [p for p, leaf in _paths_with_kind(call.args, call.kwargs) if leaf]
                near = leaves[:_MAX_SUGGESTED_PATHS]
            listed = ", ".join(near) or "none (the call has no arguments)"
            raise ConfigError(
                f"replay_args.override_param_path {self.text!r} is not in the recorded "
                f"arguments of {source}, line {call.line}: {problem}. Nearest paths that "
                f"exist: {listed}"
            )


def _index(segment: str) -> int | None:
    try:
        return int(segment)
    except ValueError:
        return None


def _key(container: Any, segment: str) -> Any:
    return int(segment) if isinstance(container, list) else segment


def _named(path: str, names: Sequence[str | None]) -> str:
    """``args.0.content`` as ``data.content`` when positional argument 0 is ``data``."""
    parts = path.split(".")
    if len(parts) >= 2 and parts[0] == "args" and parts[1].isdigit():
        index = int(parts[1])
        if index < len(names) and names[index]:
            return ".".join([str(names[index]), *parts[2:]])
    return path


def _paths(args: list[Any], kwargs: dict[str, Any]) -> Iterator[str]:
    for path, _ in _paths_with_kind(args, kwargs):
        yield path


def _paths_with_kind(args: list[Any], kwargs: dict[str, Any]) -> Iterator[tuple[str, bool]]:
    """Every path in a call (objects and lists too), with whether it is a leaf; bounded."""
    count = 0
    stack: list[tuple[str, Any, int]] = [(f"args.{i}", v, 0) for i, v in enumerate(args)][::-1]
    stack.extend((str(k), v, 0) for k, v in reversed(list(kwargs.items())))
    while stack and count < _MAX_LISTED_PATHS:
        path, value, depth = stack.pop()
        count += 1
        if is_placeholder(value) or depth > 16:
            yield path, True
            continue
        if isinstance(value, dict) and value:
            yield path, False
            stack.extend((f"{path}.{k}", v, depth + 1) for k, v in reversed(list(value.items())))
        elif isinstance(value, list) and value:
            yield path, False
            stack.extend((f"{path}.{i}", v, depth + 1) for i, v in reversed(list(enumerate(value))))
        else:
            yield path, True
