"""Which errors are transient (worth a retry), and how long to wait before the next attempt.

Classified by class name along the MRO rather than by importing openai/anthropic/httpx, so
the engine stays light and works whichever of those clients the agent uses.
"""

from __future__ import annotations

import errno
import random

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


def retry_after_seconds(exc: BaseException) -> float | None:
    """A server's ``Retry-After`` (seconds form) from the exception's response, if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        if value is None and hasattr(headers, "items"):
            # httpx headers are case-insensitive; a plain mapping keeps the sender's spelling.
            value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, rng: random.Random, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter: ``base·2^attempt`` capped, times a factor in [0.5, 1]."""
    return min(cap, base * (2**attempt)) * rng.uniform(0.5, 1.0)
