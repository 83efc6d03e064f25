"""Secrets never reach an artifact file (fault case 26)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_fluxloop.artifacts import REDACTED, ExperimentWriter, Redactor, is_secret_key, redact
from pytest_fluxloop.records import ErrorInfo, Observation, TraceRecord

T0 = datetime(2024, 11, 1, 14, 30, 22, tzinfo=timezone.utc)

OPENAI_KEY = "sk-proj-AbCdEf0123456789GhIjKlMnOpQrStUv"
ANTHROPIC_KEY = "sk-ant-api03-ZyXwVu9876543210TsRqPoNmLk"
BEARER = "eyJhbGciOiJIUzI1NiJ9.payload-part.signature_42"
GITHUB = "ghp_0123456789abcdefghijABCDEFGHIJklmnop"
AWS = "AKIAIOSFODNN7EXAMPLE"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU"
BASIC = "dXNlcjpzM2NyZXQtcGFzc3dvcmQ="
PLAIN_API_KEY = "plain-value-under-api-key-field"
PASSWORD = "hunter2-correct-horse"
ENV_SECRET = "env-only-secret-value-91a7"
EXTRA_SECRET = "literal-from-constructor-55"


# -- key names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "apikey",
        "API-KEY",
        "apiKey",
        "x-api-key",
        "X-Api-Key",
        "token",
        "access_token",
        "accessToken",
        "refresh-token",
        "secret",
        "client_secret",
        "password",
        "db_password",
        "passwd",
        "Authorization",
        "proxy-authorization",
        "auth",
        "credential",
        "credentials",
        "cookie",
        "Set-Cookie",
        "private_key",
        "collector_api_key",
        "supervisor_api_key",
        "OPENAI_API_KEY",
    ],
)
def test_secret_key_names(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "token_usage",
        "max_tokens",
        "prompt_tokens",
        "completion_tokens",
        "tokens",
        "author",
        "authors",
        "auth_mode",
        "sort_key",
        "key",
        "monkey",
        "tokenizer",
        "input",
        "output",
        "",
    ],
)
def test_non_secret_key_names(key: str) -> None:
    assert not is_secret_key(key)


# -- values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"my key is {OPENAI_KEY}.", OPENAI_KEY),
        ("old style sk-0123456789abcdefghijKLMN here", "sk-0123456789abcdefghijKLMN"),
        (f"anthropic={ANTHROPIC_KEY}", ANTHROPIC_KEY),
        (f"curl -H 'Authorization: Bearer {BEARER}'", BEARER),
        (f"authorization: bearer {BEARER}", BEARER),
        (f"Authorization: Basic {BASIC}", BASIC),
        (f"token {GITHUB} pushed", GITHUB),
        (f"aws {AWS}", AWS),
        (f"session jwt={JWT};", JWT),
    ],
)
def test_credential_shapes_in_free_text(text: str, secret: str) -> None:
    out = Redactor(include_env=False).redact_text(text)
    assert secret not in out
    assert REDACTED in out


def test_auth_scheme_stays_readable() -> None:
    out = Redactor(include_env=False).redact_text(f"Bearer {BEARER} and Basic {BASIC}")
    assert out == f"Bearer {REDACTED} and Basic {REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "scikit-learn and sk-learn are fine",
        "task-force-alpha-bravo-charlie-delta",
        "Basic instructions for beginners",
        "short",
        "AKIA is a prefix, not a key",
        "Counted 1234 max_tokens",
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert Redactor(include_env=False).redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('api_key="plain-value"', f'api_key="{REDACTED}"'),
        ("password: hunter2 and more", f"password: {REDACTED} and more"),
        ("OPENAI_API_KEY=abc123 next", f"OPENAI_API_KEY={REDACTED} next"),
        ('{"client_secret": "abc def", "x": 1}', f'{{"client_secret": "{REDACTED}", "x": 1}}'),
        ("OpenAI(api_key='zzz', base_url=x)", f"OpenAI(api_key='{REDACTED}', base_url=x)"),
        ("authorization=Token abc", f"authorization=Token {REDACTED}"),
        ("max_tokens=5 token_usage: 3 author: Ada tokens: 7", None),
    ],
)
def test_secret_assignments_in_text(text: str, expected: str | None) -> None:
    assert Redactor(include_env=False).redact_text(text) == (expected or text)


def test_env_secret_values_and_extra_literals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", ENV_SECRET)
    monkeypatch.setenv("TINY_API_KEY", "short")  # under 8 chars: ignored, would mangle text
    monkeypatch.setenv("HOME_DIRECTORY", "not-a-secret-name-value")
    redactor = Redactor([EXTRA_SECRET, "abc"])
    out = redactor({"note": f"x{ENV_SECRET}y {EXTRA_SECRET} short abc not-a-secret-name-value"})
    assert out == {"note": f"x{REDACTED}y {REDACTED} short abc not-a-secret-name-value"}


def test_env_is_read_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATE_API_KEY", raising=False)
    early = Redactor()
    monkeypatch.setenv("LATE_API_KEY", "late-secret-12345678")
    assert early.redact_text("late-secret-12345678") == "late-secret-12345678"
    assert Redactor().redact_text("late-secret-12345678") == REDACTED
    # The module-level helper notices the new variable.
    assert redact(["late-secret-12345678"]) == [REDACTED]


def test_known_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLOOP_SUPERVISOR_API_KEY", "supervisor-value-xyz")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "anthropic-value-xyz")
    out = Redactor().redact_text("supervisor-value-xyz / anthropic-value-xyz")
    assert out == f"{REDACTED} / {REDACTED}"


def test_structure_deep_copy_and_key_rules() -> None:
    data: dict[str, Any] = {
        "headers": {"Authorization": f"Bearer {BEARER}", "Accept": "application/json"},
        "api_key": {"nested": "whole value hidden"},
        "token": None,
        "auth": True,
        "token_usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        "max_tokens": 256,
        "author": "Ada",
        "items": (f"use {OPENAI_KEY}", 3, 1.5),
    }
    original = copy.deepcopy(data)
    out = Redactor(include_env=False)(data)
    assert data == original  # input untouched
    assert out == {
        "headers": {"Authorization": REDACTED, "Accept": "application/json"},
        "api_key": REDACTED,
        "token": None,
        "auth": True,
        "token_usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        "max_tokens": 256,
        "author": "Ada",
        "items": (f"use {REDACTED}", 3, 1.5),
    }


def test_cycles_and_depth_do_not_crash() -> None:
    loop: list[Any] = [OPENAI_KEY]
    loop.append(loop)
    deep: Any = OPENAI_KEY
    for _ in range(500):
        deep = [deep]
    redactor = Redactor(include_env=False, max_depth=50)
    assert redactor(loop) == [REDACTED, "<cycle>"]
    assert OPENAI_KEY not in json.dumps(redactor(deep))


def test_secret_in_a_dict_key_is_scrubbed() -> None:
    assert Redactor(include_env=False)({OPENAI_KEY: 1}) == {REDACTED: 1}


# -- end to end: nothing in the experiment directory ---------------------------------------

ALL_SECRETS = (
    OPENAI_KEY,
    ANTHROPIC_KEY,
    BEARER,
    GITHUB,
    AWS,
    JWT,
    BASIC,
    PLAIN_API_KEY,
    PASSWORD,
    ENV_SECRET,
    EXTRA_SECRET,
)


def _secret_record() -> TraceRecord:
    return TraceRecord(
        trace_id="trace-1",
        case_id="case-1",
        iteration=0,
        persona="novice",
        input=f"please use {OPENAI_KEY} to call the API",
        output={"reply": f"done with Bearer {BEARER}", "password": PASSWORD},
        duration_ms=12.5,
        success=False,
        status="error",
        error=ErrorInfo(
            type="AuthError",
            message=f"invalid key {ANTHROPIC_KEY}",
            traceback=f'Traceback...\n  api_key="{PLAIN_API_KEY}"\nAuthError: {GITHUB} {AWS}',
        ),
        started_at=T0,
        completed_at=T0,
        metadata={
            "request": {"headers": {"Authorization": f"Basic {BASIC}", "X-Api-Key": GITHUB}},
            "api_key": PLAIN_API_KEY,
            "env_echo": f"key={ENV_SECRET}",
            "extra": EXTRA_SECRET,
        },
        conversation_state={"context": {"cookie": "session=abcdef123456"}},
        token_usage={"prompt_tokens": 10, "completion_tokens": 5},
        observations=[
            Observation(
                trace_id="trace-1",
                type="tool_call",
                name="http",
                timestamp=T0,
                input={"headers": {"Authorization": f"Bearer {BEARER}"}, "max_tokens": 64},
                output=f"echo {ENV_SECRET}".encode(),
                metadata={"api_key": PLAIN_API_KEY, "note": f"{OPENAI_KEY}\n{AWS}"},
            )
        ],
    )


def test_secrets_appear_nowhere_in_the_experiment_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUXLOOP_TEST_SERVICE_TOKEN", ENV_SECRET)
    writer = ExperimentWriter.create(
        tmp_path,
        experiment_name="secrets",
        description=f"uses {OPENAI_KEY}",
        config_snapshot={
            "multi_turn": {"supervisor": {"provider": "openai", "api_key": PLAIN_API_KEY}},
            "collector": {"url": "https://c.example", "collector_api_key": PASSWORD},
            "runner": {"target": "agent:run", "env": {"OPENAI_API_KEY": OPENAI_KEY}},
            "generation": {"max_tokens": 512},
        },
        metadata={"ci_token": GITHUB, "note": f"password is {ENV_SECRET}"},
        seed=7,
        total_cases=1,
        redactor=Redactor([EXTRA_SECRET]),
    )
    writer.append(_secret_record())
    writer.finish("complete", exit_code=0, extra={"notes": f"auth: Bearer {BEARER}", "jwt": JWT})

    files = sorted(p for p in writer.path.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {
        "config.yaml",
        "metadata.json",
        "summary.json",
        "trace_summary.jsonl",
        "traces.jsonl",
        "observations.jsonl",
    }
    for path in files:
        text = path.read_text(encoding="utf-8")
        for secret in ALL_SECRETS:
            assert secret not in text, f"{secret!r} leaked into {path.name}"

    trace = json.loads((writer.path / "traces.jsonl").read_text(encoding="utf-8"))
    # Counts are not secrets: they survive redaction.
    assert trace["token_usage"] == {"prompt_tokens": 10, "completion_tokens": 5}
    assert trace["observations"][0]["input"]["max_tokens"] == 64
    assert trace["metadata"]["api_key"] == REDACTED
    assert trace["metadata"]["request"]["headers"]["Authorization"] == REDACTED
    assert trace["input"] == f"please use {REDACTED} to call the API"
    config = (writer.path / "config.yaml").read_text(encoding="utf-8")
    assert "max_tokens: 512" in config
    assert "provider: openai" in config
