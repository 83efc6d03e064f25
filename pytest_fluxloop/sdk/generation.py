"""One captured LLM call as a ``generation`` span: opened once, finished exactly once.

Every capture point (the ``openai`` and ``anthropic`` request paths, the LangChain callback
handler, ``@prompt``-style helpers) records its calls through :class:`Generation`, so a
generation looks the same whoever captured it:

``span_start`` (``kind: generation``, ``role`` from the context)
    ``input``: ``{"messages": ...}`` (or the request's prompt/``input``) when content
    capture is on, else null; ``metadata``: ``provider``, ``model``, ``operation``,
    ``parameters`` (the request's other settings: temperature, max_tokens, tools ...),
    ``stream``.
``span_end``
    ``output`` (the reply's text or content blocks, when content capture is on),
    ``duration_ms`` (latency), ``error``; ``metadata``: ``provider``, ``model`` (as the
    response names it), ``finish_reason``, ``usage`` (the :data:`TOKEN_COUNT_KEYS`, a count
    the provider did not send being null) or null, ``usage_source`` (``response`` or
    ``missing``), ``ttft_ms`` for streams, ``status`` (``ok``, ``error``, ``closed``: a
    stream closed before its end, ``abandoned``: a stream dropped unfinished).

A stream's generation is finished by whichever comes first: its end, its close, an error
while reading it, or garbage collection (``abandoned``); :meth:`Generation.finish` ignores
every later call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

from ..jsonsafe import copy_json, to_jsonable
from ..records import TOKEN_COUNT_KEYS
from .context import TraceContext, current_role, current_span_id

__all__ = ["Generation", "GenerationStatus", "token_counts"]

GenerationStatus = Literal["ok", "error", "closed", "abandoned"]


def token_counts(
    input_tokens: Any = None,
    output_tokens: Any = None,
    cached_tokens: Any = None,
    reasoning_tokens: Any = None,
    total_tokens: Any = None,
) -> dict[str, int | None]:
    """The :data:`~pytest_fluxloop.records.TOKEN_COUNT_KEYS` dict of one call.

    A count that is not an int (absent, None) stays None: unknown is not zero. The total is
    input + output when the provider sent both but no total.
    """
    values = [input_tokens, output_tokens, cached_tokens, reasoning_tokens, total_tokens]
    counts = {
        key: (int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
        for key, v in zip(TOKEN_COUNT_KEYS, values, strict=True)
    }
    if counts["total_tokens"] is None and None not in (
        counts["input_tokens"],
        counts["output_tokens"],
    ):
        counts["total_tokens"] = (counts["input_tokens"] or 0) + (counts["output_tokens"] or 0)
    return counts


class Generation:
    """A ``generation`` span of the trace ``ctx`` (see the module doc for its fields).

    Created by a capture point when the call starts; it records ``span_start`` at once.
    The span is *not* made the current span: nothing the SDK runs during the call belongs
    under it.
    """

    __slots__ = (
        "_done",
        "_lock",
        "ctx",
        "model",
        "name",
        "parent_id",
        "provider",
        "role",
        "span_id",
        "stream",
        "t0",
        "ttft",
    )

    def __init__(
        self,
        ctx: TraceContext,
        name: str,
        *,
        provider: str,
        model: Any = None,
        operation: str | None = None,
        messages: Any = None,
        parameters: Mapping[str, Any] | None = None,
        stream: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.provider = provider
        self.model = to_jsonable(model)
        self.stream = stream
        self.span_id = ctx.new_span_id()
        # Kept for the span_end, which a stream may record from another context (its
        # consumer's, or the garbage collector's).
        self.parent_id = current_span_id.get()
        self.role = current_role.get()
        self.ttft: float | None = None
        self._done = False
        self._lock = threading.Lock()
        metadata: dict[str, Any] = {
            "kind": "generation",
            "provider": provider,
            "model": self.model,
            "operation": operation,
            "parameters": copy_json(dict(parameters)) if parameters else {},
            "stream": stream,
        }
        if extra:
            metadata.update(to_jsonable(dict(extra)))
        ctx.add(
            "span_start",
            name,
            kind="generation",
            role=self.role,
            observation_id=self.span_id,
            parent_id=self.parent_id,
            input=copy_json(messages) if ctx.capture.content else None,
            metadata=metadata,
        )
        self.t0 = time.perf_counter()
        ctx.open_spans[self.span_id] = self.abandon

    def abandon(self) -> None:
        """Finish as ``abandoned`` (the stream was dropped, or its case ended, unfinished)."""
        self.finish(status="abandoned")

    @property
    def finished(self) -> bool:
        """True once :meth:`finish` has recorded the ``span_end``."""
        return self._done

    def first_chunk(self) -> None:
        """Note the time of a stream's first chunk (``ttft_ms``); later calls do nothing."""
        if self.ttft is None:
            self.ttft = time.perf_counter()

    def finish(
        self,
        *,
        output: Any = None,
        model: Any = None,
        finish_reason: Any = None,
        usage: Mapping[str, int | None] | None = None,
        error: BaseException | str | None = None,
        status: GenerationStatus | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record the ``span_end`` (once; later calls return False and record nothing).

        Args:
            output: the reply (text, content blocks, a tool call ...); dropped when content
                capture is off.
            model: the model the response names (None: the request's).
            finish_reason: the provider's stop reason.
            usage: the call's :func:`token_counts`; None when the provider sent none.
            error: what the call raised (an exception or its text).
            status: how it ended; default ``error`` with an error, else ``ok``.
            extra: more ``span_end`` metadata.
        """
        with self._lock:
            if self._done:
                return False
            self._done = True
        self.ctx.open_spans.pop(self.span_id, None)
        now = time.perf_counter()
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        metadata: dict[str, Any] = {
            "kind": "generation",
            "provider": self.provider,
            "model": to_jsonable(model) if model is not None else self.model,
            "finish_reason": to_jsonable(finish_reason),
            "usage": dict(usage) if usage is not None else None,
            "usage_source": "response" if usage is not None else "missing",
            "stream": self.stream,
            "status": status or ("error" if error else "ok"),
        }
        if self.ttft is not None:
            metadata["ttft_ms"] = round((self.ttft - self.t0) * 1000, 3)
        if extra:
            metadata.update(to_jsonable(dict(extra)))
        self.ctx.add(
            "span_end",
            self.name,
            kind="generation",
            role=self.role,
            observation_id=self.span_id,
            parent_id=self.parent_id,
            output=copy_json(output) if self.ctx.capture.content and not error else None,
            error=error,
            duration_ms=round((now - self.t0) * 1000, 3),
            metadata=metadata,
        )
        return True
