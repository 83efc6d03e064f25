"""The provider client base: one structured-output call, made reliably.

A provider client (:mod:`.openai_client`, :mod:`.anthropic_client`) implements :meth:`send`:
one request with the SDK's own retries off, reduced to a :class:`~.types.RawOutput`.
:meth:`LLMClient.call` wraps it with what every role needs:

* transport retries done here, not by the SDKs, so every client version behaves the same and
  attempts are counted;
* a ``Retry-After`` is honoured, but one longer than ``max_retry_after`` is never slept
  through: the call gives up, and later calls fail at once until that time has passed;
* a fatal error (bad key, no quota, unknown model) is raised once and re-raised as
  :meth:`~.errors.LLMError.again` for every later call, without calling the server.

One client serves all threads of a run, so its state sits behind a lock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import ClassVar

from ..redact import Redactor
from ..sdk.context import acting_as
from .classify import Failure, classify_error, excerpt
from .errors import FATAL_CODES, LLMError, LLMOutputWarning, emit_warning
from .retry import MAX_RETRY_AFTER_SECONDS, backoff_delay, retry_after_hint
from .types import LLMRequest, RawOutput, Tally, TokenUsage

__all__ = ["MAX_BLOCK_SECONDS", "CallGate", "LLMClient"]

log = logging.getLogger("pytest_fluxloop.llm")

#: The longest a Retry-After keeps later requests from calling the server at all.
MAX_BLOCK_SECONDS = 3600.0


class CallGate:
    """The fatal latch and the "blocked until" time of one client (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fatal: LLMError | None = None
        self._blocked_until = 0.0

    def latch(self, error: LLMError) -> None:
        """Remember the first fatal error; later calls re-raise it."""
        with self._lock:
            self._fatal = self._fatal or error

    def block(self, seconds: float) -> None:
        """Refuse calls for ``seconds`` (capped at :data:`MAX_BLOCK_SECONDS`)."""
        with self._lock:
            until = time.monotonic() + min(seconds, MAX_BLOCK_SECONDS)
            self._blocked_until = max(self._blocked_until, until)

    def state(self) -> tuple[LLMError | None, float]:
        """The latched fatal error, and the seconds calls stay blocked (<= 0: not blocked)."""
        with self._lock:
            return self._fatal, self._blocked_until - time.monotonic()


class LLMClient:
    """Base of the provider clients; subclasses implement :meth:`send` and may override
    :meth:`transport_error` and :meth:`not_found_hint`.

    Args:
        model: the model to call (a request may override it).
        base_url: the resolved server URL, named in every message.
        api_key: only used here to scrub the key from any text that reaches a message.
        role: who calls (``"supervisor"``, ``"judge"`` ...); starts every error message.
        config_key: the settings block named in hints (``supervisor`` → ``supervisor.model``);
            defaults to ``role``.
        key_hint: where the API key is set, named after a 401/403; defaults to the
            provider's own variable (``key_env``).
        transport_retries: extra calls after 429 / 5xx / connection failures.
        max_retry_after: the longest ``Retry-After`` honoured; longer gives up at once.
        retry_base_delay: the first backoff delay when the server gives no ``Retry-After``.
        timeout: seconds per request.
        warning_category: the warning class of this client's format warnings.
    """

    provider: ClassVar[str] = "llm"
    #: What a server ignores when its output is off-format (named in the warning).
    format_feature: ClassVar[str] = "structured output"
    #: The provider's own API key variable.
    key_env: ClassVar[str] = "the provider's API key variable"

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str,
        role: str = "llm",
        config_key: str | None = None,
        key_hint: str | None = None,
        transport_retries: int = 3,
        max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
        retry_base_delay: float = 0.5,
        timeout: float = 120.0,
        warning_category: type[Warning] = LLMOutputWarning,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.role = role
        self.config_key = config_key or role
        self.key_hint = key_hint or self.key_env
        self.transport_retries = max(0, transport_retries)
        self.max_retry_after = max_retry_after
        self.retry_base_delay = retry_base_delay
        self.timeout = timeout
        self.warning_category = warning_category
        self.redactor = Redactor(extra_secrets=[api_key] if api_key else ())
        self.gate = CallGate()
        self._rng = random.Random()

    # ------------------------------------------------------------------ subclass hooks

    def send(self, request: LLMRequest) -> RawOutput:
        """Make one provider call (SDK retries off) and reduce its response."""
        raise NotImplementedError

    def transport_error(self, exc: Exception) -> str | None:
        """``"connection"``/``"timeout"`` for the SDK's transport errors, else None."""
        return None

    def not_found_hint(self) -> str:
        """What to check after a 404."""
        return f"check {self.config_key}.model and {self.config_key}.base_url"

    # ------------------------------------------------------------------ the call

    def call(self, request: LLMRequest, tally: Tally | None = None) -> RawOutput:
        """Call the provider, retrying transport failures within the bounds.

        ``tally`` counts calls and usage across the calls of one logical request (the
        structured-output loop passes the same one each time); errors carry its numbers.

        Raises:
            LLMError: a fatal error (now or latched earlier), a too-long ``Retry-After``
                (now or still pending), or a failure that outlasted the retries.
        """
        tally = tally if tally is not None else Tally()
        self._check_gate(request, tally)
        for retry in range(self.transport_retries + 1):
            tally.calls += 1
            try:
                # Captured LLM calls made now are this role's, never the agent's.
                with acting_as(self.role):
                    raw = self.send(request)
            except Exception as exc:
                failure = self.classify(exc)
                after = retry_after_hint(exc)
            else:
                tally.add_usage(raw.usage)
                return raw
            wait = self._wait_or_raise(failure, after, retry, request, tally)
            log.info("%s %s: %s; retrying in %.2f s", self.role, self.provider, failure.code, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_gate(self, request: LLMRequest, tally: Tally) -> None:
        fatal, blocked = self.gate.state()
        if fatal is not None:
            raise fatal.again()  # reported once; later calls stop here without a call
        if blocked > 0:
            raise self.error(
                "rate_limited",
                f"the server asked to wait {blocked:.0f} s more before retrying; not calling it",
                tally,
                request,
            )

    def _wait_or_raise(
        self,
        failure: Failure,
        after: float | None,
        retry: int,
        request: LLMRequest,
        tally: Tally,
    ) -> float:
        """The seconds to wait before the next attempt, or raise when there is none."""
        if failure.code in FATAL_CODES:
            error = self.error(failure.code, failure.detail, tally, request)
            self.gate.latch(error)
            raise error
        if failure.retryable and after is not None and after > self.max_retry_after:
            # Never sleep through a long Retry-After: give up now, and spare the server
            # further calls from other cases until the time has passed.
            self.gate.block(after)
            raise self.error(
                failure.code,
                f"{failure.detail}; the server asked to retry after {after:.0f} s, more "
                f"than the {self.max_retry_after:.0f} s the {self.role} waits: giving up",
                tally,
                request,
            )
        if not failure.retryable or retry >= self.transport_retries:
            tail = f" (after {tally.calls} attempts)" if failure.retryable else ""
            raise self.error(failure.code, failure.detail + tail, tally, request)
        if after is not None and after >= 0:
            return after
        return backoff_delay(retry, self._rng, base=self.retry_base_delay, cap=8.0)

    # ------------------------------------------------------------------ helpers

    def classify(self, exc: Exception) -> Failure:
        """The code, retryability and message detail of one failed call."""
        return classify_error(
            exc,
            transport=self.transport_error(exc),
            redactor=self.redactor,
            key_hint=self.key_hint,
            not_found_hint=self.not_found_hint(),
        )

    def model_for(self, request: LLMRequest | None) -> str:
        """The model ``request`` goes to."""
        return (request.model if request is not None else None) or self.model

    def excerpt(self, text: str | None) -> str:
        """``text`` with secrets redacted and its length bounded, for messages."""
        return excerpt(self.redactor, text)

    def error(
        self,
        code: str,
        detail: str,
        tally: Tally | None = None,
        request: LLMRequest | None = None,
    ) -> LLMError:
        """An :class:`LLMError` naming the role, provider, model and base URL."""
        model = self.model_for(request)
        where = f"provider {self.provider}, model {model!r}, base_url {self.base_url}"
        usage: TokenUsage | None = tally.usage if tally is not None else None
        return LLMError(
            f"{self.role} {code} ({where}): {detail}",
            code=code,
            fatal=code in FATAL_CODES,
            role=self.role,
            provider=self.provider,
            base_url=self.base_url,
            model=model,
            attempts=tally.calls if tally is not None else 0,
            usage=usage,
        )

    def warn(self, message: str) -> None:
        """Warn about this server's behaviour with the client's warning category."""
        emit_warning(message, self.warning_category, stacklevel=4)
