"""The llm layer's retry timing and error classification, on plain exception objects.

No server, no SDK: the exceptions are shaped like the SDKs' (``status_code``, ``body``,
``response.headers``), which is all :mod:`pytest_fluxloop.llm.retry` and
:mod:`pytest_fluxloop.llm.classify` look at.
"""

from __future__ import annotations

import errno
import random
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_fluxloop.llm.classify import (
    MAX_EXCERPT_CHARS,
    classify_error,
    classify_status,
    error_fields,
    excerpt,
)
from pytest_fluxloop.llm.retry import (
    MAX_RETRY_AFTER_SECONDS,
    backoff_delay,
    error_code,
    is_transient,
    retry_after_hint,
    retry_after_ms,
    retry_after_seconds,
)
from pytest_fluxloop.redact import Redactor

SECRET = "sk-test-abcdefghijklmnopqrstuvwxyz0123"


class StatusError(Exception):
    """Shaped like an SDK status error: ``status_code``, ``body``, ``code``, headers."""

    def __init__(
        self,
        status: int,
        message: str = "failed",
        *,
        body: Any = None,
        code: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status
        self.message = message
        self.body = body
        self.code = code
        self.response = SimpleNamespace(headers=headers if headers is not None else {})


class RateLimitError(StatusError):
    """Matched by class name, like openai.RateLimitError."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(429, "rate limited", **kwargs)


class ReadTimeout(Exception):
    """Matched by class name, like httpx.ReadTimeout."""


class CustomFlake(Exception):
    pass


# --------------------------------------------------------------------------- is_transient


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionResetError(errno.ECONNRESET, "reset"), True),
        (OSError(errno.EHOSTUNREACH, "no route"), True),
        (OSError(errno.ENOSPC, "disk full"), False),
        (TimeoutError(), True),
        (ReadTimeout(), True),
        (RateLimitError(), True),
        (RateLimitError(code="insufficient_quota"), False),
        (StatusError(503), True),
        (StatusError(408), True),
        (StatusError(422), False),
        (StatusError(500, body={"error": {"code": "model_not_found"}}), False),
        (ValueError("bad"), False),
    ],
    ids=repr,
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_is_transient_extra_names_match_class_or_dotted_path() -> None:
    assert not is_transient(CustomFlake())
    assert is_transient(CustomFlake(), ("CustomFlake",))
    assert is_transient(CustomFlake(), (f"{__name__}.CustomFlake",))
    assert not is_transient(CustomFlake(), ("OtherError",))


def test_error_code_reads_attribute_then_body() -> None:
    assert error_code(StatusError(429, code="insufficient_quota")) == "insufficient_quota"
    assert error_code(StatusError(429, body={"error": {"code": "rate_limit"}})) == "rate_limit"
    assert error_code(StatusError(429, body={"code": "flat"})) == "flat"
    assert error_code(StatusError(429, code=42)) is None
    assert error_code(ValueError()) is None


# --------------------------------------------------------------------------- Retry-After


def test_retry_after_seconds_and_ms() -> None:
    assert retry_after_seconds(RateLimitError(headers={"retry-after": "3"})) == 3.0
    assert retry_after_seconds(RateLimitError(headers={"retry-after-ms": "300"})) is None
    assert retry_after_ms(RateLimitError(headers={"retry-after-ms": "250"})) == 0.25
    assert retry_after_ms(RateLimitError(headers={"Retry-After-Ms": "1500"})) == 1.5
    assert retry_after_ms(RateLimitError(headers={"retry-after-ms": "soon"})) is None
    assert retry_after_ms(ValueError()) is None


def test_retry_after_hint_prefers_seconds_then_ms() -> None:
    both = RateLimitError(headers={"retry-after": "2", "retry-after-ms": "100"})
    assert retry_after_hint(both) == 2.0
    assert retry_after_hint(RateLimitError(headers={"retry-after-ms": "100"})) == 0.1
    assert retry_after_hint(RateLimitError(headers={"retry-after": "x"})) is None
    assert retry_after_hint(RateLimitError()) is None


def test_max_retry_after_is_a_minute() -> None:
    assert MAX_RETRY_AFTER_SECONDS == 60.0


# --------------------------------------------------------------------------- backoff


def test_backoff_doubles_within_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempt in range(5):
        delay = backoff_delay(attempt, rng, base=0.5, cap=100.0)
        assert 0.5 * 2**attempt * 0.5 <= delay <= 0.5 * 2**attempt
    assert all(backoff_delay(30, rng, base=0.5, cap=8.0) <= 8.0 for _ in range(20))
    assert backoff_delay(30, random.Random(1), base=0.5, cap=8.0) >= 4.0


# --------------------------------------------------------------------------- classification


def classify(exc: Exception, transport: str | None = None) -> tuple[str, bool, str]:
    failure = classify_error(
        exc,
        transport=transport,
        redactor=Redactor(extra_secrets=[SECRET]),
        key_hint="judge.api_key or OPENAI_API_KEY",
        not_found_hint="check judge.model",
    )
    return failure.code, failure.retryable, failure.detail


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (
            StatusError(401, body={"error": {"message": "bad key", "code": "invalid_api_key"}}),
            "auth",
            False,
        ),
        (StatusError(403, body={"error": {"message": "no access"}}), "auth", False),
        (StatusError(400, code="invalid_api_key"), "auth", False),
        (StatusError(404, body={"error": {"message": "no such model"}}), "model_not_found", False),
        (StatusError(400, code="model_not_found"), "model_not_found", False),
        (StatusError(429, code="insufficient_quota"), "quota", False),
        (StatusError(402, "payment required"), "quota", False),
        (
            StatusError(
                400,
                body={
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Your credit balance is too low",
                    }
                },
            ),
            "quota",
            False,
        ),
        (StatusError(429, code="rate_limit_exceeded"), "rate_limited", True),
        (StatusError(500), "server_error", True),
        (
            StatusError(529, body={"error": {"type": "overloaded_error", "message": "Overloaded"}}),
            "server_error",
            True,
        ),
        (StatusError(408), "server_error", True),
        (StatusError(409), "server_error", True),
        (StatusError(400, code="context_length_exceeded"), "bad_request", False),
        (StatusError(422), "bad_request", False),
        (RuntimeError("weird"), "client_error", False),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, Exception) else str(v),
)
def test_status_classification(exc: Exception, code: str, retryable: bool) -> None:
    assert classify(exc)[:2] == (code, retryable)


def test_transport_errors_are_retryable_with_their_code() -> None:
    assert classify(ConnectionError("reset"), transport="connection")[:2] == ("connection", True)
    assert classify(TimeoutError("slow"), transport="timeout")[:2] == ("timeout", True)


def test_hints_and_provider_code_reach_the_detail() -> None:
    _, _, auth = classify(
        StatusError(401, body={"error": {"message": "nope", "code": "invalid_api_key"}})
    )
    assert auth.startswith("HTTP 401 (invalid_api_key): nope")
    assert "check the API key (judge.api_key or OPENAI_API_KEY)" in auth
    _, _, missing = classify(StatusError(404, body={"error": {"message": "gone"}}))
    assert missing.endswith(". check judge.model")
    _, _, quota = classify(StatusError(429, code="insufficient_quota"))
    assert "no quota left" in quota


def test_secrets_are_scrubbed_and_long_text_cut() -> None:
    _, _, detail = classify(StatusError(401, body={"error": {"message": f"key {SECRET} is wrong"}}))
    assert SECRET not in detail and "key" in detail
    text = excerpt(Redactor(), "x" * (MAX_EXCERPT_CHARS + 50))
    assert text == "x" * MAX_EXCERPT_CHARS + "..."


def test_error_fields_openai_anthropic_and_plain() -> None:
    openai_like = StatusError(429, body={"error": {"message": "m", "type": "t", "code": "c"}})
    assert error_fields(openai_like) == ("c", "m")
    anthropic_like = StatusError(
        400, body={"type": "error", "error": {"type": "t", "message": "m"}}
    )
    assert error_fields(anthropic_like) == ("t", "m")
    numeric = StatusError(404, body={"error": {"message": "m", "code": 404}})
    assert error_fields(numeric) == ("404", "m")
    assert error_fields(StatusError(500, "plain", body={"error": "upstream down"})) == (
        None,
        "upstream down",
    )
    assert error_fields(StatusError(500, "only message")) == (None, "only message")


def test_classify_status_takes_the_status_given() -> None:
    exc = StatusError(200)
    failure = classify_status(exc, 503, redactor=Redactor(), key_hint="k", not_found_hint="n")
    assert (failure.code, failure.retryable) == ("server_error", True)
