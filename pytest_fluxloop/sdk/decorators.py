"""``@fluxloop.agent()`` and friends: record spans as observations of the current trace.

Outside a trace (a FluxLoop case or an :func:`~pytest_fluxloop.sdk.instrument` block) the
decorators cost one ContextVar lookup and call straight through, so instrumented code runs
unchanged in production. Inside one, a call records a ``span_start`` observation (its
arguments, ``metadata.kind``) and a ``span_end`` (its output or error, and its duration).

Every decorator works on plain functions, coroutine functions, generator functions and async
generator functions, and keeps the function's kind (a wrapped async generator function is
still one). A generator's span covers its whole iteration: it ends when the generator is
exhausted, raises or is closed, and its output is the list of items it yielded. Code in the
generator body runs with the generator's span as the parent of what it records, while the
code consuming the items keeps its own. A generator joins the trace current when it starts
running (its first ``next()``), not when it is created. Outside a trace a wrapped generator
delegates with ``yield from``; an async generator has no such statement, so its wrapper
forwards each item itself (the one per-item cost outside a trace).

How a span ends, in ``span_end``: returned or exhausted (``output``), raised (``error``),
closed before its end (``metadata.closed: true``: ``close()``/``aclose()``, a coroutine
closed mid-``await``, or a generator dropped unfinished, which Python closes when it is
collected; asyncio closes a dropped async generator through its loop), or abandoned
(``metadata.abandoned: true``): a started generator span whose close never ran, such as an
async generator collected after its event loop closed, ends when the generator is freed, or
when its trace ends (``TraceContext.close_open_spans``) if it is still referenced then. A
span ends once: whichever comes first records its ``span_end``.

The calling forms of both SDK generations work: ``@agent``, ``@agent()``,
``@agent("name")``, ``@agent(name="support", metadata={...}, team="cx")``.

``@agent`` also records each call's arguments when argument recording is on (outside
experiment cases; see :mod:`pytest_fluxloop.sdk.recording`). With recording off that costs
one attribute check per call (:data:`~pytest_fluxloop.sdk.settings.RECORDING`); a generator
agent records when it starts running.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from contextvars import Token
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from ..jsonsafe import to_jsonable
from .context import TraceContext, current_role, current_span_id, current_trace
from .recording import CallSite, call_site, end_agent_call, record_agent_call
from .settings import RECORDING, is_enabled

__all__ = [
    "MAX_CAPTURED_ITEMS",
    "OBSERVATION_TYPES",
    "ObservationType",
    "agent",
    "event",
    "log_event",
    "prompt",
    "span",
    "tool",
    "trace",
]

F = TypeVar("F", bound=Callable[..., Any])

MAX_CAPTURED_ITEMS = 1_000
"""A generator span keeps at most this many yielded items as its output (``metadata.items``
on its ``span_end`` counts them all)."""


class ObservationType(str, enum.Enum):
    """Span kinds (``metadata.kind``): the earlier SDK's observation types, plus ``trace``."""

    SPAN = "span"
    EVENT = "event"
    GENERATION = "generation"
    TOOL = "tool"
    AGENT = "agent"
    CHAIN = "chain"
    EVALUATION = "evaluation"
    TRACE = "trace"


OBSERVATION_TYPES: tuple[str, ...] = tuple(t.value for t in ObservationType)
"""Every valid ``observation_type`` of :func:`trace`."""


@dataclass(frozen=True)
class _Spec:
    """What one decorated function records (fixed at decoration time)."""

    kind: str
    name: str
    meta: Mapping[str, Any]
    signature: inspect.Signature | None
    capture_input: bool = True
    capture_output: bool = True
    capture_tokens: bool = False
    recording: CallSite | None = None  # set for @agent: its calls' arguments are recorded


class _Open:
    """An open span: its id, start time, and the parent and role its ``span_end`` repeats
    (it may be recorded from another context: a consumer's, the garbage collector's)."""

    __slots__ = ("parent_id", "role", "span_id", "t0")

    def __init__(self, span_id: str, t0: float, parent_id: str | None, role: str) -> None:
        self.span_id = span_id
        self.t0 = t0
        self.parent_id = parent_id
        self.role = role


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


def _start(ctx: TraceContext, spec: _Spec, args: Any, kwargs: Any) -> _Open:
    """Record ``span_start``; the caller makes the span current while its code runs."""
    span_id = ctx.new_span_id()
    parent_id = current_span_id.get()
    role = current_role.get()
    ctx.add(
        "span_start",
        spec.name,
        role=role,
        observation_id=span_id,
        parent_id=parent_id,
        input=_capture_args(spec.signature, args, kwargs) if spec.capture_input else None,
        metadata={"kind": spec.kind, **spec.meta},
    )
    return _Open(span_id, time.perf_counter(), parent_id, role)


def _restore(token: Token[str | None] | None) -> None:
    """Make the span current before ``token`` was set current again."""
    if token is None:
        return
    try:  # noqa: SIM105 - on every span's end: try/except costs nothing, suppress() does
        current_span_id.reset(token)
    except ValueError:
        # The span ends in another context than it started in (a coroutine closed by the
        # garbage collector elsewhere): that context's current span was never changed.
        pass


def _end(
    ctx: TraceContext,
    spec: _Spec,
    opened: _Open,
    token: Token[str | None] | None = None,
    *,
    output: Any = None,
    error: BaseException | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Record ``span_end`` (after restoring the outer span, when ``token`` is given)."""
    _restore(token)
    meta = dict(metadata or {})
    if error is None and spec.capture_tokens:
        usage = _token_usage(output)
        if usage is not None:
            meta["token_usage"] = usage
    ctx.add(
        "span_end",
        spec.name,
        role=opened.role,
        observation_id=opened.span_id,
        parent_id=opened.parent_id,
        output=to_jsonable(output) if error is None and spec.capture_output else None,
        error=f"{type(error).__name__}: {error}" if error is not None else None,
        duration_ms=round((time.perf_counter() - opened.t0) * 1000, 3),
        metadata=meta,
    )


def _token_usage(result: Any) -> dict[str, Any] | None:
    """The ``usage`` of an LLM response (attribute or key), as JSON data, if it has one."""
    try:
        if isinstance(result, Mapping):
            usage = result.get("usage")
        else:
            usage = getattr(result, "usage", None)
    except Exception:  # a property that raises must not fail the agent's call
        return None
    if usage is None:
        return None
    data = to_jsonable(usage)
    return data if isinstance(data, dict) else None


class _Items:
    """The items a generator span yielded (kept up to MAX_CAPTURED_ITEMS)."""

    __slots__ = ("count", "keep", "kept")

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.count = 0
        self.kept: list[Any] = []

    def add(self, item: Any) -> None:
        self.count += 1
        if self.keep and len(self.kept) < MAX_CAPTURED_ITEMS:
            # Converted now: the consumer may mutate the item after receiving it.
            self.kept.append(to_jsonable(item))


class _GeneratorSpan:
    """The span of one generator call, which ends exactly once, however the generator does.

    While it is open its id is in ``ctx.open_spans``; ending it takes the id out (a dict
    ``pop``, atomic, so two threads can never both end it). The entry holds the span only
    weakly, so a generator freed without its close running frees this object too, and
    ``__del__`` ends the span as abandoned then.
    """

    __slots__ = ("__weakref__", "ctx", "items", "opened", "spec")

    def __init__(self, ctx: TraceContext, spec: _Spec, args: Any, kwargs: Any) -> None:
        self.ctx = ctx
        self.spec = spec
        self.items = _Items(spec.capture_output)
        self.opened = _start(ctx, spec, args, kwargs)
        ctx.open_spans[self.opened.span_id] = functools.partial(_abandon, weakref.ref(self))

    def end(
        self,
        token: Token[str | None] | None = None,
        *,
        error: BaseException | None = None,
        how: Literal["closed", "abandoned"] | None = None,
    ) -> None:
        """Restore the outer span (``token``), then record ``span_end`` unless it has been:
        the output so far, or ``error``; an early end says ``metadata.<how>: true``."""
        if self.ctx.open_spans.pop(self.opened.span_id, None) is None:
            _restore(token)
            return
        meta: dict[str, Any] = {"items": self.items.count}
        if how is not None:
            meta[how] = True
        output = self.items.kept if error is None else None
        _end(self.ctx, self.spec, self.opened, token, output=output, error=error, metadata=meta)

    def __del__(self) -> None:
        # Still open when freed: the generator was collected without its close running (an
        # async generator whose event loop had closed). A finalizer must never raise.
        with contextlib.suppress(Exception):
            self.end(how="abandoned")


def _abandon(ref: weakref.ref[_GeneratorSpan]) -> None:
    """End a generator span as abandoned, if it is still alive (``close_open_spans``)."""
    span = ref()
    if span is not None:
        span.end(how="abandoned")


def _traced_generator(
    span: _GeneratorSpan, gen: Generator[Any, Any, Any]
) -> Generator[Any, Any, Any]:
    """Drive ``gen`` as ``yield from`` would, with the span current only while its body runs."""
    span_id = span.opened.span_id
    send: Any = None
    throw: BaseException | None = None
    while True:
        token = current_span_id.set(span_id)
        try:
            item = gen.send(send) if throw is None else gen.throw(throw)
        except StopIteration as stop:
            span.end(token)
            return stop.value
        except BaseException as exc:
            span.end(token, error=exc)
            raise
        current_span_id.reset(token)
        span.items.add(item)
        send, throw = None, None
        try:
            send = yield item
        except GeneratorExit:  # close(), or collected unfinished (Python closes it then)
            token = current_span_id.set(span_id)
            try:
                gen.close()
            except BaseException as exc:
                span.end(token, error=exc)
                raise
            span.end(token, how="closed")
            raise
        except BaseException as exc:
            throw = exc


def _wrap(fn: F, spec: _Spec) -> F:
    """The recording wrapper of ``fn``, of the same kind (sync, async, generator, ...).

    Each wrapper starts with the same two checks: the current trace (spans), then, for an
    ``@agent``, the cached recording switch (argument recording), read first so that with
    recording off it is the only extra cost.
    """
    site = spec.recording
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def async_generator_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            # Async generators have no ``yield from``: this body forwards asend/athrow/aclose
            # itself. It is an async generator function (not a function returning one) so
            # inspect.isasyncgenfunction() stays true for frameworks that look; the price is
            # that items pass through it even outside a trace.
            ctx = current_trace()
            if RECORDING.on is not False and site is not None:
                record_agent_call(site, ctx, args, kwargs, mark=False)
            agen = fn(*args, **kwargs)
            span = None
            if ctx is not None and is_enabled():
                span = _GeneratorSpan(ctx, spec, args, kwargs)
            send: Any = None
            throw: BaseException | None = None
            while True:
                token = current_span_id.set(span.opened.span_id) if span is not None else None
                try:
                    item = await (agen.asend(send) if throw is None else agen.athrow(throw))
                except StopAsyncIteration:
                    if span is not None:
                        span.end(token)
                    return
                except BaseException as exc:
                    if span is not None:
                        span.end(token, error=exc)
                    raise
                if span is not None:
                    _restore(token)
                    span.items.add(item)
                send, throw = None, None
                try:
                    send = yield item
                except GeneratorExit:  # aclose(), or the loop closing it once dropped
                    token = current_span_id.set(span.opened.span_id) if span is not None else None
                    try:
                        await agen.aclose()
                    except BaseException as exc:
                        if span is not None:
                            span.end(token, error=exc)
                        raise
                    if span is not None:
                        span.end(token, how="closed")
                    raise
                except BaseException as exc:
                    throw = exc

        return async_generator_wrapper  # type: ignore[return-value]

    if inspect.iscoroutinefunction(fn):

        async def async_traced(ctx: TraceContext, args: Any, kwargs: Any) -> Any:
            opened = _start(ctx, spec, args, kwargs)
            token = current_span_id.set(opened.span_id)
            try:
                result = await fn(*args, **kwargs)
            except GeneratorExit:
                # Closed mid-await (coro.close(), or collected unfinished): no result, and
                # no error of its own.
                _end(ctx, spec, opened, token, metadata={"closed": True})
                raise
            except BaseException as exc:
                _end(ctx, spec, opened, token, error=exc)
                raise
            _end(ctx, spec, opened, token, output=result)
            return result

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = current_trace()
            if RECORDING.on is not False and site is not None:
                mark = record_agent_call(site, ctx, args, kwargs)
                if mark is not None:
                    try:
                        if ctx is None or not is_enabled():
                            return await fn(*args, **kwargs)
                        return await async_traced(ctx, args, kwargs)
                    finally:
                        end_agent_call(mark)
            if ctx is None or not is_enabled():
                return await fn(*args, **kwargs)
            return await async_traced(ctx, args, kwargs)

        return async_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            ctx = current_trace()
            if RECORDING.on is not False and site is not None:
                record_agent_call(site, ctx, args, kwargs, mark=False)
            if ctx is None or not is_enabled():
                return (yield from fn(*args, **kwargs))
            gen = fn(*args, **kwargs)  # first: bad arguments raise before any span starts
            span = _GeneratorSpan(ctx, spec, args, kwargs)
            return (yield from _traced_generator(span, gen))

        return generator_wrapper  # type: ignore[return-value]

    def traced(ctx: TraceContext, args: Any, kwargs: Any) -> Any:
        opened = _start(ctx, spec, args, kwargs)
        token = current_span_id.set(opened.span_id)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _end(ctx, spec, opened, token, error=exc)
            raise
        _end(ctx, spec, opened, token, output=result)
        return result

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = current_trace()
        if RECORDING.on is not False and site is not None:
            mark = record_agent_call(site, ctx, args, kwargs)
            if mark is not None:
                try:
                    if ctx is None or not is_enabled():
                        return fn(*args, **kwargs)
                    return traced(ctx, args, kwargs)
                finally:
                    end_agent_call(mark)
        if ctx is None or not is_enabled():
            return fn(*args, **kwargs)
        return traced(ctx, args, kwargs)

    return wrapper  # type: ignore[return-value]


def span(
    kind: str,
    name: str | None = None,
    *,
    metadata: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    capture_tokens: bool = False,
    **meta: Any,
) -> Callable[[F], F]:
    """Decorator factory recording a ``span_start``/``span_end`` pair of kind ``kind``.

    Args:
        kind: ``metadata.kind`` of the span (``agent``, ``tool``, ``generation`` ...).
        name: the span's name; default: the function's ``__name__``.
        metadata: added to ``span_start``'s metadata (with ``**meta``).
        capture_input: record the call's arguments (False: ``input`` is None).
        capture_output: record the return value or yielded items (False: ``output`` is None).
        capture_tokens: record the result's ``usage`` (attribute or key) as
            ``metadata.token_usage`` of ``span_end``.
    """
    return _decorator(
        kind,
        name,
        metadata=metadata,
        capture_input=capture_input,
        capture_output=capture_output,
        capture_tokens=capture_tokens,
        meta=meta,
    )


def _decorator(
    kind: str,
    name: str | None,
    *,
    metadata: Mapping[str, Any] | None,
    capture_input: bool = True,
    capture_output: bool = True,
    capture_tokens: bool = False,
    meta: Mapping[str, Any],
    record_args: bool = False,
) -> Callable[[F], F]:
    """:func:`span`, and for ``@agent`` (``record_args``) argument recording too. Kept out
    of span's signature, where ``record_args=`` would be taken for span metadata."""
    span_meta = {**(metadata or {}), **meta}

    def decorate(fn: F) -> F:
        try:  # computed once: signature() is too slow to run on every call
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        spec = _Spec(
            kind=kind,
            name=name or str(getattr(fn, "__name__", kind)),
            meta=span_meta,
            signature=signature,
            capture_input=capture_input,
            capture_output=capture_output,
            capture_tokens=capture_tokens,
            recording=call_site(fn, signature) if record_args else None,
        )
        return _wrap(fn, spec)

    return decorate


def _target_and_name(fn: Any, name: str | None, decorator: str) -> tuple[Any, str | None]:
    """Split the first positional argument: a function to decorate, or (earlier SDK) a name."""
    if isinstance(fn, str):
        if name is not None:
            raise TypeError(f"{decorator}() got the name twice ({fn!r} and name={name!r})")
        return None, fn
    if fn is not None and not callable(fn):
        raise TypeError(f"{decorator}() takes a function or a name, got {type(fn).__name__}")
    return fn, name


def _apply(fn: Any, decorator: Callable[[F], F]) -> Any:
    return decorator(fn) if fn is not None else decorator


@overload
def agent(fn: F, /) -> F: ...
@overload
def agent(
    fn: str | None = None,
    /,
    *,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    **meta: Any,
) -> Callable[[F], F]: ...
def agent(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    **meta: Any,
) -> Any:
    """Mark an agent entry point: ``@fluxloop.agent``, ``@fluxloop.agent()``,
    ``@fluxloop.agent(name="support", metadata={"team": "cx"})``.

    Inside a trace, each call records ``span_start``/``span_end`` observations of kind
    ``agent`` with the call's arguments, its output or error, and its duration.

    When argument recording is on (``FLUXLOOP_RECORD_ARGS=true``, in the environment or a
    ``.env`` in the current directory; ``configure(record_args=True)``;
    ``enable_recording()``), each call outside a FluxLoop experiment case also appends one
    line (target ``"<module>:<qualname>"``, its ``args`` and ``kwargs``, secrets redacted)
    to the recording file, for replay (:mod:`pytest_fluxloop.sdk.recording`). A recording
    failure is logged once and never reaches the caller.

    Args:
        name: the span's name (default: the function's name); also accepted positionally.
        metadata: extra ``span_start`` metadata; extra keyword arguments are added too.
        capture_input: record the arguments (False: the span has no input).
        capture_output: record the return value (False: the span has no output).
    """
    fn, name = _target_and_name(fn, name, "agent")
    decorator: Callable[[Any], Any] = _decorator(
        "agent",
        name,
        metadata=metadata,
        capture_input=capture_input,
        capture_output=capture_output,
        meta=meta,
        record_args=True,
    )
    return _apply(fn, decorator)


def _observation_kind(observation_type: Any) -> str:
    value = getattr(observation_type, "value", observation_type)
    if isinstance(value, str) and value in OBSERVATION_TYPES:
        return value
    raise ValueError(
        f"invalid observation_type {observation_type!r}; "
        f"expected one of: {', '.join(OBSERVATION_TYPES)}"
    )


@overload
def trace(fn: F, /) -> F: ...
@overload
def trace(
    fn: str | None = None,
    /,
    *,
    name: str | None = None,
    observation_type: ObservationType | str = ObservationType.TRACE,
    metadata: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    **meta: Any,
) -> Callable[[F], F]: ...
def trace(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    observation_type: ObservationType | str = ObservationType.TRACE,
    metadata: Mapping[str, Any] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    **meta: Any,
) -> Any:
    """Record any function as a span (``@fluxloop.trace()``), of kind ``trace`` by default.

    Args:
        name: the span's name (default: the function's name); also accepted positionally.
        observation_type: the span's kind, one of :data:`OBSERVATION_TYPES` (an
            :class:`ObservationType` or its value); anything else is a ValueError.
        metadata: extra ``span_start`` metadata; extra keyword arguments are added too.
        capture_input: record the arguments (False: the span has no input).
        capture_output: record the return value (False: the span has no output).
    """
    fn, name = _target_and_name(fn, name, "trace")
    decorator: Callable[[Any], Any] = span(
        _observation_kind(observation_type),
        name,
        metadata=metadata,
        capture_input=capture_input,
        capture_output=capture_output,
        **meta,
    )
    return _apply(fn, decorator)


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    fn: str | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    **meta: Any,
) -> Callable[[F], F]: ...
def tool(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    **meta: Any,
) -> Any:
    """Record a tool function as a span of kind ``tool`` (``@fluxloop.tool()``,
    ``@fluxloop.tool(description="Search the web")``).

    Args:
        name: the span's name (default: the function's name); also accepted positionally.
        description: kept as ``metadata.description`` of ``span_start``.
        **meta: more ``span_start`` metadata.
    """
    fn, name = _target_and_name(fn, name, "tool")
    if description is not None:
        meta["description"] = description
    decorator: Callable[[Any], Any] = span("tool", name, **meta)
    return _apply(fn, decorator)


@overload
def prompt(fn: F, /) -> F: ...
@overload
def prompt(
    fn: str | None = None,
    /,
    *,
    name: str | None = None,
    model: str | None = None,
    capture_tokens: bool = True,
    **meta: Any,
) -> Callable[[F], F]: ...
def prompt(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    model: str | None = None,
    capture_tokens: bool = True,
    **meta: Any,
) -> Any:
    """Mark an LLM call (``@fluxloop.prompt(model="gpt-4o-mini")``): a span of kind
    ``generation``.

    Args:
        name: the span's name (default: the function's name); also accepted positionally.
        model: kept as ``metadata.model`` of ``span_start``.
        capture_tokens: when the function returns something with a ``usage`` (an attribute,
            as on OpenAI and Anthropic responses, or a dict key), record it as
            ``metadata.token_usage`` of ``span_end``.
        **meta: more ``span_start`` metadata.
    """
    fn, name = _target_and_name(fn, name, "prompt")
    if model is not None:
        meta["model"] = model
    decorator: Callable[[Any], Any] = span(
        ObservationType.GENERATION.value, name, capture_tokens=capture_tokens, **meta
    )
    return _apply(fn, decorator)


def log_event(name: str, **data: Any) -> None:
    """Record a point event in the current trace: ``fluxloop.log_event("cache_miss", key=k)``.

    Inside a trace it appends one observation of type and kind ``event``, named ``name``,
    with ``data`` as its ``metadata`` (under the innermost open span, with the current
    role). Outside a trace, or with the SDK disabled, it does nothing. Values with no JSON
    form (bytes, a client object, a pydantic model, a structure containing itself) are
    converted as everywhere in the SDK (:func:`~pytest_fluxloop.jsonsafe.to_jsonable`), so
    logging an event never raises into the caller's code.
    """
    ctx = current_trace()
    if ctx is not None and is_enabled():
        ctx.add("event", str(name), kind="event", metadata=to_jsonable(data))


event = log_event
"""The earlier SDK's name of :func:`log_event` (the same function)."""
