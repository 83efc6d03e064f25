"""Turn arbitrary Python values into JSON-safe data, and data into single JSONL lines.

Agents return whatever they like: bytes, NaN, self-referencing structures, objects with no
JSON form, strings with lone surrogates. Nothing that reaches an artifact file may crash the writer
or break the one-record-per-line contract, so every value goes through :func:`to_jsonable`
and every line through :func:`dumps_line`.

Coercion rules (stable; artifact readers rely on them):

* pydantic models -> ``model_dump(mode="json")`` (falling back to a field-by-field walk when
  pydantic cannot serialise a field, e.g. a cycle or an unknown type inside ``Any``);
* ``datetime``/``date``/``time`` -> ISO 8601 strings (UTC written with a ``Z`` suffix, as
  pydantic does);
* ``bytes``/``bytearray``/``memoryview`` -> the UTF-8 text when the bytes decode as UTF-8,
  otherwise ``{"__bytes__": "<base64>"}``. Decoding first is deliberate: text that passed
  through bytes must stay visible to the secret redactor, which cannot see into base64;
* ``float('nan')``/``inf``/``-inf`` -> ``None``;
* ``set``/``frozenset``/``tuple`` -> lists (sets sorted when possible, for reproducible
  output);
* a container met again while inside itself -> ``"<cycle>"``;
* nesting deeper than ``max_depth`` -> ``"<max depth>"``;
* dict keys -> ``str``;
* lone surrogate code points in strings (``"\\udcff"`` from a bad decode) -> U+FFFD, so the
  result can always be encoded as UTF-8; with ``replaced=[...]`` the JSON path of each
  string or key that lost one is added to that list (the record builder keeps them in
  the record's ``metadata.replaced_invalid_unicode``, see :func:`replacement_note`);
* anything else -> ``repr()`` truncated to ``max_repr`` characters.

With ``placeholders=True`` (argument recording, where a value must be recognisable as "not
data" rather than look like a string the caller passed) the last two rules change: callables
(functions, methods, classes), bytes and any other non-JSON object become typed placeholders,
dicts keyed by :data:`PLACEHOLDER_KEY` (see :func:`placeholder`)::

    {"__fluxloop__": "callable", "name": "send"}
    {"__fluxloop__": "bytes", "length": 12}
    {"__fluxloop__": "object", "type": "socket.socket", "repr": "<socket.socket fd=3 ...>"}
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

__all__ = [
    "CYCLE_MARKER",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_REPR",
    "MAX_DEPTH_MARKER",
    "MAX_REPLACED_PATHS",
    "PLACEHOLDER_KEY",
    "PLACEHOLDER_REPR_CHARS",
    "REPLACED_INVALID_UNICODE",
    "copy_json",
    "dumps_line",
    "line_safe",
    "placeholder",
    "replacement_note",
    "to_jsonable",
]

CYCLE_MARKER = "<cycle>"
MAX_DEPTH_MARKER = "<max depth>"
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_REPR = 2_000
REPLACED_INVALID_UNICODE = "replaced_invalid_unicode"
"""The record ``metadata`` key that says which strings lost lone surrogates to U+FFFD."""
MAX_REPLACED_PATHS = 20
PLACEHOLDER_KEY = "__fluxloop__"
"""The key that marks a placeholder dict; its value names the kind of value replaced."""
PLACEHOLDER_REPR_CHARS = 200
"""An object placeholder keeps at most this much of the object's ``repr()``."""

# Characters that str.splitlines() treats as line breaks but json.dumps(ensure_ascii=False)
# leaves raw. They can only occur inside JSON strings, where an escape is equivalent.
_LINE_BREAK_ESCAPES = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}
# In a Python str every code point in this range is unpaired (real pairs are one code point).
_SURROGATE = re.compile("[\ud800-\udfff]")
# One encoder for every line: json.dumps() with options builds a new one per call. Compact
# separators, as pydantic-core's encoder (the artifact writer's fast path) writes them.
_LINE_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def to_jsonable(
    obj: Any,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_repr: int = DEFAULT_MAX_REPR,
    replaced: list[str] | None = None,
    path: str = "",
    placeholders: bool = False,
) -> Any:
    """Return a JSON-safe copy of ``obj`` (dicts, lists, str, int, float, bool, None).

    Never raises for any input value; see the module docstring for the coercion rules.

    Args:
        replaced: when given, the JSON path (``output.items[2].text``; a key as
            ``metadata.<key> (key)``) of every string whose lone surrogates became U+FFFD is
            appended to it, so the change is not silent.
        path: the path of ``obj`` itself in those entries (e.g. ``"output"``).
        placeholders: replace callables, bytes and other non-JSON objects by typed
            placeholder dicts instead of text (see the module docstring).
    """
    # Exact builtin scalars need no walker (they are most calls).
    if _kept_as_is(obj):
        return obj
    if type(obj) is dict and _flat_and_plain(obj):
        return dict(obj)  # what the walk returns for it, without the walk (case metadata)
    return _Walker(max_depth, max_repr, replaced, path, placeholders).walk(obj, 0)


def _kept_as_is(value: Any) -> bool:
    """Whether the walk returns ``value`` itself: None, an exact bool or int, an ASCII str
    (it holds no surrogate) or a finite float."""
    kind = type(value)
    if value is None or kind is bool or kind is int or (kind is str and value.isascii()):
        return True
    return kind is float and math.isfinite(value)


def _flat_and_plain(obj: dict[Any, Any]) -> bool:
    """Whether ``obj`` maps ASCII str keys to values the walk keeps as they are."""
    return all(
        type(key) is str and key.isascii() and _kept_as_is(value) for key, value in obj.items()
    )


def copy_json(obj: Any) -> Any:
    """A JSON-safe deep copy of ``obj``, quickly when it is plain JSON data already.

    For data that is JSON as it stands (an LLM request's messages, a parsed response body)
    the copy is a ``json`` round trip, several times faster than :func:`to_jsonable`'s walk;
    it keeps nesting deeper than ``max_depth``. Anything the round trip cannot take as it is
    (a non-JSON object, NaN, a cycle, a lone surrogate) goes through :func:`to_jsonable`.
    """
    kind = type(obj)
    if kind is dict or kind is list:
        try:
            text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return to_jsonable(obj)
        if not _SURROGATE.search(text):
            return json.loads(text)
    return to_jsonable(obj)


def placeholder(kind: str, **fields: Any) -> dict[str, Any]:
    """A typed placeholder: ``{"__fluxloop__": kind, **fields}`` (a value with no JSON form)."""
    return {PLACEHOLDER_KEY: kind, **fields}


def replacement_note(replaced: list[str]) -> dict[str, Any]:
    """What a record keeps under ``metadata.replaced_invalid_unicode``: ``count`` (every
    replaced string or key) and ``paths`` (the first :data:`MAX_REPLACED_PATHS` of them)."""
    return {"count": len(replaced), "paths": replaced[:MAX_REPLACED_PATHS]}


def dumps_line(obj: Any) -> str:
    """Serialise ``obj`` as exactly one compact JSON line (no trailing newline).

    Already JSON-safe data takes a fast path; anything else is coerced with
    :func:`to_jsonable` first. The result is valid strict JSON (no ``NaN``), keeps non-ASCII
    text readable (``ensure_ascii=False``), has no space after ``,`` and ``:`` and contains
    no character that any line splitter treats as a line break (:func:`line_safe`).
    """
    try:
        line = _LINE_ENCODER.encode(obj)
    except (TypeError, ValueError, RecursionError):
        line = _LINE_ENCODER.encode(to_jsonable(obj))
    return line_safe(line)


def line_safe(line: str) -> str:
    r"""``line`` (compact JSON text) with every character a line splitter breaks at escaped:
    ``\n`` and ``\r`` are escaped by any JSON encoder; U+2028, U+2029, U+0085 and lone
    surrogates, which an encoder may leave raw, become ``\uXXXX`` escapes (equivalent
    inside a JSON string, the only place they can occur)."""
    if line.isascii():
        return line  # neither a line separator nor a surrogate is ASCII
    if any(ch in line for ch in _LINE_BREAK_ESCAPES):
        for raw, escaped in _LINE_BREAK_ESCAPES.items():
            line = line.replace(raw, escaped)
    if _SURROGATE.search(line):
        # Lone surrogates (e.g. from a bad decode) cannot be encoded as UTF-8; a JSON
        # ``\udXXX`` escape is valid and keeps the rest of the line readable.
        line = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
    return line


def _clean_str(text: str) -> str:
    text = str(text) if type(text) is not str else text
    # Lone surrogates (from a bad decode) cannot be encoded as UTF-8, so pydantic and any
    # UTF-8 file writer would fail on them. isascii() is O(1), keeping the common path free.
    if not text.isascii() and _SURROGATE.search(text):
        return _SURROGATE.sub("\ufffd", text)
    return text


def _iso(value: datetime | date | time) -> str:
    text = value.isoformat()
    # Match pydantic's JSON form for UTC so all timestamps in a file look alike.
    if isinstance(value, (datetime, time)) and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text


class _Walker:
    """One traversal: tracks the containers on the current path to detect cycles, and (when
    asked for ``replaced``) the JSON path, to say where lone surrogates were replaced."""

    __slots__ = ("_active", "_max_depth", "_max_repr", "_path", "_placeholders", "_replaced")

    def __init__(
        self,
        max_depth: int,
        max_repr: int,
        replaced: list[str] | None = None,
        path: str = "",
        placeholders: bool = False,
    ) -> None:
        self._max_depth = max_depth
        self._max_repr = max_repr
        self._placeholders = placeholders
        self._active: set[int] = set()
        self._replaced = replaced
        # Maintained only when tracking: the common (untracked) walk stays as cheap as before.
        self._path: list[str | int] = [path] if path else []

    def _clean(self, text: str, is_key: bool = False) -> str:
        cleaned = _clean_str(text)
        if self._replaced is not None and cleaned is not text and cleaned != text:
            where = _format_path(self._path)
            if is_key:
                where = f"{where}.{cleaned} (key)" if where else f"{cleaned} (key)"
            self._replaced.append(where or "(value)")
        return cleaned

    def _child(self, step: str | int, value: Any, depth: int) -> Any:
        """Walk ``value`` one step (key or index) below the current path."""
        if self._replaced is None:
            return self.walk(value, depth)
        self._path.append(step)
        try:
            return self.walk(value, depth)
        finally:
            self._path.pop()

    def walk(self, obj: Any, depth: int) -> Any:
        # Scalars first: they are by far the most common values.
        if obj is None or isinstance(obj, bool):
            return obj
        if isinstance(obj, str):
            return self._clean(obj)
        if isinstance(obj, int) and not isinstance(obj, enum.Enum):
            return int(obj)
        if isinstance(obj, float) and not isinstance(obj, enum.Enum):
            return float(obj) if math.isfinite(obj) else None
        if depth > self._max_depth:
            return MAX_DEPTH_MARKER
        if isinstance(obj, (dict, list, tuple, set, frozenset, BaseModel, Mapping)) or (
            dataclasses.is_dataclass(obj) and not isinstance(obj, type)
        ):
            key = id(obj)
            if key in self._active:
                return CYCLE_MARKER
            self._active.add(key)
            try:
                return self._container(obj, depth)
            finally:
                self._active.discard(key)
        return self._leaf(obj, depth)

    def _container(self, obj: Any, depth: int) -> Any:
        nxt = depth + 1
        if isinstance(obj, BaseModel):
            return self.walk(self._dump_model(obj), depth)
        if isinstance(obj, Mapping):
            out: dict[str, Any] = {}
            for k, v in list(obj.items()):
                key = self._key(k)
                out[key] = self._child(key, v, nxt)
            return out
        if isinstance(obj, (set, frozenset)):
            items = list(obj)
            try:
                items.sort()
            except TypeError:
                items.sort(key=repr)
            return [self._child(i, v, nxt) for i, v in enumerate(items)]
        if isinstance(obj, (list, tuple)):
            return [self._child(i, v, nxt) for i, v in enumerate(obj)]
        # Dataclass instance: walk its fields without dataclasses.asdict (which deep-copies
        # and recurses forever on cycles).
        return {
            f.name: self._child(f.name, getattr(obj, f.name, None), nxt)
            for f in dataclasses.fields(obj)
        }

    def _dump_model(self, model: BaseModel) -> Any:
        try:
            return model.model_dump(mode="json")
        except Exception:
            # pydantic gave up on a field (a cycle or an unknown type inside ``Any``): walk
            # the fields ourselves, so only the offending value is coerced.
            data: dict[str, Any] = {
                name: getattr(model, name, None) for name in type(model).model_fields
            }
            data.update(model.model_extra or {})
            return data

    def _leaf(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, enum.Enum):
            return self.walk(obj.value, depth + 1)
        if isinstance(obj, (datetime, date, time)):
            return _iso(obj)
        if isinstance(obj, timedelta):
            return obj.total_seconds()
        if isinstance(obj, Decimal):
            return float(obj) if obj.is_finite() else None
        if isinstance(obj, (uuid.UUID, PurePath)):
            return str(obj)
        if self._placeholders:
            return self._placeholder(obj)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            raw = bytes(obj)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return {"__bytes__": base64.b64encode(raw).decode("ascii")}
        return self._repr(obj)

    def _placeholder(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return placeholder("bytes", length=memoryview(obj).nbytes)
        if callable(obj):
            try:
                name = getattr(obj, "__name__", None)
            except Exception:  # a hostile __getattr__ must not break the writer
                name = None
            if not isinstance(name, str):
                name = type(obj).__qualname__
            return placeholder("callable", name=self._clean(name))
        cls = type(obj)
        text = self._repr(obj)
        if len(text) > PLACEHOLDER_REPR_CHARS:
            text = text[: PLACEHOLDER_REPR_CHARS - 3] + "..."
        return placeholder("object", type=f"{cls.__module__}.{cls.__qualname__}", repr=text)

    def _key(self, key: Any) -> str:
        if isinstance(key, str):
            return self._clean(key, is_key=True)
        if key is None or isinstance(key, bool):
            return json.dumps(key)
        if isinstance(key, (bytes, bytearray)):
            return bytes(key).decode("utf-8", errors="backslashreplace")
        if isinstance(key, enum.Enum):
            return self._key(key.value)
        if isinstance(key, (datetime, date, time)):
            return _iso(key)
        return self._repr(key)

    def _repr(self, obj: Any) -> str:
        try:
            text = repr(obj)
        except Exception as exc:  # a broken __repr__ must not break the writer
            text = f"<unrepresentable {type(obj).__qualname__}: {type(exc).__name__}>"
        if not isinstance(text, str):
            text = f"<unrepresentable {type(obj).__qualname__}>"
        if len(text) > self._max_repr:
            text = text[: self._max_repr - 3] + "..."
        return self._clean(text)


def _format_path(parts: list[str | int]) -> str:
    """``["output", "items", 2]`` -> ``output.items[2]``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
