"""``with fluxloop.instrument("name"):`` — trace a block of code.

Inside a trace already (a FluxLoop case, or an outer ``instrument`` block) the block is one
more span in that trace: of kind ``trace`` (recorded as ``kind: span``) by default, or of the
observation kind given as ``type=``. Anywhere else (a script, ``python agent.py``) it starts
a new trace, so the decorated calls in the block record observations there.

Where a new trace's observations go: they are always in memory
(:attr:`Instrumentation.observations`). They are written to files only when asked for —
when ``configure(offline_store_dir=...)`` or ``FLUXLOOP_OFFLINE_DIR`` names a folder and
``offline_store_enabled`` is true (the default); then, at the end of the block, the trace is
appended to ``<dir>/traces.jsonl`` and its observations to ``<dir>/observations.jsonl``,
secrets redacted. Production code never writes files unless configured to. A
:class:`~pytest_fluxloop.sdk.client.FluxLoopClient` names its own folder instead: its
``client.trace(...)`` blocks are these same blocks, written by :func:`write_trace` there.
"""

from __future__ import annotations

import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ..jsonsafe import dumps_line, to_jsonable
from ..records import OBSERVATION_KINDS, ErrorInfo, Observation, TraceRecord, utcnow
from .context import TraceContext, current_span_id, current_trace, enter_trace, exit_trace
from .decorators import ObservationType, _end, _Open, _Spec, _start
from .jsonl import append_lines
from .settings import get_config, is_enabled
from .usage import token_usage_by_role

__all__ = [
    "OBSERVATIONS_FILE",
    "TRACES_FILE",
    "Instrumentation",
    "TraceWriter",
    "instrument",
    "trace_data",
    "write_trace",
]

TRACES_FILE = "traces.jsonl"
OBSERVATIONS_FILE = "observations.jsonl"

TraceWriter = Callable[[TraceRecord], "tuple[Path, Path] | None"]
"""Where a finished standalone trace goes: returns the files written, or None (nowhere)."""


def write_trace(folder: str | os.PathLike[str], record: TraceRecord) -> tuple[Path, Path]:
    """Append one finished trace to ``<folder>/observations.jsonl`` (its observations, one
    line each) and ``<folder>/traces.jsonl`` (the record), secrets redacted.

    Observations go first, so a trace listed in ``traces.jsonl`` has all of its lines. Each
    file gets its lines in one ``O_APPEND`` write (:func:`~pytest_fluxloop.sdk.jsonl.append_lines`),
    so concurrent writers never interleave. Returns ``(traces.jsonl, observations.jsonl)``.

    Raises:
        OSError: the folder or a file cannot be written.
    """
    target = Path(folder).expanduser()
    data = trace_data(record)
    observations = data.get("observations") or []
    traces_file, observations_file = target / TRACES_FILE, target / OBSERVATIONS_FILE
    append_lines(observations_file, [dumps_line(o) for o in observations])
    append_lines(traces_file, [dumps_line(data)])
    return traces_file, observations_file


def trace_data(record: TraceRecord) -> dict[str, Any]:
    """A finished trace as the SDK stores it, secrets redacted: the ``traces.jsonl`` line of
    :func:`write_trace`, and what ``FluxLoopClient(storage="http")`` sends."""
    from ..redact import redact  # on first write only, as in recording.py

    data = redact(to_jsonable(record))
    return data if isinstance(data, dict) else {"record": data}


def _write_to_configured_folder(record: TraceRecord) -> tuple[Path, Path] | None:
    """The default :data:`TraceWriter`: the SDK config's offline folder, if one is set."""
    config = get_config()
    if not (config.offline_store_enabled and config.offline_store_dir):
        return None
    return write_trace(config.offline_store_dir, record)


def _span_kind(value: Any) -> str | None:
    """``type=`` of :func:`instrument` checked: None, or one of ``OBSERVATION_KINDS``."""
    kind = getattr(value, "value", value)  # an enum member, such as ObservationType.TOOL
    if kind is None or (isinstance(kind, str) and kind in OBSERVATION_KINDS):
        return kind
    raise ValueError(
        f"instrument() type must be one of: {', '.join(OBSERVATION_KINDS)}; got {value!r}"
    )


def _warn_not_written(name: str, reason: BaseException) -> None:
    import logging  # only on this failure path: the SDK's import stays light

    logging.getLogger("pytest_fluxloop.sdk").warning(
        "fluxloop: trace %r not written: %s", name, reason
    )


class Instrumentation:
    """One :func:`instrument` block; the ``with`` statement yields this object.

    Constructed by :func:`instrument` (arguments as there) and by ``FluxLoopClient.trace``,
    which passes ``writer``: where a new trace goes when the block ends (default: the SDK
    config's offline folder, if one is set). A writer's failure is logged, never raised.

    Attributes:
        name: the block's name.
        trace_id: the trace its observations belong to (the current trace's id inside a
            case; else the ``trace_id`` given, or a new UUID).
        type: the span's observation kind given as ``type=`` (None: the default, ``trace``).
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
        type: Any = None,
        writer: TraceWriter | None = None,
    ) -> None:
        self.type = _span_kind(type)
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
        self._writer = writer or _write_to_configured_folder
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
                kind=self.type or ObservationType.TRACE.value,
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
        elif self.mode == "trace" and self._ctx is not None:
            # A stream the block never finished reading ends with its trace (abandoned).
            self._ctx.close_open_spans()
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
        name, ``type`` (when given), session, user, tags and metadata are in ``metadata``."""
        completed = utcnow()
        about: dict[str, Any] = {"source": "instrument", "name": self.name}
        if self.type is not None:
            about["type"] = self.type
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
            metadata=to_jsonable({**about, **self._labels()}),
            observations=list(self.observations),
            observations_dropped=self._ctx.dropped if self._ctx is not None else 0,
            token_usage=token_usage_by_role(self.observations),
        )

    def _write(self) -> None:
        # Telemetry must never break the agent: a bad setting or a full disk is logged.
        try:
            self.files = self._writer(self.record())
        except Exception as exc:
            _warn_not_written(self.name, exc)

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
    type: Any = None,
) -> Instrumentation:
    """Trace a block: ``with fluxloop.instrument("checkout") as run: ...`` (or ``async with``).

    Inside a FluxLoop case (or another ``instrument`` block) the block records one span in
    the current trace, of kind ``type`` (default: the earlier SDK's ``trace``, recorded as
    ``kind: span``). Outside one it opens a new trace, made current for
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
        type: the span's observation kind, one of
            :data:`~pytest_fluxloop.records.OBSERVATION_KINDS` (``agent``, ``span``,
            ``tool``, ``generation``, ``event``, ``chain``, ``retriever``); a new trace
            keeps it as ``metadata.type``. Anything else is a ValueError naming them.
    """
    return Instrumentation(
        name,
        session_id=session_id,
        user_id=user_id,
        metadata=metadata,
        tags=tags,
        trace_id=trace_id,
        type=type,
    )
