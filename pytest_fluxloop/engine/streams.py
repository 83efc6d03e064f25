"""Streaming agents: consume what they yield and make one output of it.

An agent that returns (or is) a generator, an async generator, or another one-shot
(async) iterable such as an SDK's streaming response is consumed to the end, inside the
attempt (so under the case deadline). Each item gives its text, first match wins:

1. the value at ``runner.stream_output_path`` (dotted: dict keys, attributes, list
   indexes), default ``update.delta`` (the earlier FluxLoop tool's default), if a string;
2. the item itself, if a string;
3. a common text field: ``delta``, ``content`` or ``text`` (a string, or ``delta.text`` /
   ``delta.content``), or an OpenAI-style ``choices[0].delta.content``.

The output is the texts joined; if no item had text, the list of items made JSON-safe.
Collections (``list``, ``tuple``, ``dict``, ``set``, anything with a length), strings, bytes,
pydantic models and files are values, never streams. A stream that raises part-way fails
the attempt with that error; what it yielded until then is kept in a ``stream`` observation.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import AsyncIterable, Collection, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..jsonsafe import to_jsonable
from ..sdk.context import current_trace

DEFAULT_STREAM_OUTPUT_PATH = "update.delta"
TEXT_FIELDS = ("delta", "content", "text")


def is_async_stream(value: Any) -> bool:
    """An async generator or other async iterable."""
    return isinstance(value, AsyncIterable)


def is_stream(value: Any) -> bool:
    """A generator or other one-shot iterable (not a collection, string, model or file)."""
    if inspect.isgenerator(value):
        return True
    return isinstance(value, Iterable) and not isinstance(
        value, (str, bytes, Collection, BaseModel, io.IOBase)
    )


class StreamCollector:
    """Collects a stream's items and their text."""

    def __init__(self, path: str | None = None) -> None:
        """``path``: ``runner.stream_output_path`` (None for the default)."""
        self.path = path or DEFAULT_STREAM_OUTPUT_PATH
        self._parts = self.path.split(".")
        self.items: list[Any] = []
        self.texts: list[str] = []

    def add(self, item: Any) -> None:
        """One item from the stream."""
        self.items.append(item)
        text = item_text(item, self._parts)
        if text is not None:
            self.texts.append(text)

    def output(self) -> Any:
        """The joined text, or the JSON-safe items if none had text."""
        if self.texts:
            return "".join(self.texts)
        return to_jsonable(self.items)

    def interrupted(self, exc: BaseException) -> None:
        """The stream raised ``exc``: keep what it yielded so far on the case's trace."""
        ctx = current_trace()
        if ctx is None:
            return
        ctx.add(
            "stream",
            "stream_interrupted",
            output=self.output(),
            error=f"{type(exc).__name__}: {exc}"[:500],
            metadata={"items": len(self.items), "stream_output_path": self.path},
        )


def collect(stream: Iterable[Any], path: str | None = None) -> Any:
    """Consume a sync stream (on the calling thread) and return its output."""
    collector = StreamCollector(path)
    try:
        for item in stream:
            collector.add(item)
    except Exception as exc:
        collector.interrupted(exc)
        raise
    return collector.output()


async def collect_async(stream: AsyncIterable[Any], path: str | None = None) -> Any:
    """Consume an async stream (on the event loop) and return its output."""
    collector = StreamCollector(path)
    try:
        async for item in stream:
            collector.add(item)
    except Exception as exc:
        collector.interrupted(exc)
        raise
    return collector.output()


def item_text(item: Any, path: Sequence[str]) -> str | None:
    """The text of one stream item (see the module docstring), or None."""
    value = _at_path(item, path)
    if isinstance(value, str):
        return value
    if isinstance(item, str):
        return item
    for name in TEXT_FIELDS:
        value = _field(item, name)
        if isinstance(value, str):
            return value
        if name == "delta" and value is not None:
            # Anthropic-style {"delta": {"text": ...}} and similar nested deltas.
            for inner in ("text", "content"):
                nested = _field(value, inner)
                if isinstance(nested, str):
                    return nested
    value = _at_path(item, ("choices", "0", "delta", "content"))
    return value if isinstance(value, str) else None


def _at_path(obj: Any, path: Iterable[str]) -> Any:
    current = obj
    for key in path:
        if current is None:
            return None
        current = _field(current, key)
    return current


def _field(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        if key.isdigit() and int(key) < len(obj):
            return obj[int(key)]
        return None
    try:
        return getattr(obj, key, None)
    except Exception:  # a property of the agent's object that raises is no text
        return None
