"""Which errors are transient (worth a retry), and how long to wait before the next attempt.

Shared by the engine (retrying the agent under test) and the LLM clients. Classified by class
name along the MRO rather than by importing openai/anthropic/httpx, so this stays light and
works whichever of those clients raised.
"""

from __future__ import annotations

import errno
import random
from typing import Any

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "backoff_delay",
    "error_code",
    "is_transient",
    "retry_after_hint",
    "retry_after_ms",
    "retry_after_seconds",
]

_TRANSIENT_BUILTINS = (ConnectionError, TimeoutError)
_NETWORK_ERRNOS = {
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EPIPE,
}
# openai / anthropic / httpx / requests / aiohttp transient error classes.
_TRANSIENT_NAMES = {
    "APIConnectionError",
    "APITimeoutError",
    "RateLimitError",
    "InternalServerError",
    "OverloadedError",
    "ServiceUnavailableError",
    "TransportError",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "ReadError",
    "WriteError",
    "PoolTimeout",
    "RemoteProtocolError",
    "ClientConnectionError",
    "ServerDisconnectedError",
}
_PERMANENT_CODES = {"insufficient_quota", "invalid_api_key", "model_not_found"}
#: The longest ``Retry-After`` worth waiting for; a longer one gives up at once.
MAX_RETRY_AFTER_SECONDS = 60.0


def _mro_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def error_code(exc: BaseException) -> str | None:
    """The provider's error code (e.g. ``insufficient_quota``), if the exception carries one."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return str(inner["code"])
    return None


def is_transient(exc: BaseException, extra: frozenset[str] | tuple[str, ...] = ()) -> bool:
    """True for network failures, timeouts, rate limits (not quota) and 5xx responses.

    ``extra`` adds exception types by class name or dotted ``module.Class`` path
    (``runner.retry_on``); a match anywhere in the exception's MRO counts.
    """
    if error_code(exc) in _PERMANENT_CODES:
        return False
    if extra:
        mro = type(exc).__mro__
        dotted = {f"{cls.__module__}.{cls.__qualname__}" for cls in mro}
        if ({cls.__name__ for cls in mro} | dotted) & set(extra):
            return True
    names = _mro_names(exc)
    if names & _TRANSIENT_NAMES:
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and (status >= 500 or status in (408, 429)):
        return True
    if isinstance(exc, _TRANSIENT_BUILTINS):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def _header(exc: BaseException, name: str) -> Any:
    """Header ``name`` (lower case) of the exception's response; None when absent."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and hasattr(headers, "items"):
        # httpx headers are case-insensitive; a plain mapping keeps the sender's spelling.
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return value


def retry_after_seconds(exc: BaseException) -> float | None:
    """A server's ``Retry-After`` (seconds form) from the exception's response, if any."""
    try:
        value = _header(exc, "retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def retry_after_ms(exc: BaseException) -> float | None:
    """A server's ``retry-after-ms`` (OpenAI's finer hint), in seconds, if any."""
    try:
        value = _header(exc, "retry-after-ms")
        return float(value) / 1000 if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def retry_after_hint(exc: BaseException) -> float | None:
    """How long the server asked to wait, in seconds: ``Retry-After``, else ``retry-after-ms``."""
    after = retry_after_seconds(exc)
    return after if after is not None else retry_after_ms(exc)


def backoff_delay(attempt: int, rng: random.Random, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter: ``base·2^attempt`` capped, times a factor in [0.5, 1]."""
    return min(cap, base * (2**attempt)) * rng.uniform(0.5, 1.0)
