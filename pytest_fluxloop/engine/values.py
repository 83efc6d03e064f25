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


def case_values(case: Case, *, auto_approve: bool, service_context: str | None) -> dict[str, Any]:
    """Every optional value for a single call with the case's input (one turn)."""
    metadata = dict(case.metadata)
    # A single turn is a conversation of one user message, in the same shape as a
    # multi-turn conversation_state, so agents read it one way.
    turn = {"role": "user", "content": case.input}
    state = {
        "turns": [dict(turn)],
        "metadata": dict(case.metadata),
        "context": {"persona": case.persona, "service_context": service_context},
    }
    return {
        **persona_values(case.persona, case.persona_profile, case.persona_description),
        "iteration": case.iteration,
        "run_iteration": case.iteration,
        "metadata": metadata,
        "auto_approve": auto_approve,
        "auto_approve_tools": auto_approve,
        "seed": case.seed,
        **conversation_values(state, [turn]),
    }
