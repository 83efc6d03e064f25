"""Bind a case to the agent's parameters by name, once per target.

The input goes to the first of ``INPUT_NAMES`` the agent declares, else to its first
parameter that is not one of ``CORE_NAMES``. Every name in ``OPTIONAL_NAMES`` is passed
only to agents that declare it:

* ``persona`` / ``user_persona``: the persona, a ``str`` subclass whose value is its name
  and whose attributes are its profile (:class:`~.persona.AgentPersona`);
  ``persona_description`` and ``persona_prompt``: its description, and a short text of it;
* ``iteration`` / ``run_iteration``, ``seed``, ``metadata``;
* ``conversation_state`` / ``state`` / ``dialog_state`` (one object), ``messages`` (the
  conversation as ``{role, content}`` dicts, ending with the current user message),
  ``history`` / ``turns`` (the turns before the current message);
* ``auto_approve`` / ``auto_approve_tools``.

The aliases are the names agents written for the earlier FluxLoop tool declare. Keyword
arguments from ``runner.args`` go to the parameters of the same name (or to ``**kwargs``).
A required parameter FluxLoop cannot fill is an error before any case runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import TargetError

INPUT_NAMES = ("input_text", "input", "message", "query", "text", "content", "user_message")
CORE_NAMES = ("persona", "iteration", "conversation_state", "auto_approve", "metadata", "seed")
"""The optional names the input never falls back to. The later aliases are not among them,
so an agent whose first parameter is e.g. ``messages`` still gets the input there, as it did
before those names were filled (and as the earlier tool did)."""
OPTIONAL_NAMES = (
    *CORE_NAMES,
    "user_persona",
    "persona_description",
    "persona_prompt",
    "run_iteration",
    "state",
    "dialog_state",
    "messages",
    "history",
    "turns",
    "auto_approve_tools",
)
"""Every value FluxLoop fills for an agent that declares the name."""


@dataclass(frozen=True)
class BindingPlan:
    """How to call the agent: leading positional-only parameters, then keywords.

    ``positional`` lists the positional-only parameters FluxLoop fills, in order (the input,
    optional names and ``runner.args``); ``keywords`` the others it passes by name.
    ``args`` are the ``runner.args`` values passed (declared, or taken by ``**kwargs``);
    ``ignored_args`` the ``runner.args`` keys the agent has no parameter for.
    """

    input_param: str
    positional: tuple[str, ...]
    keywords: tuple[str, ...]
    args: Mapping[str, Any] = field(default_factory=dict)
    ignored_args: tuple[str, ...] = ()

    @property
    def extras(self) -> tuple[str, ...]:
        """The optional values the agent declares (besides the input and ``runner.args``)."""
        return tuple(
            n
            for n in (*self.positional, *self.keywords)
            if n != self.input_param and n not in self.args
        )

    @functools.cached_property
    def declared(self) -> frozenset[str]:
        """Every parameter FluxLoop passes (computed once: it is asked on every case)."""
        return frozenset((*self.positional, *self.keywords))

    def wants(self, *names: str) -> bool:
        """Whether the agent takes any of ``names`` (to skip building values nobody reads)."""
        return not self.declared.isdisjoint(names)

    def bind(self, text: Any, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments for one call: the input, the declared extras found in ``values``, and
        ``runner.args``."""
        merged = {**values, **self.args, self.input_param: text}
        args = tuple(merged.get(name) for name in self.positional)
        kwargs = {name: merged[name] for name in self.keywords if name in merged}
        return args, kwargs


def plan_binding(
    signature: inspect.Signature, spec: str, args: Mapping[str, Any] | None = None
) -> BindingPlan:
    """Plan the call for ``signature`` with ``runner.args`` ``args``; TargetError if the agent
    can't be called with an input, or an arg names a value FluxLoop passes itself."""
    args = dict(args or {})
    params = [
        p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    by_name = {p.name: p for p in params}
    input_param = next((by_name[n] for n in INPUT_NAMES if n in by_name), None)
    if input_param is None:
        # An arg is never the input: the user gave its value.
        candidates = [p for p in params if p.name not in CORE_NAMES and p.name not in args]
        input_param = candidates[0] if candidates else None
    if input_param is None:
        accepts_any = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
        if not accepts_any:
            raise TargetError(
                f"runner.target {spec!r}: the agent takes no parameter for the input; declare one "
                f"(e.g. def run(input_text: str)); recognised names: {', '.join(INPUT_NAMES)}"
            )
        input_name = "input"
    else:
        input_name = input_param.name
    _check_args(args, input_name, spec)
    if input_param is None:
        return _var_positional_plan(signature, args)
    if input_param.kind is inspect.Parameter.KEYWORD_ONLY and input_param.name not in INPUT_NAMES:
        raise TargetError(
            f"runner.target {spec!r}: keyword-only parameter '{input_param.name}' can't take "
            f"the input; name it one of {', '.join(INPUT_NAMES)}"
        )
    fillable = {input_param.name, *OPTIONAL_NAMES, *args}
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
            f"FluxLoop cannot supply them; give them defaults, or values in runner.args. "
            f"FluxLoop passes the input plus any of: {', '.join(OPTIONAL_NAMES)}"
        )
    if input_param.name not in positional and input_param.name not in keywords:
        raise TargetError(
            f"runner.target {spec!r}: positional-only input '{input_param.name}' comes after "
            "a positional-only parameter FluxLoop can't fill; make the input the first parameter"
        )
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    declared = set(positional) | set(keywords)
    ignored = tuple(k for k in args if k not in declared and not takes_kwargs)
    # Undeclared args reach an agent with **kwargs by name.
    keywords.extend(k for k in args if k not in declared and takes_kwargs)
    passed = {k: v for k, v in args.items() if k not in ignored}
    return BindingPlan(input_param.name, tuple(positional), tuple(keywords), passed, ignored)


def _var_positional_plan(signature: inspect.Signature, args: dict[str, Any]) -> BindingPlan:
    # def run(*args, **kwargs): the input goes first, positionally; args only by **kwargs.
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if takes_kwargs:
        return BindingPlan("input", ("input",), tuple(args), args, ())
    return BindingPlan("input", ("input",), (), {}, tuple(args))


def _check_args(args: Mapping[str, Any], input_name: str, spec: str) -> None:
    """An arg may not take the place of the input or of a value FluxLoop fills."""
    for key in args:
        if key == input_name:
            raise TargetError(
                f"runner.args.{key}: '{key}' is the parameter of runner.target {spec!r} that "
                "receives each case's input; remove it from runner.args"
            )
        if key in OPTIONAL_NAMES:
            raise TargetError(
                f"runner.args.{key}: FluxLoop fills '{key}' itself for every case (one of "
                f"{', '.join(OPTIONAL_NAMES)}); remove it from runner.args"
            )
