"""``typo`` and ``error_prone``: the same request as people really mistype it.

``typo`` makes keyboard slips inside words: a neighbouring key on a QWERTY keyboard
(``typo.adjacent_key``), two letters swapped (``typo.swap``), a letter left out
(``typo.drop``) or typed twice (``typo.double``).

``error_prone`` adds the mistakes of someone writing fast or unsure of the spelling on top
of those slips (``error_prone.adjacent_key`` ... ``error_prone.double``): a common
misspelling (``error_prone.misspelling``: ``recieve``), a homophone
(``error_prone.homophone``: ``your``/``you're``), a dropped apostrophe
(``error_prone.missing_apostrophe``: ``dont``), a dropped punctuation mark
(``error_prone.missing_punctuation``), two words run together (``error_prone.merged_words``),
a misplaced space (``error_prone.misplaced_space``: ``ge ta refund``), a dropped or repeated
short word (``error_prone.dropped_word``, ``error_prone.repeated_word``: ``the the``).

Each variation is named after its first edit; ``temperature`` adds more edits (``typo``: 1
at temperature 0 up to 4 at 2, fewer on short texts; ``error_prone``: 1 up to 3). Every edit
changes at most four characters, so a variation stays within a small edit distance of its
base (params ``edits`` lists each edit). Case-only changes are never made: variations are
compared case-insensitively.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from ._common import Maker, Request, Variation, collect, match_case, word_spans

__all__ = [
    "HOMOPHONES",
    "KEYBOARD_NEIGHBOURS",
    "MISSPELLINGS",
    "SHORT_WORDS",
    "error_prone",
    "typo",
]

#: Keys next to each letter on a QWERTY keyboard (same row and the rows above and below).
KEYBOARD_NEIGHBOURS: dict[str, str] = {
    "q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg", "y": "tugh",
    "u": "yihj", "i": "uojk", "o": "ipkl", "p": "ol", "a": "qwsz", "s": "weadzx",
    "d": "erfsxc", "f": "rtdgcv", "g": "tyfhvb", "h": "yugjbn", "j": "uihknm", "k": "iojlm",
    "l": "opk", "z": "asx", "x": "zsdc", "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm",
    "m": "njk",
}  # fmt: skip

#: Correct spelling -> a common misspelling of it (each at most three edits away).
MISSPELLINGS: tuple[tuple[str, str], ...] = (
    ("receive", "recieve"),
    ("definitely", "definately"),
    ("separate", "seperate"),
    ("address", "adress"),
    ("account", "acount"),
    ("password", "pasword"),
    ("because", "becuase"),
    ("which", "wich"),
    ("until", "untill"),
    ("tomorrow", "tommorow"),
    ("really", "realy"),
    ("believe", "beleive"),
    ("necessary", "neccessary"),
    ("immediately", "immediatly"),
    ("business", "buisness"),
    ("beginning", "begining"),
    ("different", "diffrent"),
    ("order", "oder"),
    ("subscription", "subscripton"),
    ("cancel", "cancle"),
    ("payment", "payement"),
    ("delivery", "delivry"),
    ("available", "availible"),
    ("experience", "experiance"),
    ("information", "infomation"),
    ("problem", "probelm"),
    ("question", "qustion"),
    ("please", "plese"),
    ("thanks", "thnaks"),
    ("receipt", "reciept"),
)

#: Word -> the word people confuse it with.
HOMOPHONES: tuple[tuple[str, str], ...] = (
    ("your", "you're"),
    ("you're", "your"),
    ("its", "it's"),
    ("it's", "its"),
    ("there", "their"),
    ("their", "there"),
    ("then", "than"),
    ("than", "then"),
    ("too", "to"),
    ("lose", "loose"),
    ("whether", "weather"),
    ("where", "were"),
    ("were", "where"),
    ("affect", "effect"),
    ("accept", "except"),
)

#: Short words a hurried writer drops or types twice.
SHORT_WORDS: tuple[str, ...] = ("a", "an", "the", "to", "of", "for", "is", "do", "in", "on", "my")

_PUNCTUATION = ",.?!;:"

#: One edit: ``(text, rng) -> (new text, details)``, or ``None`` where it cannot apply.
_Edit = Callable[[str, random.Random], "tuple[str, dict[str, Any]] | None"]


def _letters(text: str) -> list[int]:
    return [i for a, b in word_spans(text) for i in range(a, b) if text[i].isalpha()]


def _adjacent_key(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    sites = [i for i in _letters(text) if text[i].lower() in KEYBOARD_NEIGHBOURS]
    if not sites:
        return None
    i = rng.choice(sites)
    new = rng.choice(KEYBOARD_NEIGHBOURS[text[i].lower()])
    new = new.upper() if text[i].isupper() else new
    return text[:i] + new + text[i + 1 :], {"at": i, "from": text[i], "to": new}


def _swap(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    sites = [
        i
        for a, b in word_spans(text)
        for i in range(a, b - 1)
        if text[i].isalpha()
        and text[i + 1].isalpha()
        and text[i].casefold() != text[i + 1].casefold()
    ]
    if not sites:
        return None
    i = rng.choice(sites)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :], {"at": i}


def _drop(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    # Only from words of three letters or more: dropping from "a" or "to" erases the word.
    sites = [i for a, b in word_spans(text) if b - a >= 3 for i in range(a, b) if text[i].isalpha()]
    if not sites:
        return None
    i = rng.choice(sites)
    return text[:i] + text[i + 1 :], {"at": i, "letter": text[i]}


def _double(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    sites = _letters(text)
    if not sites:
        return None
    i = rng.choice(sites)
    return text[:i] + text[i] + text[i:], {"at": i, "letter": text[i]}


def _table_pattern(words: tuple[tuple[str, str], ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(right).replace("'", "['’]") for right, _ in words)
    return re.compile(rf"(?<![\w'’])(?:{alternatives})(?![\w'’])", re.IGNORECASE)


def _from_table(table: tuple[tuple[str, str], ...]) -> _Edit:
    pattern = _table_pattern(table)
    lookup = {right.casefold(): wrong for right, wrong in table}

    def edit(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
        sites = list(pattern.finditer(text))
        if not sites:
            return None
        match = rng.choice(sites)
        found = match.group(0)
        wrong = match_case(lookup[found.replace("’", "'").casefold()], found)
        return text[: match.start()] + wrong + text[match.end() :], {"from": found, "to": wrong}

    return edit


def _missing_apostrophe(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    sites = [i for a, b in word_spans(text) for i in range(a, b) if text[i] in "'’"]
    if not sites:
        return None
    i = rng.choice(sites)
    return text[:i] + text[i + 1 :], {"at": i}


def _missing_punctuation(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    sites = [i for i, char in enumerate(text) if char in _PUNCTUATION]
    if not sites:
        return None
    i = rng.choice(sites)
    return text[:i] + text[i + 1 :], {"at": i, "mark": text[i]}


def _word_gaps(text: str) -> list[int]:
    """Indexes of single spaces between two letters (``get a`` -> the space)."""
    return [
        i
        for i in range(1, len(text) - 1)
        if text[i] == " " and text[i - 1].isalpha() and text[i + 1].isalpha()
    ]


def _merged_words(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    sites = _word_gaps(text)
    if not sites:
        return None
    i = rng.choice(sites)
    return text[:i] + text[i + 1 :], {"at": i}


def _misplaced_space(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    # "get a" -> "ge ta": the space slips one letter left; the word before needs two letters.
    sites = [i for i in _word_gaps(text) if i >= 2 and text[i - 2].isalpha()]
    if not sites:
        return None
    i = rng.choice(sites)
    return text[: i - 1] + " " + text[i - 1] + text[i + 1 :], {"at": i}


def _short_word_sites(text: str) -> list[tuple[int, int]]:
    return [(a, b) for a, b in word_spans(text) if text[a:b].casefold() in SHORT_WORDS]


def _dropped_word(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    if len(word_spans(text)) < 3:  # keep at least two words of a short request
        return None
    sites = [(a, b) for a, b in _short_word_sites(text) if b < len(text) and text[b] == " "]
    if not sites:
        return None
    a, b = rng.choice(sites)
    return text[:a] + text[b + 1 :], {"word": text[a:b]}


def _repeated_word(text: str, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    sites = _short_word_sites(text)
    if not sites:
        return None
    a, b = rng.choice(sites)
    return text[:b] + " " + text[a:b] + text[b:], {"word": text[a:b]}


_TYPO_EDITS: dict[str, _Edit] = {
    "adjacent_key": _adjacent_key,
    "swap": _swap,
    "drop": _drop,
    "double": _double,
}

_ERROR_EDITS: dict[str, _Edit] = {
    "misspelling": _from_table(MISSPELLINGS),
    "homophone": _from_table(HOMOPHONES),
    "missing_apostrophe": _missing_apostrophe,
    "missing_punctuation": _missing_punctuation,
    "merged_words": _merged_words,
    "misplaced_space": _misplaced_space,
    "dropped_word": _dropped_word,
    "repeated_word": _repeated_word,
    **_TYPO_EDITS,
}


def _make_noise(
    request: Request, family: str, edits: dict[str, _Edit], first: str, most: int
) -> Maker | None:
    # Whether the first edit applies at all, asked once with a throwaway generator: the
    # request's rng must only see the draws that make variations.
    if edits[first](request.text, random.Random(0)) is None:
        return None

    def make(rng: random.Random) -> Variation | None:
        applied = edits[first](request.text, rng)
        if applied is None:
            return None
        text, details = applied
        done: list[Any] = [{"kind": first, **details}]
        names = list(edits)
        for _ in range(rng.randint(1, most) - 1):
            kind = rng.choice(names)
            more = edits[kind](text, rng)
            if more is not None:
                text, details = more
                done.append({"kind": kind, **details})
        return Variation(text, f"{family}.{first}", {"edits": done})

    return make


def typo(request: Request) -> list[Variation]:
    """Variations of ``request.text`` with keyboard slips (see the module docstring)."""
    # One slip per five letters at most: four typos in "Where do I begin?" would bury it.
    most = min(1 + round(request.strength * 3), max(1, len(_letters(request.text)) // 5))
    return collect(
        request, [_make_noise(request, "typo", _TYPO_EDITS, kind, most) for kind in _TYPO_EDITS]
    )


def error_prone(request: Request) -> list[Variation]:
    """Variations of ``request.text`` with human writing errors (see the module docstring)."""
    most = min(1 + round(request.strength * 2), max(1, len(_letters(request.text)) // 4))
    return collect(
        request, [_make_noise(request, "error_prone", _ERROR_EDITS, k, most) for k in _ERROR_EDITS]
    )
