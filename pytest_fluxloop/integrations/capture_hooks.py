"""The request path of the ``openai`` and ``anthropic`` SDKs, captured once for both.

Both SDKs are generated from one client design (Stainless): every API call, whatever the
endpoint or helper (``create``, ``parse``, ``messages.stream()``, ``with_raw_response``,
``with_streaming_response``, pagination, endpoints added later), goes through
``SyncAPIClient.request`` / ``AsyncAPIClient.request`` of ``<sdk>._base_client``, which sends
the HTTP request (retries included) and hands the final HTTP response to
``_process_response``. Capture hooks there, and only there:

* ``request`` is wrapped: outside a trace (or with ``capture.llm`` off, the SDK disabled, or
  a framework such as LangChain already recording the call) it calls straight through;
  otherwise it opens a :class:`~pytest_fluxloop.sdk.generation.Generation` from the
  request's ``options`` (read, never changed: no header, no ``stream_options`` added), and
  finishes it when the call raises, or returns a body already read.
* ``_process_response`` is tapped: it notes the HTTP response it is given for the call in
  progress (a ContextVar), so a parsed result (a ``ChatCompletion`` ...) is reduced from the
  body the SDK read, not from the SDK's objects.

**Cassettes** use the same wrapper: when a case's tape is current
(:data:`~pytest_fluxloop.cassettes.session.current_tape`, even with ``capture.llm`` off), the
call is planned by it before the SDK sends anything (:mod:`.cassette_tape`: replay a
recording, record the response, or raise the miss), and captured as usual either way.

**Streams** (and any body not read when ``request`` returns) are observed at the HTTP body
(:mod:`.capture_streams`); what one SDK knows of its requests and replies is its
:class:`~.capture_provider.Provider` (:mod:`.openai`, :mod:`.anthropic`).

A bug here never breaks the agent's call: every step is guarded, logged once
(``pytest_fluxloop.capture``) and recorded in the trace (``capture_error`` in the
generation's end metadata, or a ``capture_error`` event when no generation could be opened).
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..cassettes.session import CaseTape, current_tape
from ..jsonsafe import to_jsonable
from ..sdk.context import TraceContext, current_trace, framework_generation
from ..sdk.generation import Generation
from ..sdk.settings import is_enabled
from .capture_bodies import content_type, read_body, reply_from_body, response_of
from .capture_provider import Provider, Reply, capture_failed, record_failure
from .capture_streams import observe
from .cassette_tape import Served, plan_call, serving

__all__ = ["MARK", "foreign_wrapper", "hook_sdk", "unhook_sdk"]

MARK = "__fluxloop_capture__"
"""Attribute set on every wrapper installed here (its value: the provider's name). Copied by
``functools.wraps`` and seen through ``wrapt`` proxies, so a method wrapped by FluxLoop and
then by someone else is never wrapped by FluxLoop a second time."""


# --------------------------------------------------------------------------- one call


_pending: ContextVar[_Call | None] = ContextVar("fluxloop_llm_call", default=None)
"""The captured call whose ``request`` is running in this context (for the tap)."""


class _Call:
    """One captured ``request``: its generation, and the HTTP response the SDK processed."""

    __slots__ = ("content", "generation", "provider", "response", "retries")

    def __init__(self, provider: Provider, generation: Generation, content: bool) -> None:
        self.provider = provider
        self.generation = generation
        self.content = content
        self.response: Any = None
        self.retries = 0

    def extra(self) -> dict[str, Any]:
        """The ``span_end`` metadata of the call itself (its retries)."""
        return {"retries": self.retries} if self.retries else {}

    def tap(self, kwargs: Mapping[str, Any]) -> None:
        """``_process_response`` was called: note its response (the last one wins)."""
        self.response = kwargs.get("response")
        retries = kwargs.get("retries_taken")
        self.retries = retries if isinstance(retries, int) else 0

    def failed(self, exc: BaseException) -> None:
        """``request`` raised ``exc`` (re-raised unchanged by the caller)."""
        generation = self.generation
        try:
            reply = Reply()
            body = read_body(self.response) if self.response is not None else None
            if body:  # a response read, then rejected (a parse error, a length finish ...)
                reply = reply_from_body(
                    self.provider,
                    body,
                    functools.partial(content_type, self.response),
                    self.content,
                )
            generation.finish(
                model=reply.model,
                finish_reason=reply.finish_reason,
                usage=reply.usage,
                error=exc,
                extra=self.extra(),
            )
        except Exception as bug:
            note = capture_failed(self.provider.name, "error", bug)
            generation.finish(error=exc, extra={"capture_error": note})

    def returned(self, result: Any) -> None:
        """``request`` returned ``result`` (handed to the caller unchanged)."""
        generation = self.generation
        try:
            response, is_stream = response_of(result)
            if response is None:
                response = self.response
            if response is None:
                # No HTTP response seen (a middleware answered from a cache ...): the
                # result itself, if it is a model.
                reply = Reply()
                if hasattr(result, "model_dump"):
                    reply = self.provider.reduce(to_jsonable(result), self.content)
                self._finish(reply)
                return
            body = read_body(response)
            if body is not None:
                self._finish(
                    reply_from_body(
                        self.provider,
                        body,
                        functools.partial(content_type, response),
                        self.content,
                    )
                )
            elif getattr(response, "is_closed", False):
                generation.finish(status="closed", extra=self.extra())
            else:
                observe(self.provider, self, response, result if is_stream else None)
        except Exception as bug:
            note = capture_failed(self.provider.name, "response", bug)
            generation.finish(extra={**self.extra(), "capture_error": note})

    def _finish(self, reply: Reply) -> None:
        self.generation.finish(
            output=reply.output,
            model=reply.model,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            error=reply.error,
            extra=self.extra(),
        )


def _start(
    provider: Provider, ctx: TraceContext, args: tuple[Any, ...], kwargs: Any
) -> _Call | None:
    """Open the generation of a ``request(cast_to, options, *, stream, stream_cls)`` call;
    None when it makes none, or when reading it failed (recorded as a capture error)."""
    try:
        options = kwargs["options"] if "options" in kwargs else args[1]
        request = provider.describe(options, bool(kwargs.get("stream")))
        if request is None:
            return None
        content = ctx.capture.content
        generation = Generation(
            ctx,
            request.name,
            provider=provider.name,
            model=request.model,
            operation=request.operation,
            messages=request.messages if content else None,
            parameters=request.parameters,
            stream=request.stream,
        )
        return _Call(provider, generation, content)
    except Exception as exc:
        record_failure(ctx, provider.name, capture_failed(provider.name, "request", exc))
        return None


def _begin(
    provider: Provider,
    ctx: TraceContext | None,
    tape: CaseTape | None,
    sdk_client: Any,
    args: tuple[Any, ...],
    kwargs: Any,
    *,
    asynchronous: bool,
) -> tuple[_Call | None, Served | None]:
    """Open the call's generation (when capturing) and ask the case's cassette what to do
    (when one is current). A cassette miss is raised here, before the SDK sends anything,
    and recorded on the generation."""
    call = _start(provider, ctx, args, kwargs) if ctx is not None else None
    if tape is None:
        return call, None
    try:
        plan = plan_call(provider, tape, sdk_client, args, kwargs, asynchronous)
    except BaseException as exc:
        if call is not None:
            call.failed(exc)
        raise
    return call, Served(plan, provider)


def _enter(call: _Call | None, plan: Served | None) -> tuple[Any, Any]:
    return (
        _pending.set(call) if call is not None else None,
        serving.set(plan) if plan is not None else None,
    )


def _leave(tokens: tuple[Any, Any]) -> None:
    pending, served = tokens
    if served is not None:
        serving.reset(served)
    if pending is not None:
        _pending.reset(pending)


def _capturing() -> TraceContext | None:
    """The trace to record a call into, or None: call straight through (kept cheap)."""
    ctx = current_trace()
    # framework_generation is tested for truth, not None: LangChain may leave a false value
    # behind in this context once its model run has ended in another task.
    if ctx is None or not ctx.capture.llm or framework_generation.get() or not is_enabled():
        return None
    return ctx


# --------------------------------------------------------------------------- hooks


@dataclass
class _Hook:
    owner: type
    attr: str
    original: Any
    wrapper: Any = None
    active: bool = True


@dataclass
class _Installed:
    hooks: list[_Hook] = field(default_factory=list)


_installed: dict[str, _Installed] = {}
_hooks: dict[int, _Hook] = {}
"""Every wrapper ever installed, by id (kept: a switched-off wrapper left under someone
else's is found, and switched on again, by the next install)."""
_install_lock = threading.Lock()


def _our_hook(func: Any) -> _Hook | None:
    """FluxLoop's hook on ``func``'s ``__wrapped__`` chain (under other wrappers), if any."""
    for _ in range(16):
        if func is None:
            return None
        hook = _hooks.get(id(func))
        if hook is not None and hook.wrapper is func:
            return hook
        func = getattr(func, "__wrapped__", None)
    return None


def _sync_request(provider: Provider, hook: _Hook) -> Callable[..., Any]:
    original = hook.original

    @functools.wraps(original)
    def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        tape = current_tape.get() if hook.active else None
        ctx = _capturing() if hook.active else None
        if ctx is None and tape is None:
            return original(self, *args, **kwargs)
        call, plan = _begin(provider, ctx, tape, self, args, kwargs, asynchronous=False)
        if call is None and plan is None:
            return original(self, *args, **kwargs)
        tokens = _enter(call, plan)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            if call is not None:
                call.failed(exc)
            raise
        finally:
            _leave(tokens)
        if call is not None:
            call.returned(result)
        return result

    return request


def _async_request(provider: Provider, hook: _Hook) -> Callable[..., Any]:
    original = hook.original

    @functools.wraps(original)
    async def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        tape = current_tape.get() if hook.active else None
        ctx = _capturing() if hook.active else None
        if ctx is None and tape is None:
            return await original(self, *args, **kwargs)
        call, plan = _begin(provider, ctx, tape, self, args, kwargs, asynchronous=True)
        if call is None and plan is None:
            return await original(self, *args, **kwargs)
        tokens = _enter(call, plan)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            if call is not None:
                call.failed(exc)
            raise
        finally:
            _leave(tokens)
        if call is not None:
            call.returned(result)
        return result

    return request


def _sync_tap(provider: Provider, hook: _Hook) -> Callable[..., Any]:
    original = hook.original

    @functools.wraps(original)
    def _process_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _pending.get()
        if call is not None:
            call.tap(kwargs)
        return original(self, *args, **kwargs)

    return _process_response


def _async_tap(provider: Provider, hook: _Hook) -> Callable[..., Any]:
    original = hook.original

    @functools.wraps(original)
    async def _process_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _pending.get()
        if call is not None:
            call.tap(kwargs)
        return await original(self, *args, **kwargs)

    return _process_response


def _defining_module(func: Any) -> str | None:
    """Where a wrapper was written: its globals' ``__name__`` (``functools.wraps`` copies the
    wrapped function's ``__module__``, not its globals), else its ``__module__``."""
    globals_ = getattr(func, "__globals__", None)
    if isinstance(globals_, Mapping) and isinstance(globals_.get("__name__"), str):
        return str(globals_["__name__"])
    module = getattr(func, "__module__", None)
    return module if isinstance(module, str) else None


def foreign_wrapper(func: Any, package: str) -> str | None:
    """The module of another instrumentation wrapping ``func`` (looking through FluxLoop's
    own wrappers and the SDK's decorators), or None."""
    seen = 0
    while func is not None and seen < 16:
        seen += 1
        if _hooks.get(id(func)) is not None:
            func = getattr(func, "__wrapped__", None)
            continue
        kind = type(func).__module__
        if kind.startswith("wrapt"):  # a wrapt FunctionWrapper: name its wrapper's module
            return _defining_module(getattr(func, "_self_wrapper", None)) or kind
        module = _defining_module(func)
        if module is not None and module != package and not module.startswith(package + "."):
            return module
        func = getattr(func, "__wrapped__", None)
    return None


def _resolve(watched: Iterable[tuple[str, str, str]]) -> list[tuple[type, str]]:
    """The (class, method) pairs named by ``(module, class, method)`` that exist."""
    found: list[tuple[type, str]] = []
    for module_name, class_name, attr in watched:
        try:
            owner = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):  # another SDK version: nothing to check there
            continue
        if isinstance(owner, type):
            found.append((owner, attr))
    return found


def hook_sdk(
    provider: Provider, base_client: ModuleType, watched: Iterable[tuple[str, str, str]]
) -> list[str]:
    """Hook one SDK's request path: ``SyncAPIClient``/``AsyncAPIClient`` of its
    ``base_client`` module (idempotent). Returns notices about other instrumentations found
    on it or on the ``watched`` methods (``(module, class, method)``)."""
    with _install_lock:
        if provider.name in _installed:
            return []
        sync_client = base_client.SyncAPIClient
        async_client = base_client.AsyncAPIClient
        notices: list[str] = []
        targets = [
            (sync_client, "request"),
            (async_client, "request"),
            (sync_client, "_process_response"),
            (async_client, "_process_response"),
        ]
        for owner, attr in [*targets, *_resolve(watched)]:
            module = foreign_wrapper(owner.__dict__.get(attr), provider.name)
            if module is not None:
                notices.append(
                    f"another instrumentation (module {module}) already wraps "
                    f"{provider.name}'s {owner.__name__}.{attr}; FluxLoop records each call "
                    "once and leaves that instrumentation in place"
                )
        installed = _Installed()
        makers = (_sync_request, _async_request, _sync_tap, _async_tap)
        for (owner, attr), make in zip(targets, makers, strict=True):
            current = owner.__dict__.get(attr)
            if current is None:
                continue
            hook = _our_hook(current)
            if hook is None and getattr(current, MARK, None) is not None:
                continue  # another copy of FluxLoop's (a reloaded module): never twice
            if hook is None:
                hook = _Hook(owner, attr, current)
                hook.wrapper = make(provider, hook)
                setattr(hook.wrapper, MARK, provider.name)
                _hooks[id(hook.wrapper)] = hook
                setattr(owner, attr, hook.wrapper)
            hook.active = True  # FluxLoop's already, maybe under someone else's: on again
            installed.hooks.append(hook)
        _installed[provider.name] = installed
        if not any(hook.attr == "request" for hook in installed.hooks):
            version = getattr(sys.modules.get(provider.name), "__version__", "?")
            notices.append(
                f"{provider.name} {version} has no client request path FluxLoop knows "
                f"({base_client.__name__}.SyncAPIClient.request): its calls are not captured"
            )
        return notices


def unhook_sdk(provider_name: str) -> None:
    """Undo :func:`hook_sdk` (tests). A wrapper someone else has since wrapped stays in
    place, switched off."""
    with _install_lock:
        installed = _installed.pop(provider_name, None)
        for hook in installed.hooks if installed else ():
            hook.active = False
            if hook.owner.__dict__.get(hook.attr) is hook.wrapper:
                setattr(hook.owner, hook.attr, hook.original)
