"""Error codes, the :class:`LLMError` every client raises, and the output-format warning.

An error names the role (``supervisor``, ``judge`` ...), provider, base URL and model, never
an API key. Roles subclass :class:`LLMError` to report under their own name and kind
(``SupervisorError`` is one).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, ClassVar

from ..errors import FluxloopError
from ..records import ErrorInfo, ErrorKind
from .types import TokenUsage

__all__ = ["ERROR_CODES", "FATAL_CODES", "LLMError", "LLMOutputWarning", "emit_warning"]

log = logging.getLogger("pytest_fluxloop.llm")

#: Codes of :class:`LLMError`.
ERROR_CODES = (
    "invalid_output",  # not JSON / outside the schema, after the bounded retries
    "truncated",  # the output was cut off (finish_reason "length", stop_reason "max_tokens")
    "refused",  # the model refused, or a content filter stopped it
    "rate_limited",  # 429s outlasted the retries, or Retry-After was too long to wait
    "server_error",  # 5xx / 408 / 409 outlasted the retries
    "connection",  # the server could not be reached, or reset the connection
    "timeout",  # the request timed out, retries included
    "bad_request",  # 400 / 422: the server rejected the request
    "auth",  # 401 / 403
    "quota",  # insufficient_quota / payment required
    "model_not_found",  # 404: unknown model or wrong base_url
    "client_error",  # anything else the client raised
)
#: Codes every later call would hit as well: the run stops once.
FATAL_CODES = frozenset({"auth", "quota", "model_not_found"})


class LLMError(FluxloopError):
    """An LLM call could not produce a valid output.

    ``code`` is one of :data:`ERROR_CODES`; ``fatal`` marks configuration problems every call
    would hit (bad key, no quota, unknown model), so the run stops once instead of failing each
    case. ``role`` is who made the call (it starts the message). ``repeat`` is True when a
    client re-raises a fatal error it already reported. Picklable (errors cross xdist workers).
    """

    #: The ``kind`` of :meth:`to_error_info`; a role's subclass sets its own.
    error_kind: ClassVar[ErrorKind] = "infrastructure"
    #: The role when none is given.
    default_role: ClassVar[str] = "llm"

    def __init__(
        self,
        message: str,
        *,
        code: str,
        fatal: bool = False,
        role: str | None = None,
        provider: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        attempts: int = 0,
        usage: TokenUsage | None = None,
        repeat: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fatal = fatal
        self.role = role or self.default_role
        self.provider = provider
        self.base_url = base_url
        self.model = model
        self.attempts = attempts
        self.usage = usage
        self.repeat = repeat

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: rebuild explicitly so the error survives pickling (xdist).
        return (_rebuild_error, (type(self), self.message, self.fields()))

    def fields(self) -> dict[str, Any]:
        """Every constructor keyword, to rebuild or convert this error."""
        return {
            "code": self.code,
            "fatal": self.fatal,
            "role": self.role,
            "provider": self.provider,
            "base_url": self.base_url,
            "model": self.model,
            "attempts": self.attempts,
            "usage": self.usage,
            "repeat": self.repeat,
        }

    def again(self) -> LLMError:
        """A fresh copy for re-raising in a later call: marked ``repeat``, and with no
        attempts or usage of its own (no call was made for it)."""
        fields = {**self.fields(), "repeat": True, "attempts": 0, "usage": None}
        return type(self)(self.message, **fields)

    def to_error_info(self) -> ErrorInfo:
        """This error as a trace's ``error`` block (type ``<ClassName>.<code>``)."""
        return ErrorInfo(
            kind=self.error_kind, type=f"{type(self).__name__}.{self.code}", message=str(self)
        )


def _rebuild_error(cls: type[LLMError], message: str, fields: dict[str, Any]) -> LLMError:
    return cls(message, **fields)


class LLMOutputWarning(UserWarning):
    """An LLM server did not follow the requested output format (or rejected a parameter)."""


def emit_warning(
    message: str, category: type[Warning] = LLMOutputWarning, *, stacklevel: int = 3
) -> None:
    """Warn through ``warnings``; under ``-W error`` log instead of failing the case.

    A server's format quirk is worth telling, never worth failing a test for: the output
    is validated on the client anyway.
    """
    try:
        warnings.warn(category(message), stacklevel=stacklevel)
    except Warning:
        log.warning(message)
