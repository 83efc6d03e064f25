"""``verbose`` and ``concise``: the same request, longer or shorter.

``verbose`` adds sentences around the text, never changing it: a greeting
(``verbose.greeting``), background (``verbose.context``), a request for more detail
(``verbose.detail``) or a closing (``verbose.closing``). The operator is named after the first
part chosen; ``temperature`` adds more parts (params ``parts`` lists them all). Every
variation is longer than its base.

``concise`` takes away: politeness and filler (``concise.drop_fillers``), common
abbreviations (``concise.abbreviate``), a telegraphic keyword form (``concise.keywords``:
``How do I get a refund?`` -> ``How get refund?``; at a high ``temperature`` also pronouns,
prepositions and the question word), a clause giving reasons or background
(``concise.drop_clause``: ``..., because ...``) and, for several sentences, only the
question (``concise.key_sentence``).
Every variation is shorter than its base and has other words, so a one-word input gets
none.
"""

from __future__ import annotations

import random
import re
from typing import Any

from ._common import (
    GREETING_START,
    THANKS_END,
    Maker,
    Request,
    Variation,
    capitalize_first,
    collect,
    split_sentences,
    split_terminal,
    surround,
    word_spans,
)

__all__ = [
    "ABBREVIATIONS",
    "CLAUSES",
    "FILLERS",
    "STOPWORDS_LIGHT",
    "STOPWORDS_STRONG",
    "VERBOSE_PARTS",
    "concise",
    "verbose",
]

#: Sentences ``verbose`` adds, by slot. Greetings and context go before the text, detail
#: and closings after it; none changes what is asked.
VERBOSE_PARTS: dict[str, tuple[str, ...]] = {
    "greeting": (
        "Hi there!",
        "Hello!",
        "Good morning!",
        "Hey, I hope you're doing well.",
        "Hi, I hope you can help me with something.",
    ),
    "context": (
        "I've been trying to figure this out for a while now.",
        "I'm fairly new to this, so sorry if it's a basic question.",
        "I looked through the help pages but couldn't find a clear answer.",
        "A friend suggested I ask here.",
        "I already searched online, without much luck.",
        "This is the first time I'm doing this.",
        "I'd rather ask than get it wrong.",
    ),
    "detail": (
        "Could you walk me through it step by step?",
        "Please include any details I should be aware of.",
        "If there are several options, could you explain each one?",
        "It would also help to know how long it usually takes.",
        "Are there any fees or requirements I should know about?",
        "Links to the relevant pages would be great too.",
    ),
    "closing": (
        "Thanks in advance!",
        "Thank you so much for your help.",
        "I really appreciate it.",
        "Looking forward to your reply.",
        "Thanks for your patience.",
    ),
}
_BEFORE = ("greeting", "context")
_SLOT_ORDER = ("greeting", "context", "detail", "closing")

#: Filler ``concise`` drops (regular expressions, case-insensitive, removed with what follows
#: them up to the next word).
FILLERS: tuple[str, ...] = (
    r"\b(?:hi|hello|hey)(?: there)?\b[,!.]*",
    r"\bgood (?:morning|afternoon|evening)\b[,!.]*",
    r"\bsorry (?:if this is|for) (?:a |such a )?(?:basic|silly|dumb|stupid) question\b[,!.]*",
    r"\bI hope you(?:'re| are) (?:doing )?well\b[,!.]*",
    r"\bI was wondering (?:if|whether) (?:you could |you can )?",
    r"\bcould you (?:please )?tell me\b",
    r"\bI would like to know\b",
    r"\b(?:thanks|thank you)(?: (?:so|very) much)?(?: in advance)?"
    r"(?: for (?:your|the) help)?\b[.!]*",
    r"\bplease\b,?",
    r"\bkindly\b",
    r"\bjust\b",
    r"\breally\b",
    r"\bactually\b,?",
    r"\bbasically\b,?",
    r"\bif possible\b,?",
    r"\bif you don't mind\b,?",
    r"\b(?:still|already|currently|quite|totally|literally|honestly|simply)\b",
)
_FILLER_PATTERNS = tuple(re.compile(f, re.IGNORECASE) for f in FILLERS)

#: Long form -> the short one people type. Whole words, case-insensitive.
ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("as soon as possible", "asap"),
    ("by the way", "btw"),
    ("for your information", "fyi"),
    ("I don't know", "idk"),
    ("to be honest", "tbh"),
    ("please", "pls"),
    ("thanks", "thx"),
    ("thank you", "ty"),
    ("you", "u"),
    ("your", "ur"),
    ("are", "r"),
    ("because", "bc"),
    ("information", "info"),
    ("account", "acct"),
    ("message", "msg"),
    ("tomorrow", "tmrw"),
    ("without", "w/o"),
    ("with", "w/"),
    ("people", "ppl"),
    ("something", "sth"),
    ("before", "b4"),
    ("really", "rly"),
    ("okay", "ok"),
    ("minutes", "mins"),
    ("password", "pw"),
    ("application", "app"),
    ("subscription", "sub"),
    ("number", "no."),
    ("question", "q"),
    ("and", "&"),
    ("weeks", "wks"),
    ("week", "wk"),
    ("hours", "hrs"),
    ("address", "addr"),
    ("approximately", "approx."),
    ("for example", "e.g."),
    ("versus", "vs"),
    ("customer service", "CS"),
    ("probably", "prob"),
)
_ABBREVIATION_PATTERNS = tuple(
    (re.compile(rf"(?<![\w'’]){re.escape(long)}(?![\w'’])", re.IGNORECASE), short)
    for long, short in ABBREVIATIONS
)

#: Words the telegraphic form drops at a low temperature: articles and auxiliaries.
STOPWORDS_LIGHT: tuple[str, ...] = (
    "a", "an", "the", "do", "does", "did", "i", "please", "just", "so", "um", "well",
)  # fmt: skip
#: ... and at a high one: pronouns, modals, copulas and prepositions too.
STOPWORDS_STRONG: tuple[str, ...] = (
    *STOPWORDS_LIGHT,
    "me", "my", "you", "your", "we", "our", "it", "its", "is", "are", "am", "was", "were",
    "be", "can", "could", "would", "should", "will", "have", "has", "to", "for", "of", "in",
    "on", "at", "with", "about", "there", "this", "that", "some", "any", "also", "hi",
    "hello", "hey", "thanks", "and", "but", "or", "it's", "i'm", "i've", "that's", "there's",
    "yet", "still", "already", "very", "really", "now", "currently",
)  # fmt: skip
_QUESTION_WORDS = ("how", "what", "where", "when", "why", "who", "which")


def _words(text: str) -> list[str]:
    return [text[a:b].casefold() for a, b in word_spans(text)]


def _tidy(text: str) -> str:
    """Spaces and punctuation left over after words are removed, cleaned up."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.?!;:])", r"\1", text)
    text = re.sub(r"([,;:])(?=[,.?!;:])", "", text)
    text = re.sub(r"^[\s,.;:!]+", "", text)
    text = re.sub(r"([.?!])[,;:]+", r"\1", text)
    return capitalize_first(text.strip())


# ----------------------------------------------------------------------------- verbose


def _make_verbose(request: Request, first_slot: str, slots: list[str]) -> Maker:
    def make(rng: random.Random) -> Variation | None:
        # 1 part at temperature 0, up to all of them at temperature 2.
        others = [slot for slot in slots if slot != first_slot]
        extra = rng.randint(0, round(request.strength * len(others)))
        slots_used = [first_slot, *rng.sample(others, extra)]
        chosen = {slot: rng.randrange(len(VERBOSE_PARTS[slot])) for slot in slots_used}
        before = [VERBOSE_PARTS[s][chosen[s]] for s in _SLOT_ORDER if s in chosen and s in _BEFORE]
        after = [
            VERBOSE_PARTS[s][chosen[s]] for s in _SLOT_ORDER if s in chosen and s not in _BEFORE
        ]
        text = surround(request.text, before, after)
        return Variation(text, f"verbose.{first_slot}", {"parts": chosen})

    return make


def verbose(request: Request) -> list[Variation]:
    """Longer variations of ``request.text`` (see the module docstring)."""
    text = request.text.strip()
    # Greeting a text that already greets (or thanking after its thanks) reads as a glitch.
    slots = [
        slot
        for slot in _SLOT_ORDER
        if not (slot == "greeting" and GREETING_START.match(text))
        and not (slot == "closing" and THANKS_END.search(text))
    ]
    return collect(request, [_make_verbose(request, slot, slots) for slot in slots])


# ----------------------------------------------------------------------------- concise


def _shorter(candidate: str, base: str) -> bool:
    """A real concise variation: shorter, and not just the same words re-punctuated."""
    return (
        bool(word_spans(candidate))
        and len(candidate) < len(base.strip())
        and _words(candidate) != _words(base)
    )


def _non_overlapping(sites: list[tuple[int, int, Any]]) -> list[tuple[int, int, Any]]:
    """``(start, end, data)`` sites in text order, dropping those that overlap an earlier one."""
    kept: list[tuple[int, int, Any]] = []
    for site in sorted(sites, key=lambda s: (s[0], s[1])):
        if not kept or site[0] >= kept[-1][1]:
            kept.append(site)
    return kept


def _make_drop_fillers(request: Request) -> Maker | None:
    sites = _non_overlapping(
        [
            (m.start(), m.end(), index)
            for index, pattern in enumerate(_FILLER_PATTERNS)
            for m in pattern.finditer(request.text)
        ]
    )
    if not sites:
        return None

    def make(rng: random.Random) -> Variation | None:
        text = request.text
        most = max(1, round(len(sites) * (0.5 + 0.5 * request.strength)))
        chosen = sorted(rng.sample(sites, rng.randint(1, most)), reverse=True)
        dropped: list[Any] = []
        for start, end, _ in chosen:
            dropped.append(text[start:end].strip())
            text = text[:start] + text[end:]
        dropped.reverse()
        text = _tidy(text)
        if not _shorter(text, request.text):
            return None
        return Variation(text, "concise.drop_fillers", {"dropped": dropped})

    return make


def _make_abbreviate(request: Request) -> Maker | None:
    sites = _non_overlapping(
        [
            (m.start(), m.end(), short)
            for pattern, short in _ABBREVIATION_PATTERNS
            for m in pattern.finditer(request.text)
        ]
    )
    if not sites:
        return None

    def make(rng: random.Random) -> Variation | None:
        text = request.text
        most = max(1, round(len(sites) * (0.4 + 0.6 * request.strength)))
        chosen = sorted(rng.sample(sites, rng.randint(1, most)), reverse=True)
        swaps: list[Any] = []
        for start, end, short in chosen:
            swaps.append({"from": text[start:end], "to": short})
            text = text[:start] + short + text[end:]
        swaps.reverse()
        if not _shorter(text, request.text):
            return None
        return Variation(text, "concise.abbreviate", {"swaps": swaps})

    return make


_TOKEN = re.compile(r"\w+(?:['’]\w+)*")


def _make_keywords(request: Request) -> Maker:
    def make(rng: random.Random) -> Variation | None:
        # Articles and auxiliaries go first; pronouns, prepositions and the question word
        # only at a higher temperature. Each droppable word goes with its own odds, so two
        # draws drop different words.
        light_odds = 0.7 + 0.3 * request.strength
        strong_odds = 0.15 + 0.85 * request.strength
        question_odds = 0.5 * request.strength
        body, terminal = split_terminal(request.text)
        words = _TOKEN.findall(body)
        kept: list[str] = []
        for word in words:
            folded = word.casefold().replace("’", "'")
            if folded in STOPWORDS_LIGHT:
                odds = light_odds
            elif folded in STOPWORDS_STRONG:
                odds = strong_odds
            elif folded in _QUESTION_WORDS:
                odds = question_odds
            else:
                odds = 0.0
            if odds == 0.0 or rng.random() >= odds:
                kept.append(word)
        if not kept:
            return None
        question = "?" in terminal or bool(words and words[0].casefold() in _QUESTION_WORDS)
        text = capitalize_first(" ".join(kept)) + ("?" if question else "")
        if not _shorter(text, request.text):
            return None
        return Variation(text, "concise.keywords", {"dropped": len(words) - len(kept)})

    return make


#: (name, pattern) of clauses that add reasons or background to a request:
#: ``concise.drop_clause`` cuts one (case-insensitive, never at the very start).
CLAUSES: tuple[tuple[str, str], ...] = (
    ("reason", r",?\s+(?:because|since|as|although|though|even though|so that|while)\s+[^.?!]*"),
    ("background", r",?\s+and\s+(?:it's|it has|it is|i've|i have|i'm|i am|that's)\s+[^.?!]*"),
    ("relative", r",?\s+(?:which|who)\s+[^.?!]*"),
    (
        "trailing_detail",
        r",?\s+(?:for|on|in|at|from|with)\s+(?:a|an|the|my|your|this|that|some)\s+\w+"
        r"(?=[.?!]*$)",
    ),
)
_CLAUSE_PATTERNS = tuple((name, re.compile(c, re.IGNORECASE)) for name, c in CLAUSES)


def _make_drop_clause(request: Request) -> Maker | None:
    text = request.text.strip()
    sites = [
        (m.start(), m.end(), name)
        for name, pattern in _CLAUSE_PATTERNS
        for m in pattern.finditer(text)
        if m.start() > 0
    ]
    if not sites:
        return None

    def make(rng: random.Random) -> Variation | None:
        start, end, name = rng.choice(sites)
        shortened = _tidy(text[:start] + text[end:])
        if not _shorter(shortened, request.text):
            return None
        params = {"clause": name, "dropped": text[start:end].strip(" ,")}
        return Variation(shortened, "concise.drop_clause", params)

    return make


def _make_key_sentence(request: Request) -> Maker | None:
    sentences = split_sentences(request.text)
    if len(sentences) < 2:
        return None
    questions = [i for i, s in enumerate(sentences) if s.rstrip().endswith("?")]
    # The question is the request; without one, any sentence with the most words.
    if not questions:
        most = max(len(word_spans(s)) for s in sentences)
        questions = [i for i, s in enumerate(sentences) if len(word_spans(s)) == most]

    def make(rng: random.Random) -> Variation | None:
        index = rng.choice(questions)
        text = capitalize_first(sentences[index])
        if not _shorter(text, request.text):
            return None
        return Variation(text, "concise.key_sentence", {"sentence": index})

    return make


def concise(request: Request) -> list[Variation]:
    """Shorter variations of ``request.text`` (see the module docstring)."""
    makers = [
        _make_drop_fillers(request),
        _make_abbreviate(request),
        _make_keywords(request),
        _make_drop_clause(request),
        _make_key_sentence(request),
    ]
    return collect(request, makers)
