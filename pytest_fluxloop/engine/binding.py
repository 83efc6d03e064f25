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


@dataclass(frozen=True)
class BindingPlan:
    """How to call the agent: leading positional-only parameters, then keywords.

    ``positional`` lists the positional-only parameters FluxLoop fills, in order (the input
    and/or optional names); ``keywords`` the others it passes by name.
    """

    input_param: str
    positional: tuple[str, ...]
    keywords: tuple[str, ...]

    @property
    def extras(self) -> tuple[str, ...]:
        """The optional values the agent declares (besides the input)."""
        return tuple(n for n in (*self.positional, *self.keywords) if n != self.input_param)

    def bind(self, text: Any, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments for one call: the input plus the declared extras found in ``values``."""
        merged = {**values, self.input_param: text}
        args = tuple(merged.get(name) for name in self.positional)
        kwargs = {name: merged[name] for name in self.keywords if name in merged}
        return args, kwargs


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
        return BindingPlan("input", ("input",), ())
    if input_param.kind is inspect.Parameter.KEYWORD_ONLY and input_param.name not in INPUT_NAMES:
        raise TargetError(
            f"runner.target {spec!r}: keyword-only parameter '{input_param.name}' can't take "
            f"the input; name it one of {', '.join(INPUT_NAMES)}"
        )
    fillable = {input_param.name, *OPTIONAL_NAMES}
    positional: list[str] = []
    keywords: list[str] = []
    unfilled: list[str] = []
    blocked = False  # a positional-only parameter we can't fill ends the positional run
    for p in params:
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            if p.name in fillable and not blocked:
                positional.append(p.name)
                continue
            blocked = True
            if p.default is p.empty:
                unfilled.append(p.name)
        elif p.name in fillable:
            keywords.append(p.name)
        elif p.default is p.empty:
            unfilled.append(p.name)
    if unfilled:
        raise TargetError(
            f"runner.target {spec!r}: parameter(s) {', '.join(unfilled)} have no default and "
            f"FluxLoop cannot supply them; give them defaults. FluxLoop passes the input plus "
            f"any of: {', '.join(OPTIONAL_NAMES)}"
        )
    if input_param.name not in positional and input_param.name not in keywords:
        raise TargetError(
            f"runner.target {spec!r}: positional-only input '{input_param.name}' comes after "
            "a positional-only parameter FluxLoop can't fill; make the input the first parameter"
        )
    return BindingPlan(input_param.name, tuple(positional), tuple(keywords))
