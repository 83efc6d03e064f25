"""Automatic capture of what an agent does through the libraries it uses.

* :mod:`.openai` and :mod:`.anthropic`: every call made through the provider SDK's client
  while a trace is current becomes one ``generation`` observation. Captured at one layer per
  SDK, the client's request path, so every endpoint is covered; requests and the SDK's
  objects are never changed.
* :mod:`.langchain`: a LangChain callback handler, attached through ``langchain_core``'s
  configure hook to every runnable invoked while a trace is current (LangGraph nodes
  included).

The engine calls :func:`case_capture` around each case. Nothing here imports a provider SDK
or LangChain: each is hooked only once the agent (or the harness) has imported it, so a run
that never uses one pays nothing for it. Production code outside experiments may call
:func:`install` once to capture LLM calls inside ``fluxloop.instrument()`` traces too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..cassettes.session import current_tape
from ..sdk.context import TraceContext

__all__ = ["case_capture", "install", "install_on_import", "uninstall"]

_PROVIDERS = ("openai", "anthropic")
_done: set[str] = set()


def install() -> list[str]:
    """Hook each provider SDK already imported (``openai``, ``anthropic``), once.

    Cheap to call again (two set lookups once both are hooked). Returns notices to report,
    once each: another instrumentation found wrapping a client, an SDK too old to hook.
    """
    if len(_done) == len(_PROVIDERS):
        return []
    notices: list[str] = []
    for name in _PROVIDERS:
        if name in _done or name not in sys.modules:
            continue
        _done.add(name)
        if name == "openai":
            from .openai import install as install_openai

            notices.extend(install_openai())
        else:
            from .anthropic import install as install_anthropic

            notices.extend(install_anthropic())
    return notices


def install_on_import() -> None:
    """Hook each provider SDK now if imported, else as soon as it is (cassettes must see
    every call; importing an SDK nothing uses just to hook it would cost seconds)."""
    from .import_watch import watch

    install()
    watch((name for name in _PROVIDERS if name not in _done), _hook_imported)


def _hook_imported(name: str) -> None:
    # Imported mid-run, where no caller takes notices: they go to the capture's log.
    for notice in install():
        logging.getLogger("pytest_fluxloop.capture").warning("%s", notice)


def uninstall() -> None:
    """Unhook every provider SDK :func:`install` hooked, and stop watching imports
    (tests: each starts unhooked)."""
    from .import_watch import unwatch

    unwatch()
    for name in list(_done):
        _done.discard(name)
        if name == "openai":
            from .openai import uninstall as uninstall_openai

            uninstall_openai()
        else:
            from .anthropic import uninstall as uninstall_anthropic

            uninstall_anthropic()


@contextmanager
def case_capture(ctx: TraceContext) -> Iterator[list[str]]:
    """Capture for the block what ``ctx.capture`` asks for; yields notices to record.

    LLM capture needs nothing per case (the hooks look up the current trace); LangChain's
    handler is made current for the block, so runnables invoked outside any case are never
    touched.
    """
    # A cassette needs the hooks even when capture.llm is off: they replay and record.
    notices = install() if ctx.capture.llm or current_tape.get() is not None else []
    token: Any = None
    if ctx.capture.langchain and "langchain_core" in sys.modules:
        from .langchain import activate

        token, more = activate(ctx)
        notices.extend(more)
    try:
        yield notices
    finally:
        if token is not None:
            from .langchain import deactivate

            deactivate(token)
