"""``@fluxloop.agent()`` and friends: record spans as observations of the current trace.

Outside a FluxLoop case the decorators cost one ContextVar lookup and call straight through,
so instrumented code runs unchanged in production.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from contextvars import Token
from typing import Any, TypeVar, overload

from ..jsonsafe import to_jsonable
from .context import TraceContext, current_span_id, current_trace

F = TypeVar("F", bound=Callable[..., Any])


def _capture_args(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        if signature is None:
            raise TypeError
        bound = signature.bind_partial(*args, **kwargs)
        data = {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
        state = data.get("conversation_state")
        if isinstance(state, dict):
            # The whole transcript is in the trace already; repeating it in every turn's
            # span would grow observations with the square of the conversation length.
            data["conversation_state"] = {"turn_count": len(state.get("turns") or [])}
    except TypeError:
        data = {"args": list(args), "kwargs": kwargs}
    return to_jsonable(data)


def _start(
    ctx: TraceContext,
    kind: str,
    name: str,
    signature: inspect.Signature | None,
    args: Any,
    kw: Any,
    meta: dict[str, Any],
) -> tuple[str, float, Token[str | None]]:
    span_id = ctx.new_span_id()
    ctx.add(
        "span_start",
        name,
        observation_id=span_id,
        input=_capture_args(signature, args, kw),
        metadata={"kind": kind, **meta},
    )
    return span_id, time.perf_counter(), current_span_id.set(span_id)


def _end(
    ctx: TraceContext,
    name: str,
    started: tuple[str, float, Token[str | None]],
    output: Any = None,
    error: BaseException | None = None,
) -> None:
    span_id, t0, token = started
    current_span_id.reset(token)
    ctx.add(
        "span_end",
        name,
        observation_id=span_id,
        output=None if error else to_jsonable(output),
        error=f"{type(error).__name__}: {error}" if error else None,
        duration_ms=round((time.perf_counter() - t0) * 1000, 3),
    )


def span(kind: str, name: str | None = None, **meta: Any) -> Callable[[F], F]:
    """Decorator factory recording a ``span_start``/``span_end`` pair of type ``kind``."""

    def decorate(fn: F) -> F:
        span_name: str = name or str(getattr(fn, "__name__", kind))
        try:  # computed once: signature() is too slow to run on every call
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                ctx = current_trace()
                if ctx is None:
                    return await fn(*args, **kwargs)
                started = _start(ctx, kind, span_name, signature, args, kwargs, meta)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    _end(ctx, span_name, started, error=exc)
                    raise
                _end(ctx, span_name, started, output=result)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = current_trace()
            if ctx is None:
                return fn(*args, **kwargs)
            started = _start(ctx, kind, span_name, signature, args, kwargs, meta)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _end(ctx, span_name, started, error=exc)
                raise
            _end(ctx, span_name, started, output=result)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


@overload
def agent(fn: F, /) -> F: ...
@overload
def agent(fn: None = None, /, *, name: str | None = None, **meta: Any) -> Callable[[F], F]: ...
def agent(fn: F | None = None, /, *, name: str | None = None, **meta: Any) -> Any:
    """Mark an agent entry point: ``@fluxloop.agent()`` or ``@fluxloop.agent(name="support")``.

    Inside a FluxLoop case, each call records ``span_start``/``span_end`` observations with the
    call's arguments, its output or error, and its duration, tied to the case's trace.
    """
    decorator = span("agent", name, **meta)
    return decorator(fn) if fn is not None else decorator


def trace(fn: F | None = None, /, *, name: str | None = None, **meta: Any) -> Any:
    """Record any function as a span of type ``trace`` (``@fluxloop.trace()``)."""
    decorator = span("trace", name, **meta)
    return decorator(fn) if fn is not None else decorator


def tool(fn: F | None = None, /, *, name: str | None = None, **meta: Any) -> Any:
    """Record a tool function as a span of type ``tool`` (``@fluxloop.tool()``)."""
    decorator = span("tool", name, **meta)
    return decorator(fn) if fn is not None else decorator


def event(name: str, **data: Any) -> None:
    """Record a custom ``event`` observation in the current trace (no-op outside a case)."""
    ctx = current_trace()
    if ctx is not None:
        ctx.add("event", name, metadata=to_jsonable(data))
