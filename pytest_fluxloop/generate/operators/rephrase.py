"""``rephrase``: the same request in other words, by question templates and synonym tables.

Rules, tried in turn:

* ``rephrase.template`` - a sentence of a common shape (``How do I X?``, ``Can you X?``,
  ``I want to X`` ...) is rewritten into another shape of the same meaning
  (``What's the best way to X?``); the slot ``X`` is kept word for word.
* ``rephrase.synonyms`` - words and phrases from :data:`SYNONYMS` are swapped (``begin`` ->
  ``start``, ``Can you`` -> ``Could you``); ``temperature`` sets how many of the matches swap.
* ``rephrase.contraction`` - contractions are expanded or formed (``I'm`` <-> ``I am``).
* ``rephrase.frame`` - only when none of the above can make enough variations: a casual
  framing around the whole text (``Quick question: ...``).

At a higher ``temperature`` a template rewrite also gets synonym swaps. The tables are
English; other text only gets the framing.
"""

from __future__ import annotations

import random
import re
from typing import Any

from ._common import (
    Maker,
    Request,
    Variation,
    collect,
    lowercase_first,
    match_case,
    split_sentences,
    split_terminal,
)

__all__ = ["CONTRACTIONS", "FRAMES", "SYNONYMS", "TEMPLATES", "rephrase"]

#: Phrase -> replacements of the same meaning in the same grammatical slot. Matched as whole
#: words, case-insensitively; the longest match wins where entries overlap ("get started"
#: over "get"). Ambiguous words (``help``, ``change``, ``order``: noun or verb) only appear
#: inside a phrase that fixes their role.
SYNONYMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("how do I", ("how can I", "how would I")),
    ("how can I", ("how do I", "how would I")),
    ("can you", ("could you", "would you")),
    ("could you", ("can you", "would you")),
    ("is it possible to", ("can I",)),
    ("I want", ("I would like", "I'd like")),
    ("I need", ("I require",)),
    ("tell me", ("let me know",)),
    ("show me", ("walk me through",)),
    ("help me", ("assist me", "give me a hand")),
    ("need help", ("need assistance", "need some support")),
    ("where is", ("where's", "where can I find")),
    ("are you open", ("are you open for business",)),
    ("get started", ("start", "begin")),
    ("get in touch", ("reach out",)),
    ("a refund", ("a reimbursement", "my money back")),
    ("change my", ("update my", "modify my")),
    ("talk to", ("speak with", "speak to")),
    ("speak to", ("talk to",)),
    ("log in", ("sign in",)),
    ("sign in", ("log in",)),
    ("sign up", ("register",)),
    ("right now", ("immediately",)),
    ("as soon as possible", ("right away",)),
    ("doesn't work", ("isn't working", "is broken")),
    ("not working", ("broken",)),
    ("thank you", ("thanks", "many thanks")),
    ("thanks", ("thank you",)),
    ("begin", ("start",)),
    ("start", ("begin",)),
    ("get", ("obtain", "receive")),
    ("receive", ("get",)),
    ("obtain", ("get",)),
    ("buy", ("purchase",)),
    ("purchase", ("buy",)),
    ("problem", ("issue",)),
    ("issue", ("problem",)),
    ("fix", ("resolve", "repair")),
    ("find", ("locate",)),
    ("delete", ("remove",)),
    ("remove", ("delete",)),
    ("information", ("details", "info")),
    ("details", ("information",)),
    ("price", ("cost",)),
    ("cheap", ("inexpensive",)),
    ("shipping", ("delivery",)),
    ("delivery", ("shipping",)),
    ("package", ("parcel",)),
    ("item", ("product",)),
    ("product", ("item",)),
    ("store", ("shop",)),
    ("website", ("site",)),
    ("subscription", ("membership", "plan")),
    ("quickly", ("fast",)),
    ("hello", ("hi", "hey")),
    ("hi", ("hello", "hey")),
    ("please", ("kindly",)),
)

#: (name, sentence pattern, rewrites). The pattern matches a whole sentence without its
#: closing punctuation; ``{x}`` in a rewrite is the captured slot, kept word for word.
TEMPLATES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "how_to",
        r"how (?:do|can|could|should|would) i (?P<x>.+)",
        (
            "What's the best way to {x}?",
            "Could you tell me how to {x}?",
            "How would I {x}?",
            "Is there a way to {x}?",
            "What are the steps to {x}?",
            "Can you explain how to {x}?",
            "I'd like to know how to {x}.",
        ),
    ),
    (
        "where_to",
        r"where (?:do|can|should) i (?P<x>.+)",
        (
            "Where should I {x}?",
            "Where can I {x}?",
            "Where am I supposed to {x}?",
            "Could you tell me where to {x}?",
        ),
    ),
    (
        "ask_you",
        r"(?:can|could|would) you (?:please )?(?P<x>.+)",
        (
            "Could you please {x}?",
            "Are you able to {x}?",
            "Would you mind if I asked you to {x}?",
            "Is it possible for you to {x}?",
        ),
    ),
    (
        "may_i",
        r"(?:can|could|may) i (?P<x>.+)",
        (
            "Is it possible to {x}?",
            "Am I able to {x}?",
            "Would it be possible to {x}?",
            "Is there any way I can {x}?",
        ),
    ),
    (
        "want_to",
        r"i (?:want|need|would like|'d like) to (?P<x>.+)",
        (
            "I'd like to {x}.",
            "I'm trying to {x}.",
            "Can you help me {x}?",
            "I'm looking to {x}.",
        ),
    ),
    (
        "want_thing",
        r"i (?:want|need|would like|'d like) (?!to )(?P<x>.+)",
        (
            "I'd like {x}.",
            "I'm looking for {x}.",
            "Could I get {x}?",
            "Can I have {x}?",
        ),
    ),
    (
        "what_is",
        r"what(?: is|'s) (?P<x>.+)",
        (
            "Can you tell me {x}?",
            "I'd like to know {x}.",
            "Could you explain {x}?",
        ),
    ),
    (
        "is_there",
        r"is there (?P<x>.+)",
        (
            "Do you have {x}?",
            "Do you offer {x}?",
            "Can I find {x} somewhere?",
        ),
    ),
    (
        "do_you",
        r"do you (?P<x>.+)",
        (
            "Do you happen to {x}?",
            "Can you tell me if you {x}?",
            "I wonder if you {x}?",
        ),
    ),
    (
        "when",
        r"when (?P<x>(?:are|is|do|does|will|can) .+)",
        (
            "What time {x}?",
            "At what time {x}?",
        ),
    ),
)

#: Long form -> contraction. Flipped either way (``I am`` <-> ``I'm``); curly apostrophes are
#: matched too because phones type them.
CONTRACTIONS: tuple[tuple[str, str], ...] = (
    ("I am", "I'm"),
    ("I would", "I'd"),
    ("I will", "I'll"),
    ("do not", "don't"),
    ("does not", "doesn't"),
    ("did not", "didn't"),
    ("is not", "isn't"),
    ("are not", "aren't"),
    ("was not", "wasn't"),
    ("have not", "haven't"),
    ("has not", "hasn't"),
    ("will not", "won't"),
    ("cannot", "can't"),
    ("it is", "it's"),
    ("what is", "what's"),
    ("where is", "where's"),
    ("that is", "that's"),
    ("there is", "there's"),
    ("you are", "you're"),
    ("let us", "let's"),
)

#: Casual framings of the whole text: the fallback when no table entry matches.
FRAMES: tuple[str, ...] = (
    "Quick question: {text}",
    "So, {lower}",
    "Hey, {lower}",
    "Question: {text}",
    "Um, {lower}",
    "OK so {lower}",
)


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A whole-word, case-insensitive pattern for ``phrase`` (any spaces, either apostrophe)."""
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    body = body.replace("'", "['’]")
    return re.compile(rf"(?<![\w'’]){body}(?![\w'’])", re.IGNORECASE)


_SYNONYM_PATTERNS = tuple((_phrase_pattern(p), alts) for p, alts in SYNONYMS)
_TEMPLATE_PATTERNS = tuple(
    (name, re.compile(rf"(?:{pattern})", re.IGNORECASE), rewrites)
    for name, pattern, rewrites in TEMPLATES
)
_CONTRACTION_PATTERNS = tuple(
    (_phrase_pattern(long), _phrase_pattern(short), long, short) for long, short in CONTRACTIONS
)


def _synonym_matches(text: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """Non-overlapping synonym matches in ``text``: at each position the longest one wins."""
    matches = [
        (m.start(), m.end(), alts)
        for pattern, alts in _SYNONYM_PATTERNS
        for m in pattern.finditer(text)
    ]
    matches.sort(key=lambda item: (item[0], -(item[1] - item[0])))
    kept: list[tuple[int, int, tuple[str, ...]]] = []
    end = -1
    for match in matches:
        if match[0] >= end:
            kept.append(match)
            end = match[1]
    return kept


def _swap_synonyms(
    text: str,
    rng: random.Random,
    strength: float,
    matches: list[tuple[int, int, tuple[str, ...]]] | None = None,
) -> tuple[str, list[Any]] | None:
    """``text`` with some table phrases swapped, and the swaps made; ``None`` if none match.

    At ``strength`` 0 one phrase swaps; at 1 up to all of them. ``matches`` are
    :func:`_synonym_matches` of ``text`` when the caller has them already.
    """
    if matches is None:
        matches = _synonym_matches(text)
    if not matches:
        return None
    most = max(1, round(len(matches) * (0.25 + 0.75 * strength)))
    chosen = sorted(rng.sample(matches, rng.randint(1, most)), key=lambda m: m[0], reverse=True)
    swaps: list[Any] = []
    for start, end, alts in chosen:
        original = text[start:end]
        replacement = match_case(rng.choice(alts), original)
        text = text[:start] + replacement + text[end:]
        swaps.append({"from": original, "to": replacement})
    swaps.reverse()
    return text, swaps


def _template_sites(sentences: list[str]) -> list[tuple[int, str, str, tuple[str, ...]]]:
    """(sentence index, template name, slot text, rewrites) for every sentence a template fits."""
    sites = []
    for index, sentence in enumerate(sentences):
        body, _ = split_terminal(sentence)
        for name, pattern, rewrites in _TEMPLATE_PATTERNS:
            match = pattern.fullmatch(body)
            if match:
                sites.append((index, name, match.group("x"), rewrites))
    return sites


def _make_template(request: Request) -> Maker | None:
    sentences = split_sentences(request.text)
    sites = _template_sites(sentences)
    if not sites:
        return None

    def make(rng: random.Random) -> Variation | None:
        index, name, slot, rewrites = rng.choice(sites)
        rewrite = rng.randrange(len(rewrites))
        new = rewrites[rewrite].format(x=slot)
        if new.casefold() == sentences[index].casefold():
            return None
        text = " ".join([*sentences[:index], new, *sentences[index + 1 :]])
        params: dict[str, Any] = {"template": name, "rewrite": rewrite}
        # A strong temperature stacks synonym swaps on the new shape.
        if rng.random() < request.strength * 0.6:
            swapped = _swap_synonyms(text, rng, request.strength)
            if swapped is not None:
                text, params["swaps"] = swapped
        return Variation(text, "rephrase.template", params)

    return make


def _make_synonyms(request: Request) -> Maker | None:
    matches = _synonym_matches(request.text)
    if not matches:
        return None

    def make(rng: random.Random) -> Variation | None:
        swapped = _swap_synonyms(request.text, rng, request.strength, matches)
        if swapped is None:
            return None
        text, swaps = swapped
        return Variation(text, "rephrase.synonyms", {"swaps": swaps})

    return make


def _make_contraction(request: Request) -> Maker | None:
    sites: list[tuple[int, int, str]] = []
    for long_pattern, short_pattern, long, short in _CONTRACTION_PATTERNS:
        sites += [(m.start(), m.end(), short) for m in long_pattern.finditer(request.text)]
        sites += [(m.start(), m.end(), long) for m in short_pattern.finditer(request.text)]
    if not sites:
        return None
    sites.sort()

    def make(rng: random.Random) -> Variation | None:
        text = request.text
        most = max(1, round(len(sites) * (0.5 + 0.5 * request.strength)))
        chosen = sorted(rng.sample(sites, rng.randint(1, most)), reverse=True)
        flips: list[Any] = []
        last_start = len(text) + 1
        for start, end, replacement in chosen:
            if end > last_start:  # "what is" and "it is" can overlap; keep the later one
                continue
            original = text[start:end]
            new = match_case(replacement, original)
            text = text[:start] + new + text[end:]
            flips.append({"from": original, "to": new})
            last_start = start
        flips.reverse()
        return Variation(text, "rephrase.contraction", {"flips": flips})

    return make


def _make_frame(request: Request) -> Maker:
    def make(rng: random.Random) -> Variation | None:
        index = rng.randrange(len(FRAMES))
        text = FRAMES[index].format(text=request.text, lower=lowercase_first(request.text))
        return Variation(text, "rephrase.frame", {"frame": index})

    return make


def rephrase(request: Request) -> list[Variation]:
    """Variations of ``request.text`` in other words (see the module docstring)."""
    primary = [_make_template(request), _make_synonyms(request), _make_contraction(request)]
    return collect(request, primary, [_make_frame(request)])
