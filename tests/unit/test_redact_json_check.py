"""The redactor's quick check on a record's JSON line (``Redactor.leaves_json_unchanged``).

The files sink skips the walk over a record when the check says redaction would change
nothing, so the check must never say so wrongly: every rule of the redactor has to fire it,
wherever the secret sits in the JSON text (after an escape, in a key, in JSON held in a
string). A seeded generator mixes secrets, near-misses and awkward characters into values
and keys; for every value the check passes, redaction must return the value unchanged.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from pytest_fluxloop.jsonsafe import dumps_line
from pytest_fluxloop.redact import Redactor

LITERAL = 'lit"eral\\secret-42'

SECRETS = [
    "sk-" + "a1B2" * 5,
    "sk-proj-" + "Z" * 20,
    "ghp_" + "x" * 24,
    "github_pat_" + "y" * 24,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln",
    "AKIA" + "ABCDEFGHIJKLMNOP",
    "Bearer abcdefgh12345",
    "bearer\u2028abcdefghijk",
    "Bearer\tqwertyuiop",
    "Basic dXNlcjpwYXNzMTIz==",
    "password: hunter22",
    "Password\n: hunter22",
    'api_key="x1234567"',
    "API-KEY = 'abcdefgh'",
    "token\x0b= abcdefgh",
    '{"token": "abcdefghi"}',
    '{"Authorization": "x"}',
    "client_secret=abcdefgh",
    "set-cookie: a=b",
    "my credentials: abcdefgh",
    LITERAL,
    "env-secret-value-77",
]
NEAR_MISSES = [
    "task-" + "a" * 20,
    "plain text about refunds",
    "token_usage",
    "max_tokens=5",
    "tokens: 7",
    "author: Jane",
    "keyboard and monkey",
    "Basically fine",
    "a:b=c",
    "through the night",
    "2026-12-01T06:04:04.123+00:00",
    "0123456789abcdef0123456789abcdef",
]
ODD = ['"', "\\", "\n", "\t", "\u00e9", "\u2028", "\x0b", "\ud800", "\x85", " ", ":", "="]
KEYS = [
    "api_key",
    "accessToken",
    "X-Api-Key",
    "apikey_id",
    "APIKEY",
    "privateKey",
    "signing-key",
    "auth",
    "auth\n",
    "x_auth_",
    "Bearer",
    "secretName",
    "PASSWORD",
    "session_cookie",
    "access_token\u00e9",
    # not secret
    "tokenX",
    "token_usage",
    "max_tokens",
    "author",
    "auth_mode",
    "sort_key",
    "keyboard",
    "input",
    "output",
    "metadata",
    "persona",
]


def _text(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 4)):
        pool = rng.choice((SECRETS, NEAR_MISSES, NEAR_MISSES, ODD))
        parts.append(rng.choice(pool))
    return rng.choice(("", " ", "\n", "x")).join(parts)


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice((_text(rng), _text(rng), 7, 2.5, None, True))
    if roll < 0.75:
        return {
            (rng.choice(KEYS) if rng.random() < 0.7 else _text(rng)): _value(rng, depth + 1)
            for _ in range(rng.randint(1, 4))
        }
    return [_value(rng, depth + 1) for _ in range(rng.randint(1, 3))]


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([LITERAL], environ={"MY_SERVICE_TOKEN": "env-secret-value-77"})


def test_the_check_passes_only_values_that_redaction_leaves_unchanged(redactor: Redactor) -> None:
    rng = random.Random(20261201)
    passed = 0
    for _ in range(6000):
        value = _value(rng)
        if redactor.leaves_json_unchanged(dumps_line(value)):
            passed += 1
            assert redactor(value) == value, dumps_line(value)
    assert passed > 300  # the check is not trivially False


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("where", ["value", "nested", "after_newline", "key"])
def test_every_secret_fires_the_check_wherever_it_sits(
    redactor: Redactor, secret: str, where: str
) -> None:
    value: Any = {
        "value": {"output": secret},
        "nested": {"a": [{"b": f"x {secret} y"}]},
        "after_newline": {"input": f"line one\n{secret}"},
        "key": {secret: 1},
    }[where]
    assert redactor(value) != value or where == "key"
    assert not redactor.leaves_json_unchanged(dumps_line(value))


@pytest.mark.parametrize("key", KEYS[: KEYS.index("tokenX")])
def test_secret_keys_fire_the_check(redactor: Redactor, key: str) -> None:
    value = {"metadata": {key: "plain"}}
    assert redactor(value) != value
    assert not redactor.leaves_json_unchanged(dumps_line(value))


def test_an_ordinary_record_passes(redactor: Redactor) -> None:
    record = {
        "trace_id": "0123456789abcdef0123456789abcdef",
        "input": "Customer question 3: how do I get a refund for order 1003?",
        "output": "ok Customer question 3",
        "persona": "novice_user",
        "token_usage": None,
        "metadata": {"persona": "novice_user", "tokens": 3, "author": "me"},
        "started_at": "2026-12-01T06:04:04.123+00:00",
        "observations": [],
    }
    assert redactor.leaves_json_unchanged(dumps_line(record))


def test_custom_rules_and_deep_values_always_take_the_walk() -> None:
    clean = dumps_line({"input": "hello"})
    assert not Redactor(extra_keys=["session_id"]).leaves_json_unchanged(clean)
    assert not Redactor(extra_patterns=[r"\d{4}"]).leaves_json_unchanged(clean)
    assert not Redactor(["s\u00e9cret-value"]).leaves_json_unchanged(clean)
    deep: Any = "leaf"
    for _ in range(120):
        deep = [deep]
    redactor = Redactor()
    assert redactor(deep) != deep  # cut at max_depth
    assert not redactor.leaves_json_unchanged(dumps_line(deep))


def _record(**overrides: Any) -> Any:
    from datetime import datetime, timezone

    from pytest_fluxloop.records import Observation, TraceRecord

    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    data: dict[str, Any] = {
        "trace_id": "0123456789abcdef0123456789abcdef",
        "case_id": "in00-hi-novice_user-it0",
        "iteration": 0,
        "persona": "novice_user",
        "input": "How do I start?",
        "output": "Click New.",
        "duration_ms": 1.5,
        "success": True,
        "status": "success",
        "started_at": t0,
        "completed_at": t0,
        "metadata": {"persona": "novice_user"},
        "observations": [
            Observation(trace_id="t", type="generation", name="chat", input="q " * 60)
        ],
    }
    data.update(overrides)
    return TraceRecord(**data)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"output": "my key is sk-" + "a" * 24},
        {"metadata": {"api_key": "plain-but-secret"}},
        {"output": "Bearer abcdefgh12345 and the literal " + LITERAL},
        {"input": "line\nsk-" + "b" * 20},
    ],
    ids=["clean", "key-shape", "secret-key", "literal", "after-newline"],
)
@pytest.mark.parametrize("save_traces", [True, False])
@pytest.mark.parametrize("max_chars", [100_000, 40])
def test_the_writer_lines_are_those_of_the_full_walk(
    redactor: Redactor, overrides: dict[str, Any], save_traces: bool, max_chars: int
) -> None:
    # The files sink's lines (quick check first) equal the lines of the record redacted by
    # the walk: whether the check passes (clean) or sends the record to the walk.
    from pytest_fluxloop.artifacts.writer import _record_json, _redacted_lines, record_lines

    record = _record(**overrides)
    quick = _redacted_lines(record, redactor, save_traces, max_chars)
    walked = record_lines(
        redactor(_record_json(record)), save_traces=save_traces, max_field_chars=max_chars
    )
    assert quick == walked
