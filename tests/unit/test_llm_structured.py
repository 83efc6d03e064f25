"""Structured output for a non-supervisor role through the llm layer, against the fake server.

A judge-like role asks for ``{"score": int}`` and gets a validated pydantic model back, with
the real ``openai`` and ``anthropic`` clients making real HTTP requests to 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from support.judge_model import Score
from support.llm_server import (
    CHAT,
    MESSAGES,
    FakeLLMServer,
    Scripted,
    anthropic_message,
    chat_completion,
    llm_server,
)

from pytest_fluxloop.llm import (
    LLMClient,
    LLMError,
    LLMOutputWarning,
    LLMRequest,
    StructuredCaller,
    TokenUsage,
    create_client,
    parse_model,
)

__all__ = ["llm_server"]  # the fixture, imported for pytest

KEY = "sk-judge-0123456789abcdefghijklmnop"
MODEL = "judge-model"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer", "description": "1 (bad) to 5 (good)"}},
    "required": ["score"],
    "additionalProperties": False,
}
needs_anthropic = pytest.mark.skipif(
    importlib.util.find_spec("anthropic") is None, reason="anthropic is not installed"
)
PROVIDERS = ["openai", pytest.param("anthropic", marks=needs_anthropic)]


def judge_request(**overrides: Any) -> LLMRequest:
    values: dict[str, Any] = {
        "system": "You grade answers.",
        "user": "Answer: 42. Grade it.",
        "schema": SCHEMA,
        "schema_name": "judge_score",
        "schema_description": "Record the score.",
        "temperature": 0.0,
        **overrides,
    }
    return LLMRequest(**values)


def client(server: FakeLLMServer, provider: str, **options: Any) -> LLMClient:
    base_url = server.openai_base_url if provider == "openai" else server.url
    settings: dict[str, Any] = {
        "model": MODEL,
        "role": "judge",
        "retry_base_delay": 0.01,
        "timeout": 10.0,
        **options,
    }
    return create_client(provider, api_key=KEY, base_url=base_url, **settings)


def reply(provider: str, data: Any = None, *, text: str | None = None, **kwargs: Any) -> Scripted:
    """A success answer: the JSON as content (openai) or as the tool input (anthropic)."""
    if provider == "openai":
        return chat_completion(text if text is not None else json.dumps(data), **kwargs)
    if text is not None:
        return anthropic_message(text=text, tool_name="judge_score", **kwargs)
    return anthropic_message(tool_input=data, tool_name="judge_score", **kwargs)


def endpoint(provider: str) -> str:
    return CHAT if provider == "openai" else MESSAGES


@pytest.mark.parametrize("provider", PROVIDERS)
def test_judge_score_through_the_provider(llm_server: FakeLLMServer, provider: str) -> None:
    llm_server.script(endpoint(provider), reply(provider, {"score": 4}))
    caller = StructuredCaller(client(llm_server, provider), parse_model(Score), what="score")

    result = caller.call(judge_request())

    assert isinstance(result.value, Score) and result.value.score == 4
    assert (result.attempts, result.model) == (1, MODEL)
    expected = (
        TokenUsage(prompt_tokens=100, completion_tokens=20, total_tokens=120)
        if provider == "openai"
        else TokenUsage(prompt_tokens=80, completion_tokens=15, total_tokens=95)
    )
    assert result.usage == expected
    body = llm_server.requests(endpoint(provider))[0].json()
    assert body["model"] == MODEL
    if provider == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "judge_score", "strict": True, "schema": SCHEMA},
        }
        assert body["messages"] == [
            {"role": "system", "content": "You grade answers."},
            {"role": "user", "content": "Answer: 42. Grade it."},
        ]
        assert body["temperature"] == 0.0
    else:
        assert body["tools"] == [
            {"name": "judge_score", "description": "Record the score.", "input_schema": SCHEMA}
        ]
        assert body["tool_choice"] == {"type": "tool", "name": "judge_score"}
        assert body["system"] == "You grade answers." and body["max_tokens"] == 1024
        assert body["messages"] == [{"role": "user", "content": "Answer: 42. Grade it."}]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_request_model_and_max_tokens_override_the_client(
    llm_server: FakeLLMServer, provider: str
) -> None:
    llm_server.script(endpoint(provider), reply(provider, {"score": 2}))
    caller = StructuredCaller(client(llm_server, provider), parse_model(Score))
    result = caller.call(judge_request(model="other-model", max_tokens=50, temperature=None))
    assert result.model == "other-model"
    body = llm_server.requests(endpoint(provider))[0].json()
    assert body["model"] == "other-model" and "temperature" not in body
    assert body.get("max_tokens") == (50 if provider == "anthropic" else None)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rule_violation_is_retried_without_a_format_warning(
    llm_server: FakeLLMServer, provider: str, recwarn: pytest.WarningsRecorder
) -> None:
    llm_server.script(
        endpoint(provider), reply(provider, {"score": 9}), reply(provider, {"score": 1})
    )
    result = StructuredCaller(client(llm_server, provider), parse_model(Score)).call(
        judge_request()
    )
    assert result.value.score == 1 and result.attempts == 2
    assert result.usage is not None and result.usage.total_tokens in (240, 190)
    assert not [w for w in recwarn if issubclass(w.category, LLMOutputWarning)]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_prose_output_is_warned_once_and_still_validated(
    llm_server: FakeLLMServer, provider: str
) -> None:
    llm_server.script(
        endpoint(provider),
        reply(provider, text='I\'d say {"score": 3}.'),
        reply(provider, text="Nothing useful."),
        reply(provider, {"score": 5}),
    )
    caller = StructuredCaller(client(llm_server, provider), parse_model(Score), what="score")
    with pytest.warns(LLMOutputWarning, match="the judge server at .* Scores are validated"):
        assert caller.call(judge_request()).value.score == 3
    with no_format_warning():
        second = caller.call(judge_request())
    assert (second.value.score, second.attempts) == (5, 2)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invalid_output_after_bounded_retries_is_an_llm_error(
    llm_server: FakeLLMServer, provider: str
) -> None:
    llm_server.script(endpoint(provider), *[reply(provider, {"grade": "A"}) for _ in range(4)])
    caller = StructuredCaller(
        client(llm_server, provider), parse_model(Score), invalid_output_retries=1, what="score"
    )
    with pytest.warns(LLMOutputWarning), pytest.raises(LLMError) as info:
        caller.call(judge_request())
    error = info.value
    assert (error.code, error.fatal, error.attempts, error.role) == (
        "invalid_output",
        False,
        2,
        "judge",
    )
    assert len(llm_server.requests(endpoint(provider))) == 2
    message = str(error)
    assert message.startswith(f"judge invalid_output (provider {provider}, model '{MODEL}'")
    assert "no valid score after 2 tries" in message and "grade" in message
    assert KEY not in message
    assert error.usage is not None and error.usage.total_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncated_output_is_not_retried(llm_server: FakeLLMServer, provider: str) -> None:
    truncated = (
        chat_completion('{"sco', finish_reason="length")
        if provider == "openai"
        else anthropic_message(text='{"sco', stop_reason="max_tokens")
    )
    llm_server.script(endpoint(provider), truncated, reply(provider, {"score": 3}))
    with pytest.raises(LLMError) as info:
        StructuredCaller(client(llm_server, provider), parse_model(Score)).call(judge_request())
    assert (info.value.code, info.value.attempts) == ("truncated", 1)
    assert llm_server.pending(endpoint(provider)) == 1


def test_llm_error_pickles_converts_and_reports() -> None:
    usage = TokenUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
    error = LLMError(
        "judge quota (...): no quota",
        code="quota",
        fatal=True,
        role="judge",
        provider="openai",
        base_url="http://x/v1",
        model=MODEL,
        attempts=1,
        usage=usage,
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is LLMError and copy.fields() == error.fields()
    assert str(copy) == str(error)
    again = error.again()
    assert (again.repeat, again.attempts, again.usage, again.fatal) == (True, 0, None, True)
    info = error.to_error_info()
    assert (info.kind, info.type, info.message) == ("infrastructure", "LLMError.quota", str(error))


@contextmanager
def no_format_warning() -> Iterator[None]:
    """Fail if an :class:`LLMOutputWarning` is raised inside the block."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not [w for w in caught if issubclass(w.category, LLMOutputWarning)]
