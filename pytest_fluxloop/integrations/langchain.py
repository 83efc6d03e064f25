"""LangChain and LangGraph capture: a callback handler attached to every runnable of a case.

:func:`activate` registers, once per process, a ``langchain_core`` configure hook on a
ContextVar (``register_configure_hook``): every callback manager LangChain configures while
the variable holds a handler gets that handler, inherited by child runs. :func:`activate`
sets the variable to a handler bound to the case's trace, :func:`deactivate` resets it, so:

* no ``callbacks=`` argument in user code and nothing patched: LangChain's own mechanism;
* nothing captured outside a case (the variable is empty there), and nothing after its end
  (the handler is closed, even where a callback manager kept a reference to it);
* concurrent cases each record their own runs (threads and asyncio tasks each see their
  context's handler).

What the handler records is described in :mod:`.langchain_handler`.

``langchain-core`` older than :data:`MIN_LANGCHAIN_CORE` is not hooked: :func:`activate`
returns a notice saying so (once per process) and the case runs uncaptured, rather than
failing every case for an optional capture.
"""

from __future__ import annotations

import importlib
import re
import threading
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, NamedTuple

from ..sdk.context import TraceContext

if TYPE_CHECKING:
    from .langchain_handler import FluxloopCallbackHandler

__all__ = ["MIN_LANGCHAIN_CORE", "activate", "deactivate", "version_notice"]

MIN_LANGCHAIN_CORE = (0, 3)
"""The oldest ``langchain-core`` (major, minor) whose callbacks the handler knows."""

_handler: ContextVar[FluxloopCallbackHandler | None] = ContextVar(
    "fluxloop_langchain_handler", default=None
)
_lock = threading.Lock()
_registered_in: object | None = None
"""The ``langchain_core.tracers.context`` module the hook is registered in. A module, not a
flag: LangChain imports that module lazily, and a host that unloads modules it imported
(pytest's pytester does, after an in-process run) gets a fresh one with no hooks."""
_reported: set[str] = set()


class Activation(NamedTuple):
    """What :func:`activate` returns as its token: the handler and the ContextVar token."""

    handler: FluxloopCallbackHandler
    token: Token[FluxloopCallbackHandler | None]


def version_notice(version: str | None) -> str | None:
    """The notice for an installed ``langchain-core`` too old to hook, else None.

    ``version`` is its version string (``"0.2.43"``); one that cannot be read is assumed
    recent enough.
    """
    match = re.match(r"\s*v?(\d+)\.(\d+)", version or "")
    if match is None:
        return None
    if (int(match[1]), int(match[2])) >= MIN_LANGCHAIN_CORE:
        return None
    minimum = ".".join(map(str, MIN_LANGCHAIN_CORE))
    return (
        f"LangChain capture is off: it needs langchain-core>={minimum}, and "
        f"langchain-core {version} is installed. Upgrade it "
        f"(pip install -U 'langchain-core>={minimum}'), or set capture.langchain: false "
        "in simulation.yaml to silence this notice."
    )


def _installed_version() -> str | None:
    try:
        import langchain_core

        version = getattr(langchain_core, "__version__", None)
        if isinstance(version, str):
            return version
        from importlib.metadata import version as dist_version

        return dist_version("langchain-core")
    except Exception:
        return None


def _register() -> None:
    """Register the configure hook (once per ``langchain_core.tracers.context`` module)."""
    global _registered_in
    with _lock:
        # By its full name, as LangChain's configure reads it: ``from package import``
        # would return a stale module object still set on the package.
        hooks = importlib.import_module("langchain_core.tracers.context")
        if _registered_in is hooks:
            return
        known = getattr(hooks, "_configure_hooks", ())
        if not any(entry[0] is _handler for entry in known):  # never twice in one module
            hooks.register_configure_hook(_handler, inheritable=True)
        _registered_in = hooks


def _once(notice: str) -> list[str]:
    with _lock:
        if notice in _reported:
            return []
        _reported.add(notice)
    return [notice]


def activate(ctx: TraceContext) -> tuple[Activation | None, list[str]]:
    """Attach a handler recording into ``ctx`` to the runnables invoked in this context.

    Returns the token for :func:`deactivate` (None when nothing was attached) and the
    notices to record (each once per process).
    """
    if not ctx.capture.langchain:
        return None, []
    notice = version_notice(_installed_version())
    if notice is not None:
        return None, _once(notice)
    try:
        _register()
        from .langchain_handler import FluxloopCallbackHandler
    except Exception as exc:  # an unexpected langchain-core layout: run uncaptured
        return None, _once(f"LangChain capture is off: {type(exc).__name__}: {exc}")
    handler = FluxloopCallbackHandler(ctx)
    return Activation(handler, _handler.set(handler)), []


def deactivate(token: Activation | None) -> None:
    """Detach the handler :func:`activate` attached (in the same context)."""
    if token is None:
        return
    token.handler.close()
    try:
        _handler.reset(token.token)
    except (ValueError, RuntimeError):  # another context: at least stop recording here
        if _handler.get() is token.handler:
            _handler.set(None)
