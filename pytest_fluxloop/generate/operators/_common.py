"""What every operator family shares: the :class:`Variation` record, the request it gets,
the de-duplicating collector and small text helpers.

Nothing here holds state between calls and nothing iterates a ``set`` of strings: set order
depends on ``PYTHONHASHSEED``, and the output must be byte-identical from one process to the
next for the same seed. Tables are tuples or dicts (ordered), randomness comes only from the
``random.Random`` a request carries.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...config.models import Persona
from ...errors import ConfigError

__all__ = [
    "GREETING_START",
    "MAX_TEMPERATURE",
    "THANKS_END",
    "Maker",
    "Request",
    "UnsupportedStrategy",
    "Variation",
    "capitalize_first",
    "collect",
    "end_sentence",
    "lowercase_first",
    "match_case",
    "normalized_key",
    "split_sentences",
    "split_terminal",
    "surround",
    "word_spans",
]

#: The range ``variation_temperature`` is validated to in ``input.yaml``.
MAX_TEMPERATURE = 2.0

#: An English greeting opening a text (``Hi,``, ``Hello there!``): rules that add a greeting
#: replace it or leave the text alone instead of greeting twice.
GREETING_START = re.compile(
    r"^(?:hi|hello|hey|good (?:morning|afternoon|evening))(?: there)?\b[\s,!.]*", re.IGNORECASE
)
#: English thanks closing a text (``Thanks!``, ``Thank you so much.``), the same for closings.
THANKS_END = re.compile(
    r"(?<![\w'])(?:thanks|thank you|thx|cheers|regards)(?: (?:so|very) much| a lot)?"
    r"(?: in advance)?(?=[\s.!]*$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Variation:
    """One generated variation of a base input.

    Attributes:
        text: The variation itself.
        operator: ``"<strategy>.<rule>"``, e.g. ``"rephrase.synonyms"``, ``"typo.adjacent_key"``.
        params: The rule's parameters (JSON-safe: str, int, float, bool, lists and dicts of
            them), recorded as provenance next to the generated input.
    """

    text: str
    operator: str
    params: dict[str, Any] = field(default_factory=dict)


class UnsupportedStrategy(ConfigError):
    """A strategy the deterministic operators cannot serve (``custom``, an unknown name, or
    ``multilingual`` for a language the rule tables do not have).

    ``str(err)`` names the strategy and what to do instead; :attr:`strategy` holds the name.
    """

    def __init__(self, message: str, *, strategy: str | None = None) -> None:
        super().__init__(message)
        self.strategy = strategy


@dataclass(frozen=True)
class Request:
    """One :func:`~pytest_fluxloop.generate.operators.apply` call, as the families see it.

    ``strength`` is ``temperature / 2``: 0.0 for the mildest changes, 1.0 for the strongest.
    """

    strategy: str
    text: str
    persona: Persona | None
    count: int
    rng: random.Random
    temperature: float
    language: str | None

    @property
    def strength(self) -> float:
        """``temperature`` scaled to 0..1."""
        return min(max(self.temperature, 0.0), MAX_TEMPERATURE) / MAX_TEMPERATURE


#: One rule of a family, bound to one text: draws from the rng and returns a candidate, or
#: ``None`` when this draw could not make one (the family leaves out, as ``None``, rules that
#: cannot apply to the text at all).
Maker = Callable[[random.Random], "Variation | None"]


def normalized_key(text: str) -> str:
    """The form two variations are compared in: whitespace runs collapsed, case-folded."""
    return " ".join(text.split()).casefold()


def collect(
    request: Request,
    *tiers: Sequence[Maker | None],
    attempts_per_maker: int = 12,
) -> list[Variation]:
    """Up to ``request.count`` variations from the makers, distinct from the base and each other.

    A ``None`` in place of a maker is a rule that does not apply to this text (families
    find that out once, up front, instead of letting the rule miss again and again).
    ``tiers`` are tried in order: a later tier only fills what the earlier ones could not
    (e.g. a generic framing only when no template or synonym applies). Within a tier the
    makers take turns (round-robin from a seeded start) so one call mixes the family's rules
    instead of drawing every variation from the first one. A maker that misses (``None`` or
    a duplicate) ``attempts_per_maker`` times in a row is retired, and a tier stops after
    ``attempts_per_maker`` draws per maker and per wanted variation: fewer variations than
    asked is a normal result (the caller reports it), never an error.
    """
    seen = {normalized_key(request.text)}
    found: list[Variation] = []
    for tier in tiers:
        if len(found) >= request.count:
            break
        active = [maker for maker in tier if maker is not None]
        if not active:
            continue
        misses = [0] * len(active)
        budget = attempts_per_maker * len(active) * (request.count - len(found) + 1)
        turn = request.rng.randrange(len(active))
        while len(found) < request.count and active and budget > 0:
            budget -= 1
            turn %= len(active)
            candidate = active[turn](request.rng)
            if candidate is not None:
                cleaned = candidate.text.strip()
                key = normalized_key(cleaned)
                if cleaned and key not in seen:
                    seen.add(key)
                    found.append(Variation(cleaned, candidate.operator, candidate.params))
                    misses[turn] = 0
                    turn += 1
                    continue
            misses[turn] += 1
            if misses[turn] >= attempts_per_maker:
                del active[turn]
                del misses[turn]
            else:
                turn += 1
    return found


_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def word_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every word (letters, with inner apostrophes: ``don't``) in ``text``."""
    return [m.span() for m in _WORD.finditer(text)]


def match_case(replacement: str, original: str) -> str:
    """``replacement`` in the case pattern of ``original`` (``Get`` -> ``Obtain``, ``GET``...)."""
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return capitalize_first(replacement)
    return replacement


def capitalize_first(text: str) -> str:
    """``text`` with its first letter upper-cased and the rest untouched (unlike ``str.title``)."""
    for i, char in enumerate(text):
        if char.isalpha():
            return text[:i] + char.upper() + text[i + 1 :]
    return text


def lowercase_first(text: str) -> str:
    """``text`` with its first letter lower-cased, unless it is ``I`` or starts an acronym."""
    for i, char in enumerate(text):
        if char.isalpha():
            word = re.match(r"[^\W\d_]+", text[i:])
            token = word.group(0) if word else char
            if token == "I" or token.startswith("I'") or (len(token) > 1 and token.isupper()):
                return text
            return text[:i] + char.lower() + text[i + 1 :]
    return text


_TERMINAL = re.compile(r"[\s.?!…]*$")


def split_terminal(text: str) -> tuple[str, str]:
    """``("How do I start", "?")``: the text without its closing punctuation, and that."""
    stripped = text.strip()
    match = _TERMINAL.search(stripped)
    end = match.start() if match else len(stripped)
    return stripped[:end], stripped[end:].strip()


_SENTENCE_BREAK = re.compile(r"(?<=[.?!…])\s+")


def split_sentences(text: str) -> list[str]:
    """``text`` cut after each ``.``, ``?``, ``!`` or ``…`` that a space follows."""
    return [part for part in _SENTENCE_BREAK.split(text.strip()) if part]


def surround(text: str, before: Sequence[str], after: Sequence[str]) -> str:
    """``text`` with sentences added before and after it, around its own greeting and thanks.

    ``Hi, how do I start? Thanks!`` with a sentence before and one after becomes ``Hi! <before>
    How do I start? <after> Thanks!``: the greeting stays first and the thanks last, as a
    person would write it.
    """
    text = text.strip()
    head = tail = ""
    greeting = GREETING_START.match(text)
    if before and greeting and greeting.end() < len(text):
        head = text[: greeting.end()].rstrip(" ,.!") + "!"
        text = capitalize_first(text[greeting.end() :])
    thanks = THANKS_END.search(text)
    if after and thanks and thanks.start() > 0:
        tail = text[thanks.start() :]
        text = text[: thanks.start()].rstrip()
    if after or tail:
        text = end_sentence(text)
    return " ".join(part for part in (head, *before, text, *after, tail) if part)


def end_sentence(text: str) -> str:
    """``text`` with a period when it ends in a letter or digit, so a sentence can follow it
    (``my order is late`` + ``Thanks!`` -> ``my order is late. Thanks!``)."""
    return f"{text}." if text[-1:].isalnum() else text
