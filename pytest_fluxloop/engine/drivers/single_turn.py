"""The single-turn driver: one call of the agent with the case's input."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import Binder, DriverOutcome, Resolve

if TYPE_CHECKING:
    from ...plan import Case


class SingleTurnDriver:
    """Calls the agent once; its exception propagates to the executor as the agent's error."""

    def run(
        self,
        agent: Callable[..., Any],
        case: Case,
        binding: Binder,
        values: dict[str, Any],
        resolve: Resolve,
    ) -> DriverOutcome:
        """Bind the input and the declared extras, call the agent, resolve its result."""
        args, kwargs = binding.bind(case.input, values)
        return DriverOutcome(output=resolve(agent(*args, **kwargs)))
