"""``persona_based``: the request as this persona would send it, built from its fields.

Each field gives sentences said before or after the unchanged request:

* ``expertise_level`` (or an expertise word in the persona's ``name``, such as
  ``novice_user``) - beginner, intermediate or expert phrasing (:data:`EXPERTISE`).
* ``characteristics`` - tone for the traits :data:`TRAITS` knows (polite, impatient,
  confused, frustrated, formal, casual, technical, sceptical, elderly); others are skipped.
* ``goals`` - ``I just want to <goal>.`` / ``My goal: <goal>.``
* ``description`` - ``A bit about me: <description>.``
* ``constraints`` - ``Keep in mind: <constraint>.``
* ``custom_attributes`` - ``For context, my <key> is <value>.`` (text and number values)
* ``language`` - a greeting in that language when the multilingual tables have it.

A variation is named after its first field (``persona_based.goals`` ...); ``temperature``
adds parts from other fields (params ``fields`` lists them all). A persona none of whose
fields gives a sentence gets no variations; no persona at all is an error (the strategy
needs the ``personas`` of ``input.yaml``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from ...config.models import Persona
from ._common import (
    GREETING_START,
    Maker,
    Request,
    UnsupportedStrategy,
    Variation,
    collect,
    lowercase_first,
    surround,
)
from .multilingual import CODE_SWITCH, resolve_language

__all__ = ["EXPERTISE", "EXPERTISE_WORDS", "TRAITS", "persona_based"]

#: Words in ``expertise_level`` (or the name) -> the level they mean. Longest phrases first.
EXPERTISE_WORDS: tuple[tuple[str, str], ...] = (
    ("first time", "beginner"), ("first-time", "beginner"), ("non-technical", "beginner"),
    ("beginner", "beginner"), ("novice", "beginner"), ("newcomer", "beginner"),
    ("new", "beginner"), ("basic", "beginner"), ("junior", "beginner"), ("layperson", "beginner"),
    ("intermediate", "intermediate"), ("regular", "intermediate"), ("average", "intermediate"),
    ("some experience", "intermediate"), ("moderate", "intermediate"),
    ("expert", "expert"), ("advanced", "expert"), ("power", "expert"), ("senior", "expert"),
    ("professional", "expert"), ("pro", "expert"), ("developer", "expert"),
    ("engineer", "expert"), ("technical", "expert"),
)  # fmt: skip

#: Level -> sentences said before and after the request.
EXPERTISE: dict[str, dict[str, tuple[str, ...]]] = {
    "beginner": {
        "before": (
            "I'm new to this, so sorry if it's a basic question.",
            "I'm not very technical.",
            "This is my first time doing this.",
        ),
        "after": (
            "Could you explain it in simple terms?",
            "Please keep it simple, step by step.",
            "What do the terms mean?",
        ),
    },
    "intermediate": {
        "before": ("I've used this a few times before.", "I know the basics already."),
        "after": ("A short summary of the steps is enough.", "Just point me to the right setting."),
    },
    "expert": {
        "before": ("Skip the basics, please.", "I've done this many times elsewhere."),
        "after": (
            "Exact steps or the API call, please.",
            "No need for screenshots, just the details.",
            "What are the edge cases?",
        ),
    },
}


@dataclass(frozen=True)
class _Trait:
    words: tuple[str, ...]
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


#: Trait name -> the words that signal it in a characteristic, and what it adds.
TRAITS: dict[str, _Trait] = {
    "polite": _Trait(
        ("polite", "courteous", "friendly", "kind"),
        before=("I hope you're having a good day.",),
        after=("Thank you so much for your help!", "Many thanks in advance."),
    ),
    "impatient": _Trait(
        ("impatient", "direct", "busy", "hurry", "urgent", "rushed"),
        before=("Quick one.",),
        after=("I need this sorted quickly.", "Please be brief."),
    ),
    "confused": _Trait(
        ("uncertain", "confused", "unsure", "hesitant", "anxious", "nervous"),
        before=("Sorry, I'm not sure this is the right place to ask.",),
        after=("Does that make sense?", "I hope that's clear."),
    ),
    "frustrated": _Trait(
        ("frustrated", "angry", "annoyed", "upset", "irritated"),
        before=("This is the third time I'm asking.", "I'm really frustrated."),
        after=("Please fix this now.", "This is not acceptable."),
    ),
    "formal": _Trait(
        ("formal", "professional"),
        before=("I am writing regarding the following matter.",),
        after=("Kind regards.", "Thank you for your assistance."),
    ),
    "casual": _Trait(
        ("casual", "informal", "relaxed", "laid-back"),
        after=("thx!", "cheers"),
    ),
    "technical": _Trait(
        ("technical", "detail-oriented", "detailed", "precise", "analytical"),
        after=(
            "Please include the exact steps and settings involved.",
            "Which setting or API endpoint controls this?",
        ),
    ),
    "sceptical": _Trait(
        ("skeptical", "sceptical", "distrustful", "cautious", "suspicious"),
        after=("Is this actually safe?", "Are there any hidden fees?"),
    ),
    "elderly": _Trait(
        ("elderly", "senior citizen", "older", "retired"),
        before=("I'm not very good with computers.",),
        after=("Please be patient with me.",),
    ),
}

#: Goals starting with one of these read as "I just want to <goal>".
_GOAL_VERBS = (
    "get", "find", "resolve", "understand", "learn", "fix", "buy", "cancel", "save", "compare",
    "know", "see", "solve", "return", "change", "track", "finish", "complete", "make", "avoid",
    "pay", "book", "set", "start", "check", "receive", "contact", "speak", "talk",
)  # fmt: skip

_GOAL_FORMS = ("I just want to {goal}.", "All I need is to {goal}.", "I'm trying to {goal}.")
_GOAL_NOUN_FORMS = ("My goal: {goal}.", "What I need: {goal}.")
_DESCRIPTION_FORMS = ("A bit about me: {text}.", "Some context: {text}.")
_CONSTRAINT_FORMS = ("Keep in mind: {text}.", "One thing to note: {text}.")
_ATTRIBUTE_FORMS = ("For context, my {key} is {value}.", "My {key}: {value}.")


@dataclass(frozen=True)
class _Part:
    field: str
    before: bool
    text: str
    greets: bool = False  # a greeting: left out when the request already greets


def _has_word(haystack: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", haystack) is not None


def _clause(text: str) -> str:
    """A field value as the inside of a sentence: trimmed, no final period, lower-case start."""
    return lowercase_first(text.strip().rstrip(".!;").strip())


def _expertise_parts(persona: Persona) -> list[_Part]:
    sources = [persona.expertise_level or "", persona.name.replace("_", " ")]
    for source in sources:
        folded = source.casefold()
        for word, level in EXPERTISE_WORDS:
            if _has_word(folded, word):
                phrases = EXPERTISE[level]
                return [_Part("expertise", True, s) for s in phrases["before"]] + [
                    _Part("expertise", False, s) for s in phrases["after"]
                ]
    return []


def _trait_parts(persona: Persona) -> list[_Part]:
    parts: list[_Part] = []
    texts = [c.casefold() for c in persona.characteristics]
    for trait in TRAITS.values():
        if any(_has_word(text, word) for text in texts for word in trait.words):
            parts += [_Part("characteristics", True, s) for s in trait.before]
            parts += [_Part("characteristics", False, s) for s in trait.after]
    return parts


def _goal_parts(persona: Persona) -> list[_Part]:
    parts: list[_Part] = []
    for goal in persona.goals:
        clause = _clause(goal)
        if not clause:
            continue
        first = clause.split()[0].casefold()
        if first == "to" and len(clause.split()) > 1:
            clause, first = clause[3:].lstrip(), clause.split()[1].casefold()
        forms = _GOAL_FORMS if first in _GOAL_VERBS else _GOAL_NOUN_FORMS
        parts += [_Part("goals", False, form.format(goal=clause)) for form in forms]
    return parts


def _text_parts(field: str, values: list[str], forms: tuple[str, ...]) -> list[_Part]:
    return [
        _Part(field, field == "description", form.format(text=_clause(value)))
        for value in values
        if _clause(value)
        for form in forms
    ]


def _attribute_parts(persona: Persona) -> list[_Part]:
    parts: list[_Part] = []
    for key, value in persona.custom_attributes.items():
        # Text and numbers read naturally; booleans, lists and mappings would not.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue
        shown = str(value).strip()
        if not shown:
            continue
        name = str(key).replace("_", " ").strip()
        parts += [
            _Part("custom_attributes", False, form.format(key=name, value=shown))
            for form in _ATTRIBUTE_FORMS
        ]
    return parts


def _language_parts(persona: Persona) -> list[_Part]:
    language = resolve_language(persona.language)
    if language is None or language not in CODE_SWITCH:
        return []
    return [
        _Part("language", True, f"{g}!", greets=True) for g in CODE_SWITCH[language]["greeting"]
    ]


def _persona_parts(persona: Persona) -> dict[str, list[_Part]]:
    """Every sentence the persona's fields give, by field (fields giving none are left out)."""
    by_field = {
        "expertise": _expertise_parts(persona),
        "characteristics": _trait_parts(persona),
        "goals": _goal_parts(persona),
        "description": _text_parts("description", [persona.description or ""], _DESCRIPTION_FORMS),
        "constraints": _text_parts("constraints", persona.constraints, _CONSTRAINT_FORMS),
        "custom_attributes": _attribute_parts(persona),
        "language": _language_parts(persona),
    }
    return {field: parts for field, parts in by_field.items() if parts}


def _make_persona(request: Request, by_field: dict[str, list[_Part]], first: str) -> Maker:
    def make(rng: random.Random) -> Variation | None:
        others = [field for field in by_field if field != first]
        extra = rng.randint(0, min(len(others), round(request.strength * 2)))
        fields = [first, *rng.sample(others, extra)]
        chosen = [rng.choice(by_field[field]) for field in fields]
        before = [p.text for p in chosen if p.before]
        after = [p.text for p in chosen if not p.before]
        text = surround(request.text, before, after)
        params: dict[str, Any] = {"persona": request.persona.name if request.persona else None}
        params["fields"] = fields
        return Variation(text, f"persona_based.{first}", params)

    return make


def persona_based(request: Request) -> list[Variation]:
    """Variations of ``request.text`` in the persona's voice (see the module docstring).

    Raises:
        UnsupportedStrategy: no persona was given.
    """
    if request.persona is None:
        raise UnsupportedStrategy(
            "strategy 'persona_based' needs a persona: add personas to input.yaml "
            "(name, description, characteristics, expertise_level, goals ...), or drop "
            "persona_based from variation_strategies",
            strategy="persona_based",
        )
    by_field = _persona_parts(request.persona)
    if GREETING_START.match(request.text.strip()):
        by_field = {
            field: kept
            for field, parts in by_field.items()
            if (kept := [part for part in parts if not part.greets])
        }
    return collect(request, [_make_persona(request, by_field, field) for field in by_field])
