"""``with fluxloop.instrument("name"):`` — trace a block of code.

Inside a trace already (a FluxLoop case, or an outer ``instrument`` block) the block is one
more span, of kind ``trace``, in that trace. Anywhere else (a script, ``python agent.py``)
it starts a new trace, so the decorated calls in the block record observations there.

Where a new trace's observations go: they are always in memory
(:attr:`Instrumentation.observations`). They are written to files only when asked for —
when ``configure(offline_store_dir=...)`` or ``FLUXLOOP_OFFLINE_DIR`` names a folder and
``offline_store_enabled`` is true (the default); then, at the end of the block, the trace is
appended to ``<dir>/traces.jsonl`` and its observations to ``<dir>/observations.jsonl``,
secrets redacted. Production code never writes files unless configured to.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from contextvars import Token
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ..jsonsafe import dumps_line, to_jsonable
from ..records import ErrorInfo, Observation, TraceRecord, utcnow
from .context import TraceContext, current_span_id, current_trace, enter_trace, exit_trace
from .decorators import ObservationType, _end, _Open, _Spec, _start
from .jsonl import append_lines
from .settings import get_config, is_enabled

__all__ = ["OBSERVATIONS_FILE", "TRACES_FILE", "Instrumentation", "instrument"]

TRACES_FILE = "traces.jsonl"
OBSERVATIONS_FILE = "observations.jsonl"


def _warn_not_written(name: str, reason: BaseException) -> None:
    import logging  # only on this failure path: the SDK's import stays light

    logging.getLogger("pytest_fluxloop.sdk").warning(
        "fluxloop.instrument(%r): trace not written: %s", name, reason
    )


class Instrumentation:
    """One :func:`instrument` block; the ``with`` statement yields this object.

    Attributes:
        name: the block's name.
        trace_id: the trace its observations belong to (the current trace's id inside a
            case; else the ``trace_id`` given, or a new UUID).
        mode: ``"span"`` (inside a trace), ``"trace"`` (a new trace), ``"off"`` (the SDK is
            disabled), None before the block starts.
        status: ``"success"`` or ``"error"`` once the block has ended.
        error: ``"<ExceptionType>: <message>"`` when the block raised (it is re-raised).
        files: the ``(traces.jsonl, observations.jsonl)`` written, if any.
    """

    def __init__(
        self,
        name: str,
        *,
        session_id: Any = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        trace_id: Any = None,
    ) -> None:
        self.name = name
        # The earlier SDK took UUIDs for these; ids are text in records.
        self.session_id = None if session_id is None else str(session_id)
        self.user_id = user_id
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.tags: list[str] = [str(t) for t in tags or ()]
        self.trace_id = str(trace_id) if trace_id is not None else str(uuid.uuid4())
        self.mode: Literal["span", "trace", "off"] | None = None
        self.status: Literal["success", "error"] | None = None
        self.error: str | None = None
        self.files: tuple[Path, Path] | None = None
        self._error_info: ErrorInfo | None = None
        self._ctx: TraceContext | None = None
        self._spec: _Spec | None = None
        self._open: _Open | None = None
        self._span_token: Token[str | None] | None = None
        self._trace_tokens: Any = None
        self._started = utcnow()
        self._t0 = 0.0

    @property
    def observations(self) -> list[Observation]:
        """The observations of this block's trace (inside a case: the whole case's)."""
        return self._ctx.observations if self._ctx is not None else []

    def _labels(self) -> dict[str, Any]:
        labels: dict[str, Any] = {}
        if self.session_id is not None:
            labels["session_id"] = self.session_id
        if self.user_id is not None:
            labels["user_id"] = self.user_id
        if self.tags:
            labels["tags"] = list(self.tags)
        return {**labels, **self.metadata}

    def __enter__(self) -> Instrumentation:
        if self.mode is not None:
            raise RuntimeError(f"instrument({self.name!r}) block entered twice")
        self._started = utcnow()
        self._t0 = time.perf_counter()
        ctx = current_trace()
        if not is_enabled():
            self.mode = "off"
        elif ctx is not None:
            self.mode = "span"
            self._ctx = ctx
            self.trace_id = ctx.trace_id
            self._spec = _Spec(
                kind=ObservationType.TRACE.value,
                name=self.name,
                meta=to_jsonable(self._labels()),
                signature=None,
                capture_input=False,
                capture_output=False,
            )
            self._open = _start(ctx, self._spec, (), {})
            self._span_token = current_span_id.set(self._open.span_id)
        else:
            self.mode = "trace"
            self._ctx = TraceContext(self.trace_id, experiment=False)
            self._trace_tokens = enter_trace(self._ctx)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self.status = "success" if exc is None else "error"
        if exc is not None:
            self.error = f"{type(exc).__name__}: {exc}"
            self._error_info = ErrorInfo(
                kind="agent",
                type=type(exc).__name__,
                message=str(exc),
                traceback="".join(traceback.format_exception(type(exc), exc, tb)),
            )
        if self.mode == "span" and self._ctx is not None:
            assert self._spec is not None and self._open is not None
            _end(self._ctx, self._spec, self._open, self._span_token, error=exc)
        elif self.mode == "trace":
            exit_trace(self._trace_tokens)
            self._write()
        return False  # the block's exception, if any, propagates

    async def __aenter__(self) -> Instrumentation:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    def record(self) -> TraceRecord:
        """This block's trace as a :class:`~pytest_fluxloop.records.TraceRecord` (the
        ``traces.jsonl`` line): ``case_id`` is the block's name, ``input`` is empty, and the
        name, session, user, tags and metadata are in ``metadata``."""
        completed = utcnow()
        return TraceRecord(
            trace_id=self.trace_id,
            case_id=self.name,
            iteration=0,
            input="",
            duration_ms=round((time.perf_counter() - self._t0) * 1000, 3),
            success=self.status != "error",
            status="error" if self.status == "error" else "success",
            error=self._error_info,
            started_at=self._started,
            completed_at=completed,
            metadata=to_jsonable({"source": "instrument", "name": self.name, **self._labels()}),
            observations=list(self.observations),
        )

    def _write(self) -> None:
        # Telemetry must never break the agent: a bad setting or a full disk is logged.
        try:
            config = get_config()
        except ValueError as exc:
            _warn_not_written(self.name, exc)
            return
        if not (config.offline_store_enabled and config.offline_store_dir):
            return
        from ..redact import redact  # on first write only, as in recording.py

        folder = Path(config.offline_store_dir).expanduser()
        data = redact(to_jsonable(self.record()))
        observations = data.get("observations") or []
        traces_file, observations_file = folder / TRACES_FILE, folder / OBSERVATIONS_FILE
        try:
            # Observations first: a trace listed in traces.jsonl has all of its lines.
            append_lines(observations_file, [dumps_line(o) for o in observations])
            append_lines(traces_file, [dumps_line(data)])
        except OSError as exc:
            _warn_not_written(self.name, exc)
            return
        self.files = (traces_file, observations_file)

    def __repr__(self) -> str:
        return (
            f"<Instrumentation {self.name!r} trace_id={self.trace_id} mode={self.mode} "
            f"observations={len(self.observations)}>"
        )


def instrument(
    name: str,
    session_id: Any = None,
    user_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    trace_id: Any = None,
) -> Instrumentation:
    """Trace a block: ``with fluxloop.instrument("checkout") as run: ...`` (or ``async with``).

    Inside a FluxLoop case (or another ``instrument`` block) the block records one span of
    kind ``trace`` in the current trace. Outside one it opens a new trace, made current for
    the block, so decorated calls inside record observations; they stay in memory
    (``run.observations``) and are written as JSON lines to ``traces.jsonl`` and
    ``observations.jsonl`` only when an offline folder is configured
    (``configure(offline_store_dir=...)`` or ``FLUXLOOP_OFFLINE_DIR``, with
    ``offline_store_enabled`` true). An exception in the block is recorded on the trace (or
    span) and re-raised. With ``configure(enabled=False)`` nothing is recorded.

    Args:
        name: the trace's (or span's) name.
        session_id, user_id, tags, metadata: kept in the trace's (or span's) metadata.
        trace_id: the new trace's id (ignored inside a case, whose trace it joins).
    """
    return Instrumentation(
        name,
        session_id=session_id,
        user_id=user_id,
        metadata=metadata,
        tags=tags,
        trace_id=trace_id,
    )
