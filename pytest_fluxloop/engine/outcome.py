"""What a multi-turn conversation hands back to the executor (the seam between the two).

The executor runs attempts, deadlines and retries; a conversation runner plugged into it
(``CaseExecutor(conversation=...)``) drives agent turns and the supervisor inside one
attempt and returns a ``ConversationOutcome``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..records import ErrorInfo, MultiTurnInfo

if TYPE_CHECKING:
    from ..plan.cases import Case
    from .binding import BindingPlan

Resolve = Callable[[Any], Any]
"""Turns an agent's return value into a concrete value (awaits awaitables on the case's loop)."""


@dataclass
class ConversationOutcome:
    """The result of one conversation attempt.

    ``agent_error`` is set when the agent raised mid-conversation (the executor treats it
    like a single-turn agent error, retries included); ``supervisor_error`` when the
    simulator failed (recorded as ``status: supervisor_error``, never as an agent failure).
    The partial transcript is kept in both cases.
    """

    output: Any
    multi_turn: MultiTurnInfo
    conversation_state: dict[str, Any]
    token_usage: dict[str, Any] | None = None
    agent_error: BaseException | None = None
    supervisor_error: ErrorInfo | None = None
    fatal: bool = False
    """A configuration problem (bad key, unknown model): stop the run instead of every case."""
    extra: dict[str, Any] = field(default_factory=dict)


class ConversationRunner(Protocol):
    """Drives one multi-turn conversation inside an attempt."""

    def run(
        self,
        agent: Callable[..., Any],
        case: Case,
        binding: BindingPlan,
        values: dict[str, Any],
        resolve: Resolve,
    ) -> ConversationOutcome:
        """Run the conversation; ``values`` are the optional agent arguments for this case."""
        ...
