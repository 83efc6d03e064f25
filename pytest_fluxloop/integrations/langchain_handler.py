"""The LangChain callback handler that records a case's LangChain runs in its trace.

One handler per case, bound to the case's :class:`~pytest_fluxloop.sdk.context.TraceContext`
(:mod:`.langchain` makes it current for the case). Each run becomes observations of that
trace:

* chat model and LLM runs: one ``generation`` each (:class:`~pytest_fluxloop.sdk.generation.
  Generation`), always recorded, hidden or not (a call costs tokens). While one is open,
  :data:`~pytest_fluxloop.sdk.context.framework_generation` is set in the caller's context,
  so the provider capture below it records nothing;
* chains (LangGraph nodes included: ``metadata.langgraph_node`` and ``langgraph_step``),
  tools and retrievers: a ``span_start`` and a ``span_end`` of kind ``chain``, ``tool``,
  ``retriever``;
* custom events (``dispatch_custom_event``): one ``event``.

A run's parent is its LangChain parent run's observation; a top-level run's is the span
current when it started (the enclosing ``@fluxloop.agent``). Runs tagged hidden
(``langsmith:hidden``, with the tags they inherit) are not recorded unless
``capture.langchain_hidden``; what runs inside them attaches to their nearest recorded
ancestor.

The handler never changes the current span (a stream's callbacks run in its consumer's
context between chunks, where a span set by the handler would outlive the run). It never
raises: a failure of its own is logged once and recorded as a ``capture_error`` event.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from ..sdk.context import TraceContext, current_span_id, framework_generation
from ..sdk.generation import Generation
from .langchain_convert import (
    HIDDEN_TAG,
    jsonable,
    message_json,
    model_of,
    parameters_of,
    reply_of,
    requested_model,
    run_metadata,
    run_name,
    usage_of,
)
from .langchain_runs import OpenModelRun, Run

__all__ = ["FluxloopCallbackHandler"]

logger = logging.getLogger("pytest_fluxloop.capture")

F = TypeVar("F", bound=Callable[..., Any])

_log_lock = threading.Lock()
_logged = False


def _guarded(method: F) -> F:
    """Run a callback unless the handler is closed; a failure is recorded, never raised."""
    callback = method.__name__

    @functools.wraps(method)
    def wrapper(self: FluxloopCallbackHandler, *args: Any, **kwargs: Any) -> None:
        if self.closed:
            return
        try:
            method(self, *args, **kwargs)
        except Exception as exc:
            self.failed(callback, exc)

    return cast(F, wrapper)


class FluxloopCallbackHandler(BaseCallbackHandler):
    """Records the LangChain runs of one case as observations of ``ctx`` (see the module)."""

    run_inline = True  # called in the caller's context, so ContextVars are the case's
    raise_error = False

    def __init__(self, ctx: TraceContext) -> None:
        self.ctx = ctx
        self.content = ctx.capture.content
        self.show_hidden = ctx.capture.langchain_hidden
        self.closed = False
        self._runs: dict[UUID, Run] = {}

    def close(self) -> None:
        """Stop recording (the case is over); model runs still open release their hold."""
        self.closed = True
        for run in list(self._runs.values()):
            if run.framework is not None:
                run.framework.open = False

    # ------------------------------------------------------------------ model runs

    @_guarded
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        request = None
        if self.content:
            flat = [message_json(m) for batch in messages for m in batch]
            request = {"messages": flat}
        self._start_model(
            "chat", serialized, request, run_id, parent_run_id, tags, metadata, kwargs
        )

    @_guarded
    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        request = None
        if self.content:
            request = {"prompt": prompts[0]} if len(prompts) == 1 else {"prompts": prompts}
        self._start_model(
            "completion", serialized, request, run_id, parent_run_id, tags, metadata, kwargs
        )

    @_guarded
    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.generation is not None:
            run.generation.stream = True
            run.generation.first_chunk()

    @_guarded
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.generation is None:
            return
        try:
            output, finish_reason = reply_of(response)
            run.generation.finish(
                output=output,
                model=model_of(response) or run.model,
                finish_reason=finish_reason,
                usage=usage_of(response),
            )
        finally:
            run.release()

    @_guarded
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.generation is None:
            return
        try:
            run.generation.finish(model=run.model, error=error)
        finally:
            run.release()

    def _start_model(
        self,
        operation: str,
        serialized: Mapping[str, Any] | None,
        request: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        params = kwargs.get("invocation_params")
        model = requested_model(params, metadata)
        extra = run_metadata("generation", run_id, tags, metadata)
        del extra["kind"]  # the generation's own
        parent = self._parent(parent_run_id)
        # Generation takes its parent from the current span: the LangChain parent's, here.
        span_token = current_span_id.set(parent)
        try:
            generation = Generation(
                self.ctx,
                run_name(kwargs.get("name"), serialized, operation),
                provider=str((metadata or {}).get("ls_provider") or "langchain"),
                model=model,
                operation=operation,
                messages=request,
                parameters=parameters_of(params),
                extra=extra,
            )
        finally:
            current_span_id.reset(span_token)
        run = Run(
            anchor=parent, parent_id=parent, kind="generation", generation=generation, model=model
        )
        run.framework = OpenModelRun()
        run.framework_token = framework_generation.set(run.framework)
        self._runs[run_id] = run

    # ------------------------------------------------------------------ chains, tools, retrievers

    @_guarded
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = run_name(kwargs.get("name"), serialized, "chain")
        self._start_span(
            "chain", name, inputs, run_id, parent_run_id, tags, metadata, kwargs.get("run_type")
        )

    @_guarded
    def on_chain_end(self, outputs: dict[str, Any], *, run_id: UUID, **kwargs: Any) -> None:
        self._end_span(run_id, outputs, inputs=kwargs.get("inputs"))

    @_guarded
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_span(run_id, error=error, inputs=kwargs.get("inputs"))

    @_guarded
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = run_name(kwargs.get("name"), serialized, "tool")
        request = inputs if inputs is not None else input_str
        self._start_span("tool", name, request, run_id, parent_run_id, tags, metadata)

    @_guarded
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_span(run_id, output)

    @_guarded
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_span(run_id, error=error)

    @_guarded
    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = run_name(kwargs.get("name"), serialized, "retriever")
        request = {"query": query}
        self._start_span("retriever", name, request, run_id, parent_run_id, tags, metadata)

    @_guarded
    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._end_span(run_id, list(documents))

    @_guarded
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_span(run_id, error=error)

    def _start_span(
        self,
        kind: str,
        name: str,
        request: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        run_type: Any = None,
    ) -> None:
        parent = self._parent(parent_run_id)
        hidden = HIDDEN_TAG in (tags or ())
        if hidden and not self.show_hidden:
            self._runs[run_id] = Run(anchor=parent, parent_id=parent)
            return
        meta = run_metadata(kind, run_id, tags, metadata, run_type)
        if hidden:
            meta["hidden"] = True
        span_id = self.ctx.new_span_id()
        run = Run(
            anchor=span_id,
            parent_id=parent,
            name=name,
            kind=kind,
            observation_id=span_id,
            metadata=meta,
        )
        self.ctx.add(
            "span_start",
            name,
            kind=kind,
            role=run.role,
            observation_id=span_id,
            parent_id=parent,
            input=jsonable(request) if self.content else None,
            metadata=meta,
        )
        self._runs[run_id] = run
        self.ctx.open_spans[span_id] = functools.partial(self._abandon, run_id)

    def _end_span(
        self,
        run_id: UUID,
        output: Any = None,
        *,
        error: BaseException | None = None,
        inputs: Any = None,
        status: str | None = None,
    ) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.observation_id is None:
            return
        self.ctx.open_spans.pop(run.observation_id, None)
        meta = dict(run.metadata)
        if status is not None:
            meta["status"] = status
        fields: dict[str, Any] = {}
        if inputs is not None and self.content:
            # A stream's run learns its input at its end (its start shows a placeholder).
            fields["input"] = jsonable(inputs)
        self.ctx.add(
            "span_end",
            run.name,
            kind=run.kind,
            role=run.role,
            observation_id=run.observation_id,
            parent_id=run.parent_id,
            output=jsonable(output) if self.content and error is None else None,
            error=f"{type(error).__name__}: {error}" if error is not None else None,
            duration_ms=round((time.perf_counter() - run.t0) * 1000, 3),
            metadata=meta,
            **fields,
        )

    def _abandon(self, run_id: UUID) -> None:
        """End a span its run never ended (the case is over: a stream dropped unread)."""
        try:
            self._end_span(run_id, status="abandoned")
        except Exception as exc:
            self.failed("close", exc)

    # ------------------------------------------------------------------ custom events

    @_guarded
    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        meta = run_metadata("event", run_id, tags, metadata)
        if self.content:
            meta["data"] = jsonable(data)
        self.ctx.add("event", name, kind="event", parent_id=self._parent(run_id), metadata=meta)

    # ------------------------------------------------------------------ helpers

    def _parent(self, parent_run_id: UUID | None) -> str | None:
        """Where a run started now attaches: its parent run's nearest recorded observation,
        or (a top-level run, or a parent started outside the case) the current span."""
        if parent_run_id is not None:
            parent = self._runs.get(parent_run_id)
            if parent is not None:
                return parent.anchor
        return current_span_id.get()

    def failed(self, callback: str, exc: BaseException) -> None:
        """Record a failure of the handler itself (logged once per process)."""
        global _logged
        with _log_lock:
            first, _logged = not _logged, True
        if first:
            logger.warning(
                "FluxLoop's LangChain capture failed in %s; the run goes on without it "
                "(later failures are only recorded as capture_error events)",
                callback,
                exc_info=exc,
            )
        with contextlib.suppress(Exception):  # the trace itself is broken: nothing to do
            self.ctx.add(
                "event",
                "capture_error",
                kind="event",
                error=f"{type(exc).__name__}: {exc}",
                metadata={"source": "langchain", "callback": callback},
            )
