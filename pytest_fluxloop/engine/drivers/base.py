"""The driver contract: what the executor hands a driver and what it gets back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ...records import ErrorInfo, MultiTurnInfo

if TYPE_CHECKING:
    from ...plan import Case

Resolve = Callable[[Any], Any]
"""Turns an agent's return value into a concrete value (awaits awaitables on the shared loop)."""


@dataclass
class DriverOutcome:
    """The result of one attempt, as the driver saw it.

    ``agent_error`` is set when the agent raised (the executor treats it like any agent
    failure, retries included; a driver may also simply let the exception propagate);
    ``supervisor_error`` when a simulator failed (recorded as ``status: supervisor_error``,
    never as an agent failure). Whatever was produced before a failure is kept.
    """

    output: Any = None
    agent_error: BaseException | None = None
    supervisor_error: ErrorInfo | None = None
    fatal: bool = False
    """A configuration problem every case would hit (bad key, unknown model): stop the run."""
    multi_turn: MultiTurnInfo | None = None
    conversation_state: dict[str, Any] | None = None
    token_usage: dict[str, Any] | None = None
    """Token counts the driver tallied itself, by role (``{"supervisor": {prompt_tokens,
    completion_tokens, total_tokens, calls}}``; the trace's own shape also works); the
    record builder adds them to the trace's by-role sums (``engine.record``)."""
    persona: str | None = None
    """The persona the agent was actually played with, if not the case's own."""


class Binder(Protocol):
    """Builds the arguments of one call of the agent from a message (one turn's input).

    :class:`~..binding.BindingPlan` binds by parameter name; the replay session
    (:mod:`..replay`) rebuilds a recorded call with the message at
    ``replay_args.override_param_path``. Drivers only ever call :meth:`bind`.
    """

    def bind(self, text: Any, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` for one call with ``text`` as the input and the optional
        ``values`` (persona, conversation, ...) the agent may declare."""
        ...


class Driver(Protocol):
    """Drives the agent through one attempt of a case (called on the attempt's thread)."""

    def run(
        self,
        agent: Callable[..., Any],
        case: Case,
        binding: Binder,
        values: dict[str, Any],
        resolve: Resolve,
    ) -> DriverOutcome:
        """Run the attempt; ``values`` are the optional agent arguments for this case."""
        ...
