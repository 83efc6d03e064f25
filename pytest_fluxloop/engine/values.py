"""The optional values a case offers the agent, by parameter name (see :mod:`.binding`).

Built fresh for every attempt (and every turn of a conversation), so what one call does to
a list or dict it received never reaches the next call or the record.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .persona import AgentPersona

if TYPE_CHECKING:
    from ..plan import Case
    from .binding import BindingPlan


def persona_values(
    name: str | None, profile: Mapping[str, Any] | None, description: str | None
) -> dict[str, Any]:
    """``persona``/``user_persona`` (one :class:`AgentPersona`), ``persona_description`` and
    ``persona_prompt``; all None without a persona (``description`` may still be set)."""
    if not name:
        return {
            "persona": None,
            "user_persona": None,
            "persona_description": description,
            "persona_prompt": None,
        }
    persona = AgentPersona.from_profile(name, profile, description)
    return {
        "persona": persona,
        "user_persona": persona,
        "persona_description": persona.description,
        "persona_prompt": persona.to_prompt(),
    }


def conversation_values(state: dict[str, Any], transcript: list[dict[str, Any]]) -> dict[str, Any]:
    """The conversation as the agent may ask for it.

    ``conversation_state``/``state``/``dialog_state`` are one object (``state``);
    ``messages`` is ``transcript`` (ending with the message the agent answers now) as
    ``{role, content}`` dicts; ``history``/``turns`` are the turns before that message.
    """
    messages = [{"role": t.get("role"), "content": t.get("content")} for t in transcript]
    return {
        "conversation_state": state,
        "state": state,
        "dialog_state": state,
        "messages": messages,
        "history": copy.deepcopy(messages[:-1]),
        "turns": copy.deepcopy(messages[:-1]),
    }


PERSONA_NAMES = ("persona", "user_persona", "persona_description", "persona_prompt")
CONVERSATION_NAMES = ("conversation_state", "state", "dialog_state", "messages", "history", "turns")


def case_values(
    case: Case,
    *,
    auto_approve: bool,
    service_context: str | None,
    binding: BindingPlan | None = None,
) -> dict[str, Any]:
    """The optional values for a single call with the case's input (one turn).

    With ``binding``, the persona object and the conversation values are built only when
    the agent declares one of them: they are per-case work an agent taking just the input
    would pay for on every case.
    """
    values: dict[str, Any] = {
        "iteration": case.iteration,
        "run_iteration": case.iteration,
        "metadata": dict(case.metadata),
        "auto_approve": auto_approve,
        "auto_approve_tools": auto_approve,
        "seed": case.seed,
    }
    if binding is None or binding.wants(*PERSONA_NAMES):
        values.update(persona_values(case.persona, case.persona_profile, case.persona_description))
    if binding is None or binding.wants(*CONVERSATION_NAMES):
        # A single turn is a conversation of one user message, in the same shape as a
        # multi-turn conversation_state, so agents read it one way.
        turn = {"role": "user", "content": case.input}
        state = {
            "turns": [dict(turn)],
            "metadata": dict(case.metadata),
            "context": {"persona": case.persona, "service_context": service_context},
        }
        values.update(conversation_values(state, [turn]))
    return values
