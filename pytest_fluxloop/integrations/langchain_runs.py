"""A LangChain run in progress, as the handler keeps it (see :mod:`.langchain_handler`)."""

from __future__ import annotations

import contextlib
import time
from contextvars import Token
from typing import Any

from ..sdk.context import current_role, framework_generation
from ..sdk.generation import Generation

__all__ = ["OpenModelRun", "Run"]


class OpenModelRun(str):
    """The value of :data:`framework_generation` while one model run is open: the string
    ``"langchain"``, false once the run ended.

    The handler resets the variable when the run ends, but LangChain may end an async run
    from another task (``agenerate`` gathers its ``on_llm_end`` calls), where the caller's
    context cannot be reset; there the value left behind is false, so a provider capture that
    tests it (``if framework_generation.get():``) records the caller's later calls again.
    """

    open: bool

    def __new__(cls) -> OpenModelRun:
        run = super().__new__(cls, "langchain")
        run.open = True
        return run

    def __bool__(self) -> bool:
        return self.open


class Run:
    """A LangChain run in progress."""

    __slots__ = (
        "anchor",
        "framework",
        "framework_token",
        "generation",
        "kind",
        "metadata",
        "model",
        "name",
        "observation_id",
        "parent_id",
        "role",
        "t0",
    )

    def __init__(
        self,
        *,
        anchor: str | None,
        parent_id: str | None,
        name: str = "",
        kind: str = "chain",
        observation_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        generation: Generation | None = None,
        model: Any = None,
    ) -> None:
        self.anchor = anchor  # what the run's children attach to
        self.parent_id = parent_id
        self.name = name
        self.kind = kind
        self.observation_id = observation_id  # None: hidden, not recorded
        self.metadata = metadata or {}
        self.generation = generation
        self.model = model
        self.role = current_role.get()
        self.t0 = time.perf_counter()
        self.framework: OpenModelRun | None = None
        self.framework_token: Token[str | None] | None = None

    def release(self) -> None:
        """End the run's hold on :data:`framework_generation` (model runs)."""
        if self.framework is None:
            return
        self.framework.open = False
        token, self.framework_token = self.framework_token, None
        if token is not None:
            # Ended from another context, the reset fails: the value left there is false.
            with contextlib.suppress(ValueError, RuntimeError):
                framework_generation.reset(token)
