"""The llm client's call reliability against the fake server: error codes, Retry-After
(seconds and ms), the fatal latch and the "blocked until" gate, for a non-supervisor role.

The real ``openai`` / ``anthropic`` clients make real HTTP requests to 127.0.0.1; nothing is
patched.
"""

from __future__ import annotations

import importlib.util
import json
import time
from typing import Any

import pytest
from support.llm_server import (
    CHAT,
    MESSAGES,
    FakeLLMServer,
    Scripted,
    anthropic_error,
    anthropic_message,
    chat_completion,
    llm_server,
    openai_error,
    running_llm_server,
)

from pytest_fluxloop.llm import (
    LLMClient,
    LLMError,
    LLMOutputWarning,
    LLMRequest,
    OpenAIClient,
    Tally,
    create_client,
)
from pytest_fluxloop.llm.client import MAX_BLOCK_SECONDS, CallGate

__all__ = ["llm_server"]  # the fixture, imported for pytest

KEY = "sk-judge-0123456789abcdefghijklmnop"
MODEL = "judge-model"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer"}},
    "required": ["score"],
    "additionalProperties": False,
}
REQUEST = LLMRequest(
    system="grade", user="answer", schema=SCHEMA, schema_name="judge_score", temperature=0.3
)
needs_anthropic = pytest.mark.skipif(
    importlib.util.find_spec("anthropic") is None, reason="anthropic is not installed"
)


def openai(server: FakeLLMServer, **options: Any) -> LLMClient:
    settings: dict[str, Any] = {
        "model": MODEL,
        "role": "judge",
        "retry_base_delay": 0.01,
        "timeout": 10.0,
        **options,
    }
    return create_client("openai", api_key=KEY, base_url=server.openai_base_url, **settings)


def anthropic(server: FakeLLMServer, **options: Any) -> LLMClient:
    settings: dict[str, Any] = {
        "model": MODEL,
        "role": "judge",
        "retry_base_delay": 0.01,
        "timeout": 10.0,
        **options,
    }
    return create_client("anthropic", api_key=KEY, base_url=server.url, **settings)


def fails(client: LLMClient, tally: Tally | None = None) -> LLMError:
    with pytest.raises(LLMError) as info:
        client.call(REQUEST, tally)
    assert KEY not in str(info.value)
    return info.value


SCORE = chat_completion(json.dumps({"score": 3}))


# --------------------------------------------------------------------------- success


def test_call_returns_the_raw_output_and_counts(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, SCORE)
    tally = Tally()
    raw = openai(llm_server).call(REQUEST, tally)
    assert json.loads(raw.text or "") == {"score": 3} and raw.stop == "ok"
    assert tally.calls == 1 and tally.usage is not None and tally.usage.total_tokens == 120
    sent = llm_server.requests(CHAT)[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("response", "code", "hint"),
    [
        (
            openai_error(401, f"Incorrect API key {KEY}", code="invalid_api_key"),
            "auth",
            "OPENAI_API_KEY",
        ),
        (
            openai_error(404, "no such model", code="model_not_found"),
            "model_not_found",
            "judge.model",
        ),
        (
            openai_error(429, "You exceeded your quota", code="insufficient_quota"),
            "quota",
            "no quota",
        ),
    ],
)
def test_configuration_errors_are_fatal_and_latched(
    llm_server: FakeLLMServer, response: Scripted, code: str, hint: str
) -> None:
    llm_server.script(CHAT, response, SCORE)
    client = openai(llm_server)
    error = fails(client)
    assert (error.code, error.fatal, error.attempts, error.repeat) == (code, True, 1, False)
    assert error.role == "judge" and str(error).startswith(f"judge {code} (provider openai")
    assert hint in str(error) and llm_server.openai_base_url in str(error)
    # The latch: later calls re-raise the same error without calling the server.
    again = fails(client)
    assert (again.code, again.repeat, again.attempts, str(again)) == (code, True, 0, str(error))
    assert type(again) is LLMError
    assert len(llm_server.requests(CHAT)) == 1 and llm_server.pending(CHAT) == 1


def test_key_hint_and_config_key_are_the_callers(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, openai_error(401, "bad key", code="invalid_api_key"))
    error = fails(openai(llm_server, key_hint="judge.api_key or JUDGE_KEY"))
    assert "check the API key (judge.api_key or JUDGE_KEY)" in str(error)
    llm_server.script(CHAT, openai_error(404, "missing"))
    error = fails(openai(llm_server, config_key="evaluation.judge"))
    assert "check evaluation.judge.model and evaluation.judge.base_url" in str(error)


def test_429_with_retry_after_seconds_is_honoured(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        CHAT,
        openai_error(429, "slow down", code="rate_limit_exceeded", headers={"Retry-After": "0.4"}),
        SCORE,
    )
    tally = Tally()
    started = time.monotonic()
    openai(llm_server).call(REQUEST, tally)
    assert time.monotonic() - started >= 0.4
    assert tally.calls == 2


def test_retry_after_ms_is_honoured(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        CHAT, openai_error(429, "slow down", headers={"retry-after-ms": "400"}), SCORE
    )
    tally = Tally()
    started = time.monotonic()
    openai(llm_server).call(REQUEST, tally)
    assert time.monotonic() - started >= 0.4
    assert tally.calls == 2


def test_retry_after_ms_above_the_limit_gives_up(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, openai_error(429, "slow down", headers={"retry-after-ms": "5000"}))
    started = time.monotonic()
    error = fails(openai(llm_server, max_retry_after=1.0))
    assert time.monotonic() - started < 4
    assert error.code == "rate_limited" and "retry after 5 s" in str(error)
    assert "the judge waits: giving up" in str(error)


def test_5xx_is_retried_then_gives_up_with_the_count(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, *[openai_error(500, "boom", type="server_error") for _ in range(5)])
    error = fails(openai(llm_server, transport_retries=2))
    assert (error.code, error.fatal, error.attempts) == ("server_error", False, 3)
    assert "(after 3 attempts)" in str(error) and len(llm_server.requests(CHAT)) == 3


def test_5xx_then_success_counts_every_attempt(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        CHAT, openai_error(503, "busy", type="server_error"), Scripted(drop=True), SCORE
    )
    tally = Tally()
    openai(llm_server).call(REQUEST, tally)
    assert tally.calls == 3


def test_bad_request_is_not_retried(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, openai_error(400, "too long", code="context_length_exceeded"), SCORE)
    error = fails(openai(llm_server))
    assert (error.code, error.fatal, error.attempts) == ("bad_request", False, 1)
    assert llm_server.pending(CHAT) == 1


def test_unreachable_server_is_a_connection_error() -> None:
    with running_llm_server() as server:
        url = server.openai_base_url
    client = create_client(
        "openai",
        api_key=KEY,
        base_url=url,
        model=MODEL,
        role="judge",
        transport_retries=1,
        retry_base_delay=0.01,
        timeout=5.0,
    )
    error = fails(client)
    assert (error.code, error.fatal, error.attempts) == ("connection", False, 2)
    assert url in str(error)


def test_rejected_temperature_is_dropped_once_with_a_warning(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        CHAT,
        openai_error(400, "temperature unsupported", code="unsupported_value", param="temperature"),
        SCORE,
        SCORE,
    )
    client = openai(llm_server)
    assert isinstance(client, OpenAIClient)
    with pytest.warns(LLMOutputWarning, match="the judge server at .* rejected 'temperature'"):
        client.call(REQUEST)
    client.call(REQUEST)
    assert ["temperature" in r.json() for r in llm_server.requests(CHAT)] == [True, False, False]
    assert client.dropped() == frozenset({"temperature"})


# --------------------------------------------------------------------------- the gate


def test_long_retry_after_blocks_later_calls_until_it_has_passed(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.script(CHAT, openai_error(429, "slow down", headers={"Retry-After": "1"}), SCORE)
    client = openai(llm_server, max_retry_after=0.2)
    first = fails(client)
    assert first.code == "rate_limited" and "retry after 1 s" in str(first)
    blocked = fails(client, Tally(calls=2))
    assert blocked.code == "rate_limited" and "not calling it" in str(blocked)
    assert blocked.attempts == 2  # the caller's tally, not reset by the gate
    assert len(llm_server.requests(CHAT)) == 1
    time.sleep(1.1)
    assert client.call(REQUEST).stop == "ok"  # the gate opens once the time has passed
    assert len(llm_server.requests(CHAT)) == 2


def test_call_gate_latches_the_first_fatal_error_and_caps_blocks() -> None:
    gate = CallGate()
    fatal, blocked = gate.state()
    assert fatal is None and blocked <= 0
    first = LLMError("first", code="auth", fatal=True)
    gate.latch(first)
    gate.latch(LLMError("second", code="quota", fatal=True))
    assert gate.state()[0] is first
    gate.block(10 * MAX_BLOCK_SECONDS)
    assert 0 < gate.state()[1] <= MAX_BLOCK_SECONDS
    gate.block(1.0)  # a shorter block never shortens the longer one
    assert gate.state()[1] > MAX_BLOCK_SECONDS - 5


# --------------------------------------------------------------------------- anthropic


@needs_anthropic
@pytest.mark.parametrize(
    ("response", "code"),
    [
        (anthropic_error(401, "invalid x-api-key", type="authentication_error"), "auth"),
        (anthropic_error(404, "model: judge-model", type="not_found_error"), "model_not_found"),
        (anthropic_error(400, "Your credit balance is too low"), "quota"),
    ],
)
def test_anthropic_configuration_errors_are_fatal_and_latched(
    llm_server: FakeLLMServer, response: Scripted, code: str
) -> None:
    llm_server.script(MESSAGES, response, anthropic_message(tool_input={"score": 1}))
    client = anthropic(llm_server)
    error = fails(client)
    assert (error.code, error.fatal, error.provider) == (code, True, "anthropic")
    assert fails(client).repeat
    assert len(llm_server.requests(MESSAGES)) == 1
    if code == "auth":
        assert "check the API key (ANTHROPIC_API_KEY)" in str(error)
    if code == "model_not_found":
        assert "check judge.model (a Claude model id)" in str(error)


@needs_anthropic
def test_anthropic_overloaded_and_retry_after_are_retried(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        MESSAGES,
        anthropic_error(529, "Overloaded", type="overloaded_error"),
        anthropic_error(429, "Rate limited", type="rate_limit_error", retry_after="0.3"),
        anthropic_message(tool_input={"score": 2}, tool_name="judge_score"),
    )
    tally = Tally()
    started = time.monotonic()
    raw = anthropic(llm_server).call(REQUEST, tally)
    assert time.monotonic() - started >= 0.3
    assert raw.data == {"score": 2} and tally.calls == 3
    body = llm_server.requests(MESSAGES)[-1].json()
    assert body["tools"][0]["description"] == "Record the judge_score."
