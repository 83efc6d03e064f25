"""Bind a case to the agent's parameters by name, once per target.

The input goes to the first of ``INPUT_NAMES`` the agent declares, else to its first
parameter. ``persona``, ``iteration``, ``conversation_state``, ``auto_approve``, ``metadata``
and ``seed`` are passed only to agents that declare them. A required parameter FluxLoop
cannot fill is an error before any case runs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from ..errors import TargetError

INPUT_NAMES = ("input_text", "input", "message", "query", "text", "content", "user_message")
OPTIONAL_NAMES = ("persona", "iteration", "conversation_state", "auto_approve", "metadata", "seed")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True)
class BindingPlan:
    """Which parameter takes the input, and which optional values the agent wants."""

    input_param: str
    input_positional_only: bool
    extras: tuple[str, ...]

    def bind(self, text: Any, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments for one call: the input plus the declared extras found in ``values``."""
        kwargs = {name: values[name] for name in self.extras if name in values}
        if self.input_positional_only:
            return (text,), kwargs
        kwargs[self.input_param] = text
        return (), kwargs


def plan_binding(signature: inspect.Signature, spec: str) -> BindingPlan:
    """Plan the call for ``signature``; TargetError if the agent can't be called with an input."""
    params = [
        p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    by_name = {p.name: p for p in params}
    input_param = next((by_name[n] for n in INPUT_NAMES if n in by_name), None)
    if input_param is None:
        candidates = [p for p in params if p.name not in OPTIONAL_NAMES]
        input_param = candidates[0] if candidates else None
    if input_param is None:
        accepts_any = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
        if not accepts_any:
            raise TargetError(
                f"runner.target {spec!r}: the agent takes no parameter for the input; declare one "
                f"(e.g. def run(input_text: str)); recognised names: {', '.join(INPUT_NAMES)}"
            )
        return BindingPlan("input", True, ())
    if input_param.kind is inspect.Parameter.KEYWORD_ONLY and input_param.name not in INPUT_NAMES:
        raise TargetError(
            f"runner.target {spec!r}: keyword-only parameter '{input_param.name}' can't take "
            f"the input; name it one of {', '.join(INPUT_NAMES)}"
        )
    extras = tuple(name for name in OPTIONAL_NAMES if name in by_name)
    missing = [
        p.name
        for p in params
        if p.default is p.empty and p is not input_param and p.name not in OPTIONAL_NAMES
    ]
    if missing:
        raise TargetError(
            f"runner.target {spec!r}: parameter(s) {', '.join(missing)} have no default and "
            f"FluxLoop cannot supply them; give them defaults. FluxLoop passes the input plus "
            f"any of: {', '.join(OPTIONAL_NAMES)}"
        )
    positional_only = input_param.kind is inspect.Parameter.POSITIONAL_ONLY
    if positional_only:
        # A positional-only input must come first; anything before it would need a value.
        first = params[0]
        if first is not input_param:
            raise TargetError(
                f"runner.target {spec!r}: positional-only '{input_param.name}' must be the "
                "first parameter"
            )
    return BindingPlan(input_param.name, positional_only, extras)
