"""The deterministic variation operators: property checks over many seeds and inputs.

Plain loops over seeds (no hypothesis): every strategy is reproducible from its rng, never
touches the global ``random`` state, returns variations distinct from the base and from each
other, and each family keeps its own promise (typos stay within a small edit distance,
``concise`` is shorter, encodings decode back, ...).
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import itertools
import json
import random
import subprocess
import sys
from collections.abc import Callable
from typing import get_args

import pytest

from pytest_fluxloop.config.models import Persona, VariationStrategy
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.generate.operators import STRATEGIES, UnsupportedStrategy, Variation, apply
from pytest_fluxloop.generate.operators._common import normalized_key
from pytest_fluxloop.generate.operators.adversarial import (
    decode_homoglyphs,
    decode_leetspeak,
    strip_zero_width,
)
from pytest_fluxloop.generate.operators.multilingual import CODE_SWITCH
from pytest_fluxloop.generate.operators.noise import KEYBOARD_NEIGHBOURS

SEEDS = range(200)
FEW_SEEDS = range(40)
#: The temperatures the property loops cycle through, one per seed (seed % 3).
TEMPERATURES = (0.0, 0.7, 2.0)

INPUTS = [
    "How do I get a refund?",
    "When are you open?",
    "Where do I begin?",
    "Can you help me reset my password?",
    "I want to cancel my subscription because the app doesn't work on my phone.",
    "Hi, I was wondering if you could please tell me how to change my delivery address. Thanks!",
    "What is your return policy for items bought on sale?",
    "my order hasn't arrived yet and it's been two weeks",
]
#: Inputs without digits, greeting or thanks: encodings decode back to them exactly, and
#: added sentences leave them verbatim.
PLAIN_INPUTS = [text for text in INPUTS if not text.startswith("Hi,")]

NOVICE = Persona(
    name="novice_user",
    description="First-time customer, unsure of the terms",
    characteristics=["polite", "uncertain"],
    language="en",
    expertise_level="beginner",
    goals=["get a clear answer"],
    constraints=["only uses the mobile app"],
    custom_attributes={"device": "iPhone", "vip": True},
)
SPANISH = Persona(name="ana", language="es", goals=["Find the basics"])


def variations(
    strategy: str,
    text: str,
    seed: int,
    *,
    count: int = 3,
    temperature: float = 0.7,
    persona: Persona | None = NOVICE,
    language: str | None = None,
) -> list[Variation]:
    return apply(
        strategy,
        text,
        persona=persona,
        count=count,
        rng=random.Random(seed),
        temperature=temperature,
        language=language,
    )


def levenshtein(a: str, b: str, limit: int) -> int:
    """Edit distance (one-character insertions, deletions, substitutions), or ``limit + 1``
    when it is larger. The common prefix and suffix are skipped and only a band of ``limit``
    cells each side of the diagonal is computed, which keeps the many-seed loops fast."""
    while a and b and a[0] == b[0]:
        a, b = a[1:], b[1:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    too_far = limit + 1
    if abs(len(a) - len(b)) > limit:
        return too_far
    previous = [min(j, too_far) for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        current = [too_far] * (len(b) + 1)
        current[0] = min(i, too_far)
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            current[j] = min(
                previous[j] + 1,
                current[j - 1] + 1,
                previous[j - 1] + (a[i - 1] != b[j - 1]),
                too_far,
            )
        previous = current
    return previous[-1]


# ------------------------------------------------------------------------------ the contract


def test_every_strategy_the_config_accepts_has_rules_except_custom() -> None:
    assert set(get_args(VariationStrategy)) == STRATEGIES | {"custom"}
    assert "custom" not in STRATEGIES


def test_variation_is_a_frozen_record() -> None:
    variation = Variation("x", "rephrase.synonyms", {"swaps": []})
    with pytest.raises(AttributeError):
        variation.text = "y"  # type: ignore[misc]
    assert issubclass(UnsupportedStrategy, ConfigError)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_same_seed_gives_the_same_variations(strategy: str) -> None:
    for text in INPUTS:
        for seed in SEEDS:
            first = variations(strategy, text, seed)
            assert variations(strategy, text, seed) == first


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_different_seeds_mostly_give_different_variations(strategy: str) -> None:
    changed = total = 0
    for text in INPUTS:
        outputs = [tuple(v.text for v in variations(strategy, text, seed)) for seed in SEEDS]
        changed += sum(a != b for a, b in itertools.pairwise(outputs))
        total += len(outputs) - 1
    # concise has the fewest ways to shorten a short question; everything else varies a lot.
    assert changed / total > (0.4 if strategy == "concise" else 0.8)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_variations_differ_from_the_base_and_each_other(strategy: str) -> None:
    for text in INPUTS:
        for seed in SEEDS:
            temperature = TEMPERATURES[seed % 3]
            found = variations(strategy, text, seed, count=5, temperature=temperature)
            keys = [normalized_key(v.text) for v in found]
            assert len(found) <= 5
            assert normalized_key(text) not in keys
            assert len(set(keys)) == len(keys)
            for variation in found:
                assert variation.text == variation.text.strip() and variation.text
                assert variation.operator.startswith(f"{strategy}.")
                json.dumps(variation.params, allow_nan=False)  # JSON-safe provenance


@pytest.mark.parametrize("strategy", sorted(STRATEGIES - {"concise"}))
def test_enough_variations_for_ordinary_inputs(strategy: str) -> None:
    for text in INPUTS:
        for seed in FEW_SEEDS:
            assert len(variations(strategy, text, seed, count=3)) == 3, (strategy, text, seed)


def test_the_global_random_state_is_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    random.seed(12345)
    state = random.getstate()

    # Any call of a module-level random function fails the test outright.
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the global random generator was used")

    for name in ("random", "choice", "choices", "sample", "shuffle", "randint", "randrange"):
        monkeypatch.setattr(random, name, forbidden)
    monkeypatch.setattr(random, "uniform", forbidden)
    for strategy in sorted(STRATEGIES):
        for text in INPUTS:
            for seed in FEW_SEEDS:
                variations(strategy, text, seed, count=4, temperature=1.3)
    monkeypatch.undo()
    assert random.getstate() == state


def test_output_is_identical_across_processes_and_hash_seeds() -> None:
    """Byte-identical files need more than one process agreeing with itself: set order
    depends on PYTHONHASHSEED, so two interpreters with different hash seeds must agree."""
    script = f"""
import hashlib, json, random
from pytest_fluxloop.config.models import Persona
from pytest_fluxloop.generate.operators import STRATEGIES, apply
persona = Persona.model_validate_json({NOVICE.model_dump_json()!r})
out = []
for strategy in sorted(STRATEGIES):
    for text in {INPUTS!r}:
        for seed in range(5):
            for v in apply(strategy, text, persona=persona, count=4, rng=random.Random(seed)):
                out.append([v.text, v.operator, v.params])
print(hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest())
"""
    digests = set()
    for hash_seed in ("0", "1", "12345"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
        )
        digests.add(result.stdout.strip())
    out = []
    for strategy in sorted(STRATEGIES):
        for text in INPUTS:
            for seed in range(5):
                for v in variations(strategy, text, seed, count=4, temperature=0.7):
                    out.append([v.text, v.operator, v.params])
    digests.add(hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest())
    assert len(digests) == 1


def test_count_zero_and_blank_text_give_nothing() -> None:
    for strategy in sorted(STRATEGIES):
        assert variations(strategy, "How do I start?", 1, count=0) == []
        assert variations(strategy, "   ", 1) == []


def test_caller_bugs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="count"):
        variations("rephrase", "How do I start?", 1, count=-1)
    with pytest.raises(ValueError, match="temperature"):
        variations("rephrase", "How do I start?", 1, temperature=2.5)


def test_custom_needs_llm_mode_or_an_inputs_file() -> None:
    with pytest.raises(UnsupportedStrategy) as caught:
        variations("custom", "How do I start?", 1)
    message = str(caught.value)
    assert "custom" in message and "--mode llm" in message and "inputs" in message
    assert caught.value.strategy == "custom"


def test_an_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(UnsupportedStrategy, match=r"'paraphrase'.*adversarial.*verbose"):
        variations("paraphrase", "How do I start?", 1)


def test_temperature_scales_the_strength_of_changes() -> None:
    def mean(strategy: str, temperature: float, size: Callable[[Variation], int]) -> float:
        sizes = [
            size(v)
            for text in INPUTS
            for seed in FEW_SEEDS
            for v in variations(strategy, text, seed, count=3, temperature=temperature)
        ]
        return sum(sizes) / len(sizes)

    def edits(v: Variation) -> int:
        return len(v.params["edits"])

    def length(v: Variation) -> int:
        return len(v.text)

    def replaced(v: Variation) -> int:
        return int(v.params.get("replaced", 0))

    assert mean("typo", 2.0, edits) > mean("typo", 0.0, edits) + 0.5
    assert mean("error_prone", 2.0, edits) > mean("error_prone", 0.0, edits) + 0.3
    assert mean("verbose", 2.0, length) > mean("verbose", 0.0, length) + 20
    assert mean("concise", 2.0, length) < mean("concise", 0.0, length)
    assert mean("persona_based", 2.0, length) > mean("persona_based", 0.0, length)
    assert mean("adversarial", 2.0, replaced) > mean("adversarial", 0.0, replaced)


# ------------------------------------------------------------------------------ the families


def test_typo_variants_are_a_few_keyboard_slips_away() -> None:
    kinds = set()
    for text in INPUTS:
        for seed in SEEDS:
            temperature = TEMPERATURES[seed % 3]
            for v in variations("typo", text, seed, count=4, temperature=temperature):
                made = len(v.params["edits"])
                assert 1 <= made <= 4
                if temperature == 0.0:
                    assert made == 1
                # A swap is two Levenshtein edits; every other slip is one.
                assert 1 <= levenshtein(text, v.text, 2 * made) <= 2 * made
                kinds |= {edit["kind"] for edit in v.params["edits"]}
    assert kinds == {"adjacent_key", "swap", "drop", "double"}


def test_adjacent_key_typos_use_a_neighbouring_key() -> None:
    # The table is a real keyboard: 26 letters, and adjacency goes both ways.
    assert sorted(KEYBOARD_NEIGHBOURS) == list("abcdefghijklmnopqrstuvwxyz")
    for letter, neighbours in KEYBOARD_NEIGHBOURS.items():
        assert all(letter in KEYBOARD_NEIGHBOURS[n] for n in neighbours)
    seen = 0
    for seed in SEEDS:
        for v in variations("typo", "Where do I begin?", seed, count=4, temperature=0.0):
            if v.operator == "typo.adjacent_key":
                (edit,) = v.params["edits"]
                assert edit["to"].lower() in KEYBOARD_NEIGHBOURS[edit["from"].lower()]
                assert edit["to"].isupper() == edit["from"].isupper()
                seen += 1
    assert seen > 100


def test_error_prone_variants_stay_within_a_small_edit_distance() -> None:
    kinds = set()
    for text in INPUTS:
        for seed in SEEDS:
            temperature = (0.0, 2.0)[seed % 2]
            for v in variations("error_prone", text, seed, count=5, temperature=temperature):
                made = len(v.params["edits"])
                assert 1 <= made <= 3
                assert 1 <= levenshtein(text, v.text, 4 * made) <= 4 * made
                kinds |= {edit["kind"] for edit in v.params["edits"]}
    assert {"misspelling", "homophone", "missing_apostrophe", "merged_words"} <= kinds


def test_concise_is_shorter_and_verbose_longer() -> None:
    for text in INPUTS:
        for seed in SEEDS:
            for v in variations("concise", text, seed, count=4, temperature=1.0):
                assert len(v.text) < len(text)
            for v in variations("verbose", text, seed, count=4, temperature=1.0):
                assert len(v.text) > len(text)
    for text in PLAIN_INPUTS:
        for seed in FEW_SEEDS:
            for v in variations("verbose", text, seed, count=4):
                assert text in v.text  # verbose adds, never rewrites


def test_verbose_keeps_greeting_first_and_thanks_last() -> None:
    text = "Hi, how do I reset my password? Thanks!"
    for seed in FEW_SEEDS:
        for v in variations("verbose", text, seed, count=4, temperature=2.0):
            assert v.text.startswith("Hi") and v.text.endswith("Thanks!")
            assert v.operator not in ("verbose.greeting", "verbose.closing")


def test_concise_of_one_word_gives_nothing() -> None:
    for seed in FEW_SEEDS:
        assert variations("concise", "Refund?", seed) == []
        assert variations("concise", "Hello", seed, temperature=2.0) == []


def test_rephrase_uses_templates_synonyms_and_contractions() -> None:
    operators = set()
    for text in INPUTS:
        for seed in FEW_SEEDS:
            operators |= {v.operator for v in variations("rephrase", text, seed, count=4)}
    assert {"rephrase.template", "rephrase.synonyms", "rephrase.contraction"} <= operators
    how_to = {v.text for s in SEEDS for v in variations("rephrase", INPUTS[0], s, count=5)}
    assert "What's the best way to get a refund?" in how_to
    assert "How can I get a refund?" in how_to


def test_rephrase_falls_back_to_a_framing_when_no_rule_matches() -> None:
    for seed in FEW_SEEDS:
        found = variations("rephrase", "Refund?", seed, count=3)
        assert len(found) == 3
        assert all(v.operator == "rephrase.frame" and "efund?" in v.text for v in found)


def test_adversarial_templates_keep_the_request_word_for_word() -> None:
    for text in INPUTS:
        for seed in SEEDS:
            for v in variations("adversarial", text, seed, count=7, temperature=1.5):
                if v.operator in ("adversarial.prompt_injection", "adversarial.policy_probe"):
                    assert text in v.text and len(v.text) > len(text)


def test_adversarial_encodings_are_made_and_decode_back() -> None:
    operators = set()
    for text in PLAIN_INPUTS:
        for seed in SEEDS:
            for v in variations("adversarial", text, seed, count=7):
                operators.add(v.operator)
                if v.operator == "adversarial.leetspeak":
                    assert any(char.isdigit() for char in v.text)
                    assert decode_leetspeak(v.text).casefold() == text.casefold()
                elif v.operator == "adversarial.homoglyph":
                    assert not v.text.isascii()
                    assert decode_homoglyphs(v.text) == text
                elif v.operator == "adversarial.zero_width":
                    assert v.text != text and strip_zero_width(v.text) == text
                elif v.operator == "adversarial.base64":
                    encoded = next(w for w in v.text.split() if len(w) >= len(text) * 4 // 3)
                    assert base64.b64decode(encoded).decode() == text
                elif v.operator == "adversarial.rot13":
                    assert text not in v.text and text in codecs.decode(v.text, "rot13")
    assert operators == {
        "adversarial.prompt_injection",
        "adversarial.policy_probe",
        "adversarial.leetspeak",
        "adversarial.homoglyph",
        "adversarial.zero_width",
        "adversarial.base64",
        "adversarial.rot13",
    }


def test_levenshtein_helper() -> None:
    assert levenshtein("kitten", "sitting", 5) == 3
    assert levenshtein("abc", "abc", 2) == 0
    assert levenshtein("abcdef", "badcfe", 2) == 3  # more than the limit: limit + 1
    assert levenshtein("a", "abcd", 2) == 3


def test_zero_width_characters_are_not_whitespace() -> None:
    """Else whitespace normalisation would fold a zero-width variant into its base."""
    for seed in FEW_SEEDS:
        for v in variations("adversarial", "Where do I begin?", seed, count=7):
            if v.operator == "adversarial.zero_width":
                assert v.text.split() != ["Where", "do", "I", "begin?"]


def test_persona_based_uses_the_persona_fields() -> None:
    fields = set()
    for text in INPUTS:
        for seed in SEEDS:
            for v in variations("persona_based", text, seed, count=5, temperature=1.0):
                assert v.params["persona"] == "novice_user"
                assert v.operator == f"persona_based.{v.params['fields'][0]}"
                fields |= set(v.params["fields"])
                if v.params["fields"] == ["goals"]:
                    assert "get a clear answer" in v.text
                if v.params["fields"] == ["description"]:
                    assert "first-time customer, unsure of the terms" in v.text
                if v.params["fields"] == ["constraints"]:
                    assert "only uses the mobile app" in v.text
                if v.params["fields"] == ["custom_attributes"]:
                    assert "iPhone" in v.text and "True" not in v.text  # booleans are skipped
    assert fields == {
        "expertise",
        "characteristics",
        "goals",
        "description",
        "constraints",
        "custom_attributes",
    }


def test_persona_expertise_can_come_from_the_name() -> None:
    expert = Persona(name="impatient_expert", characteristics=["direct"])
    found = [
        v for s in FEW_SEEDS for v in variations("persona_based", INPUTS[0], s, persona=expert)
    ]
    assert {v.operator for v in found} == {
        "persona_based.expertise",
        "persona_based.characteristics",
    }


def test_persona_language_greets_in_that_language() -> None:
    found = [
        v for s in FEW_SEEDS for v in variations("persona_based", INPUTS[0], s, persona=SPANISH)
    ]
    greetings = [v for v in found if v.params["fields"][0] == "language"]
    assert greetings and all(
        v.text.split("!")[0] in CODE_SWITCH["es"]["greeting"] for v in greetings
    )
    assert any("I just want to find the basics." in v.text for v in found)


def test_persona_based_without_usable_fields_gives_nothing_and_without_persona_raises() -> None:
    assert variations("persona_based", INPUTS[0], 1, persona=Persona(name="p1")) == []
    with pytest.raises(UnsupportedStrategy, match=r"persona_based.*personas"):
        variations("persona_based", INPUTS[0], 1, persona=None)


def test_multilingual_translates_whole_sentences_the_tables_know() -> None:
    cases = {
        ("How do I get a refund?", "es"): "¿Cómo puedo obtener un reembolso?",
        ("How do I log in?", "fr"): "Comment puis-je me connecter ?",
        ("Where do I begin?", "de"): "Wo fange ich an?",
        ("Hi, how do I reset my password? Thanks!", "de"): (
            "Hallo, wie kann ich mein Passwort zurücksetzen? Danke."
        ),
        ("I want to cancel my subscription", "es"): "Quiero cancelar mi suscripción.",
    }
    for (text, language), expected in cases.items():
        for seed in FEW_SEEDS:
            found = variations("multilingual", text, seed, count=3, language=language)
            # The translation comes first; code-switched variants fill the rest.
            assert found[0].text == expected
            assert found[0].params == {
                "language": language,
                "mode": "translation",
                "rules": found[0].params["rules"],
            }
            assert all(v.params["mode"] == "code_switch" for v in found[1:])


def test_multilingual_code_switches_what_it_cannot_translate() -> None:
    text = "I was charged twice for the same order"
    for seed in SEEDS:
        found = variations("multilingual", text, seed, count=3, persona=SPANISH, temperature=1.0)
        assert len(found) == 3
        for v in found:
            assert v.operator == "multilingual.code_switch"
            assert v.params["mode"] == "code_switch" and v.params["language"] == "es"
            assert "charged twice for the same order" in v.text  # the English request stays
            words = CODE_SWITCH["es"]
            assert any(w in v.text for part in words.values() for w in part)


def test_multilingual_language_comes_from_the_argument_or_the_persona() -> None:
    for seed in FEW_SEEDS:
        from_persona = variations("multilingual", INPUTS[0], seed, persona=SPANISH)
        assert {v.params["language"] for v in from_persona} == {"es"}
        explicit = variations("multilingual", INPUTS[0], seed, persona=SPANISH, language="de-AT")
        assert {v.params["language"] for v in explicit} == {"de"}
        by_name = variations("multilingual", INPUTS[0], seed, language="Français")
        assert {v.params["language"] for v in by_name} == {"fr"}


def test_multilingual_for_english_goes_round_the_table_languages() -> None:
    languages = set()
    for seed in SEEDS:
        for v in variations("multilingual", INPUTS[3], seed, count=3):  # NOVICE speaks en
            languages.add(v.params["language"])
    assert languages == set(CODE_SWITCH)


def test_multilingual_without_tables_for_the_language_recommends_llm_mode() -> None:
    with pytest.raises(UnsupportedStrategy) as caught:
        variations("multilingual", INPUTS[0], 1, language="ja")
    message = str(caught.value)
    assert "multilingual" in message and "'ja'" in message and "--mode llm" in message
    assert caught.value.strategy == "multilingual"
