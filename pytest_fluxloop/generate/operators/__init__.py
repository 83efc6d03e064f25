"""Deterministic variation operators, one family per module, behind one entry point.

Contract (used by the generation core): :func:`apply` turns one base input into up to
``count`` variations for one strategy, drawing every random choice from the ``rng`` it is
given (never the global ``random`` module), so the same seed gives the same variations.

The families, all rule-based and offline (no dependency beyond the standard library):

* ``rephrase`` (:mod:`.rephrase`) - question templates, synonym tables, contractions.
* ``verbose`` / ``concise`` (:mod:`.length`) - added sentences; dropped filler,
  abbreviations, telegraphic keywords.
* ``typo`` / ``error_prone`` (:mod:`.noise`) - keyboard slips (adjacent keys, swaps, drops,
  doubles); plus misspellings, homophones, missing apostrophes and punctuation, run-together
  words.
* ``persona_based`` (:mod:`.persona`) - sentences built from the persona's fields.
* ``adversarial`` (:mod:`.adversarial`) - prompt-injection and policy-probing templates,
  leetspeak, homoglyphs, zero-width characters, Base64, ROT13.
* ``multilingual`` (:mod:`.multilingual`) - exact phrase-table translations (es, fr, de) and
  code-switched variants (es, fr, de, pt, it); anything else needs LLM mode.

``custom`` has no rules: it needs LLM mode or the user's own inputs file.

Guarantees of every call: the variations differ from the base text and from each other
(compared with whitespace runs collapsed and case folded); there are at most ``count`` of
them and fewer only when the rules cannot make more (never an error); the same arguments
and rng state give the same list; ``temperature`` (0-2) scales how strong the changes are;
the global ``random`` state is not touched. Each :class:`Variation` names its rule
(``operator``) and the rule's parameters (``params``, JSON-safe) for provenance.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ...config.models import Persona

# The family modules are imported as modules (not their functions by name), so that
# ``operators.rephrase`` stays the module: a function of the same name would shadow it.
from . import adversarial, length, multilingual, noise, persona, rephrase
from ._common import MAX_TEMPERATURE, Request, UnsupportedStrategy, Variation

__all__ = ["STRATEGIES", "UnsupportedStrategy", "Variation", "apply"]

_FAMILIES: dict[str, Callable[[Request], list[Variation]]] = {
    "rephrase": rephrase.rephrase,
    "verbose": length.verbose,
    "concise": length.concise,
    "typo": noise.typo,
    "error_prone": noise.error_prone,
    "persona_based": persona.persona_based,
    "adversarial": adversarial.adversarial,
    "multilingual": multilingual.multilingual,
}

#: The strategy names :func:`apply` has rules for: every name ``input.yaml`` accepts except
#: ``custom`` (``multilingual`` can still raise for a language without tables).
STRATEGIES: frozenset[str] = frozenset(_FAMILIES)


def apply(
    strategy: str,
    text: str,
    *,
    persona: Persona | None,
    count: int,
    rng: random.Random,
    temperature: float = 0.7,
    language: str | None = None,
) -> list[Variation]:
    """Up to ``count`` variations of ``text`` for ``strategy``, drawn from ``rng`` only.

    Args:
        strategy: A name of :data:`STRATEGIES`.
        text: The base input.
        persona: The persona the variations are for: ``persona_based`` builds on its
            fields (and needs one), ``multilingual`` reads its ``language``, the other
            strategies ignore it.
        count: How many variations to make (0 gives none).
        rng: The generator every random choice comes from; the caller seeds it.
        temperature: 0 (mildest) to 2 (strongest change), as ``variation_temperature``.
        language: The target language of ``multilingual`` (a code or name); defaults to
            the persona's ``language``.

    Returns:
        Distinct variations, all different from ``text``; fewer than ``count`` (possibly
        none) when the rules cannot make more, e.g. ``concise`` of a one-word input.

    Raises:
        UnsupportedStrategy: ``custom`` (needs LLM mode or an inputs file), an unknown name,
            ``persona_based`` without a persona, or ``multilingual`` for a language the
            tables do not have.
        ValueError: a negative ``count`` or a ``temperature`` outside 0-2 (``input.yaml``
            cannot hold either: a caller bug).
    """
    if strategy == "custom":
        raise UnsupportedStrategy(
            "strategy 'custom' has no deterministic rules: custom needs LLM mode "
            "(--mode llm, with input_generation.llm.strategy_prompts.custom) or your own "
            "inputs file (inputs_file in input.yaml)",
            strategy="custom",
        )
    family = _FAMILIES.get(strategy)
    if family is None:
        raise UnsupportedStrategy(
            f"unknown variation strategy {strategy!r}: the deterministic mode knows "
            f"{', '.join(sorted(STRATEGIES))} (and custom needs --mode llm)",
            strategy=strategy,
        )
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise ValueError(f"temperature must be between 0 and {MAX_TEMPERATURE}, got {temperature}")
    request = Request(strategy, text, persona, count, rng, float(temperature), language)
    if count == 0 or not text.strip():
        return []
    return family(request)
