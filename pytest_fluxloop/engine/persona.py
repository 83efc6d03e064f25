"""The persona value an agent receives: its name as a ``str``, its profile as attributes.

Agents written for pytest-fluxloop treat ``persona`` as the persona's name; agents written
for the earlier FluxLoop tool read ``persona.description``, ``persona.goals`` and so on.
:class:`AgentPersona` serves both: it *is* the name (``persona == "novice_user"``, string
methods, JSON, hashing all behave as the plain name) and carries the profile alongside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PROFILE_FIELDS = (
    "name",
    "description",
    "characteristics",
    "language",
    "expertise_level",
    "goals",
    "constraints",
    "custom_attributes",
)
"""The profile fields of a persona (those of ``configs/input.yaml`` personas)."""


class AgentPersona(str):
    """A persona's name (the ``str`` value) with its profile as attributes
    (:data:`PROFILE_FIELDS`)."""

    name: str
    description: str | None
    characteristics: list[str]
    language: str | None
    expertise_level: str | None
    goals: list[str]
    constraints: list[str]
    custom_attributes: dict[str, Any]

    def __new__(
        cls,
        name: str,
        description: str | None = None,
        characteristics: Iterable[str] = (),
        language: str | None = None,
        expertise_level: str | None = None,
        goals: Iterable[str] = (),
        constraints: Iterable[str] = (),
        custom_attributes: Mapping[str, Any] | None = None,
    ) -> AgentPersona:
        """``AgentPersona("novice_user", "new to the shop", goals=["get a refund"])``."""
        persona = super().__new__(cls, name)
        persona.name = str(name)
        persona.description = description
        persona.characteristics = list(characteristics)
        persona.language = language
        persona.expertise_level = expertise_level
        persona.goals = list(goals)
        persona.constraints = list(constraints)
        persona.custom_attributes = dict(custom_attributes or {})
        return persona

    @classmethod
    def from_profile(
        cls, name: str, profile: Mapping[str, Any] | None, description: str | None = None
    ) -> AgentPersona:
        """The persona ``name`` with ``profile`` (a config persona as a dict, or None);
        ``description``, when given, wins over the profile's (it is the case's own)."""
        data = dict(profile or {})
        return cls(
            name,
            description=description or data.get("description"),
            characteristics=_strings(data.get("characteristics")),
            language=data.get("language"),
            expertise_level=data.get("expertise_level"),
            goals=_strings(data.get("goals")),
            constraints=_strings(data.get("constraints")),
            custom_attributes=_mapping(data.get("custom_attributes")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The profile as a plain dict (``name``, ``description``, ``characteristics`` ...)."""
        return {
            "name": self.name,
            "description": self.description,
            "characteristics": list(self.characteristics),
            "language": self.language,
            "expertise_level": self.expertise_level,
            "goals": list(self.goals),
            "constraints": list(self.constraints),
            "custom_attributes": dict(self.custom_attributes),
        }

    def to_prompt(self) -> str:
        """A short text describing the persona (what ``persona_prompt`` receives)."""
        return persona_prompt(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # Copies and pickles rebuild the whole persona, not just the name.
        return (_rebuild, (str(self), self.to_dict()))


def persona_prompt(persona: AgentPersona) -> str:
    """``Persona: name`` plus the description, characteristics, goals and constraints that
    are set."""
    lines = [f"Persona: {persona.name}"]
    if persona.description:
        lines.append(f"Description: {persona.description}")
    if persona.characteristics:
        lines.append(f"Characteristics: {', '.join(persona.characteristics)}")
    if persona.goals:
        lines.append(f"Goals: {', '.join(persona.goals)}")
    if persona.constraints:
        lines.append(f"Constraints: {', '.join(persona.constraints)}")
    return "\n".join(lines)


def _rebuild(name: str, profile: dict[str, Any]) -> AgentPersona:
    return AgentPersona.from_profile(name, profile)


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return []
