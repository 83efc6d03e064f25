"""What the LLM supervisors share: the retry loop, error classification and output checks.

Retries are done here, not by the SDKs (their ``max_retries`` is 0), so that every client
version behaves the same, attempts are counted, a long ``Retry-After`` is never slept
through (fault case 13), and configuration errors stop the run once (fault case 11).
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ValidationError

from ..engine.retry import MAX_RETRY_AFTER_SECONDS, backoff_delay, retry_after_seconds
from ..redact import Redactor
from .base import (
    DECISION_FIELDS,
    FATAL_CODES,
    SupervisorDecision,
    SupervisorError,
    SupervisorReply,
    SupervisorRequest,
    TokenUsage,
)

__all__ = [
    "LLMSupervisor",
    "RawOutput",
    "SupervisorOutputWarning",
    "emit_warning",
    "parse_decision",
]

log = logging.getLogger("pytest_fluxloop.supervisors")

MAX_EXCERPT_CHARS = 300
#: The longest a Retry-After keeps later requests from calling the server at all.
MAX_BLOCK_SECONDS = 3600.0
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


class SupervisorOutputWarning(UserWarning):
    """The supervisor server did not follow the requested output format."""


@dataclass
class RawOutput:
    """One provider response, reduced to what the loop needs."""

    text: str | None = None
    data: Any = None  # already-parsed JSON (an Anthropic tool input), else None
    usage: TokenUsage | None = None
    stop: str = "ok"  # "ok" | "truncated" | "refused"
    detail: str = ""  # refusal text or finish reason, for messages


class InvalidOutput(Exception):
    """The output is not a valid decision; ``schema`` is False for rule-only violations."""

    def __init__(self, message: str, *, schema: bool) -> None:
        super().__init__(message)
        self.schema = schema


def _load_json(text: str) -> tuple[Any, bool]:
    """Parse ``text``; the flag says whether the JSON had to be dug out of prose or fences."""
    stripped = text.strip()
    try:
        return json.loads(stripped), False
    except ValueError:
        pass
    fenced = _FENCE.match(stripped)
    candidates = [fenced.group(1)] if fenced else []
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate), True
        except ValueError:
            continue
    raise InvalidOutput("the output is not JSON", schema=True)


def _check_schema(data: Any) -> None:
    if not isinstance(data, dict):
        raise InvalidOutput(f"expected a JSON object, got {type(data).__name__}", schema=True)
    # Absent nullable keys count as null: not worth a warning, the model validates them.
    extra = set(data) - set(DECISION_FIELDS)
    if extra:
        raise InvalidOutput(f"unexpected keys {sorted(extra)}", schema=True)
    if data.get("decision") not in ("continue", "terminate"):
        raise InvalidOutput(f"'decision' is {data.get('decision')!r}", schema=True)
    wrong = [k for k in DECISION_FIELDS[1:] if not isinstance(data.get(k), (str, type(None)))]
    if wrong:
        raise InvalidOutput(f"{wrong} must be strings or null", schema=True)


def parse_decision(raw: RawOutput) -> tuple[SupervisorDecision, bool]:
    """Validate ``raw`` as a decision; the flag says the format was not followed exactly."""
    loose = False
    data = raw.data
    if data is None:
        if not raw.text or not raw.text.strip():
            raise InvalidOutput("the output is empty", schema=True)
        data, loose = _load_json(raw.text)
    _check_schema(data)
    try:
        return SupervisorDecision.model_validate(data), loose
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise InvalidOutput(problems, schema=False) from None


@dataclass
class _Failure:
    code: str
    retryable: bool
    detail: str


class LLMSupervisor:
    """Base of the LLM-backed supervisors: subclasses implement :meth:`_call`.

    Args:
        model, base_url, temperature, system_prompt: the provider settings.
        api_key: only used to scrub the key from any text that reaches a message.
        invalid_output_retries: extra calls after output that isn't a valid decision.
        transport_retries: extra calls after 429 / 5xx / connection failures.
        max_retry_after: the longest ``Retry-After`` honoured; longer gives up at once.
        retry_base_delay: the first backoff delay when the server gives no ``Retry-After``.
    """

    provider: ClassVar[str] = "llm"
    #: What a server ignores when its output is off-format (named in the warning).
    format_feature: ClassVar[str] = "structured output"
    #: The provider's own API key variable, named in auth errors.
    key_env: ClassVar[str] = "the provider's API key variable"
    #: What to check after a 404.
    not_found_hint: ClassVar[str] = "check supervisor.model and supervisor.base_url"

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str,
        temperature: float,
        system_prompt: str | None,
        invalid_output_retries: int = 2,
        transport_retries: int = 3,
        max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
        retry_base_delay: float = 0.5,
        timeout: float = 120.0,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.temperature = temperature
        self.system_prompt = system_prompt
        self.invalid_output_retries = max(0, invalid_output_retries)
        self.transport_retries = max(0, transport_retries)
        self.max_retry_after = max_retry_after
        self.retry_base_delay = retry_base_delay
        self.timeout = timeout
        self.redactor = Redactor(extra_secrets=[api_key] if api_key else ())
        self._lock = threading.Lock()
        self._fatal: SupervisorError | None = None
        self._blocked_until = 0.0
        self._warned_format = False
        self._rng = random.Random()

    # ------------------------------------------------------------------ subclass hooks

    def _call(self, request: SupervisorRequest) -> RawOutput:
        """Make one provider call (SDK retries off) and reduce its response."""
        raise NotImplementedError

    def _classify_sdk(self, exc: Exception) -> str | None:
        """``"connection"``/``"timeout"`` for the SDK's transport errors, else None."""
        return None

    # ------------------------------------------------------------------ the loop

    def decide(self, request: SupervisorRequest) -> SupervisorReply:
        """Call the provider until it returns a valid decision, within the retry bounds."""
        self._check_gates()
        calls = [0]
        usage: TokenUsage | None = None
        problem = ""
        for _ in range(self.invalid_output_retries + 1):
            raw = self._call_with_retries(request, calls, usage)
            if raw.usage is not None:
                usage = raw.usage if usage is None else usage + raw.usage
            if raw.stop in ("truncated", "refused"):
                what = "was cut off" if raw.stop == "truncated" else "was refused"
                detail = f": {self._excerpt(raw.detail)}" if raw.detail else ""
                raise self._error(raw.stop, f"the output {what}{detail}", calls[0], usage)
            try:
                decision, loose = parse_decision(raw)
            except InvalidOutput as exc:
                problem = str(exc)
                if exc.schema:
                    self._warn_format(problem)
                excerpt = self._excerpt(raw.text if raw.data is None else json.dumps(raw.data))
                log.info("supervisor output rejected (%s): %s", problem, excerpt)
                problem = f"{problem}; output: {excerpt}"
                continue
            if loose:
                self._warn_format("JSON wrapped in other text")
            return SupervisorReply(
                decision=decision, usage=usage, attempts=calls[0], model=self.model
            )
        raise self._error(
            "invalid_output",
            f"no valid decision after {self.invalid_output_retries + 1} tries; last: {problem}",
            calls[0],
            usage,
        )

    def _check_gates(self) -> None:
        with self._lock:
            fatal, blocked = self._fatal, self._blocked_until - time.monotonic()
        if fatal is not None:
            raise fatal.again()  # reported once; later cases stop here without a call
        if blocked > 0:
            raise self._error(
                "rate_limited",
                f"the server asked to wait {blocked:.0f} s more before retrying; not calling it",
                0,
                None,
            )

    def _call_with_retries(
        self, request: SupervisorRequest, calls: list[int], usage: TokenUsage | None
    ) -> RawOutput:
        for retry in range(self.transport_retries + 1):
            calls[0] += 1
            try:
                return self._call(request)
            except Exception as exc:
                failure = self._classify(exc)
                after = _retry_after(exc)
            if failure.code in FATAL_CODES:
                error = self._error(failure.code, failure.detail, calls[0], usage)
                with self._lock:
                    self._fatal = self._fatal or error
                raise error
            if failure.retryable and after is not None and after > self.max_retry_after:
                # Never sleep through a long Retry-After (fault 13): give up now, and spare
                # the server further calls from other cases until the time has passed.
                with self._lock:
                    block = min(after, MAX_BLOCK_SECONDS)
                    self._blocked_until = max(self._blocked_until, time.monotonic() + block)
                raise self._error(
                    failure.code,
                    f"{failure.detail}; the server asked to retry after {after:.0f} s, more "
                    f"than the {self.max_retry_after:.0f} s the supervisor waits: giving up",
                    calls[0],
                    usage,
                )
            if not failure.retryable or retry >= self.transport_retries:
                tail = f" (after {calls[0]} attempts)" if failure.retryable else ""
                raise self._error(failure.code, failure.detail + tail, calls[0], usage)
            if after is not None and after >= 0:
                wait = after
            else:
                wait = backoff_delay(retry, self._rng, base=self.retry_base_delay, cap=8.0)
            log.info("supervisor %s: %s; retrying in %.2f s", self.provider, failure.code, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ classification

    def _classify(self, exc: Exception) -> _Failure:
        transport = self._classify_sdk(exc)
        if transport is not None:
            return _Failure(transport, True, f"{transport} error: {self._excerpt(str(exc))}")
        status = getattr(exc, "status_code", None)
        if not isinstance(status, int):
            detail = f"{type(exc).__name__}: {self._excerpt(str(exc))}"
            return _Failure("client_error", False, detail)
        code, message = _error_fields(exc)
        detail = f"HTTP {status}" + (f" ({code})" if code else "")
        detail += f": {self._excerpt(message)}" if message else ""
        if code == "insufficient_quota" or status == 402 or "credit balance" in message:
            return _Failure("quota", False, f"{detail}. The account has no quota left")
        if status in (401, 403) or code == "invalid_api_key":
            hint = (
                f"check the API key (supervisor.api_key, --supervisor-api-key / "
                f"FLUXLOOP_SUPERVISOR_API_KEY, or {self.key_env})"
            )
            return _Failure("auth", False, f"{detail}. {hint}")
        if status == 404 or code == "model_not_found":
            return _Failure("model_not_found", False, f"{detail}. {self.not_found_hint}")
        if status == 429:
            return _Failure("rate_limited", True, detail)
        if status in (408, 409) or status >= 500:
            return _Failure("server_error", True, detail)
        return _Failure("bad_request", False, detail)

    # ------------------------------------------------------------------ helpers

    def _excerpt(self, text: str | None) -> str:
        text = self.redactor.redact_text(text or "")
        return text if len(text) <= MAX_EXCERPT_CHARS else text[:MAX_EXCERPT_CHARS] + "..."

    def _where(self) -> str:
        return f"provider {self.provider}, model {self.model!r}, base_url {self.base_url}"

    def _error(
        self, code: str, detail: str, attempts: int, usage: TokenUsage | None
    ) -> SupervisorError:
        return SupervisorError(
            f"supervisor {code} ({self._where()}): {detail}",
            code=code,
            fatal=code in FATAL_CODES,
            provider=self.provider,
            base_url=self.base_url,
            model=self.model,
            attempts=attempts,
            usage=usage,
        )

    def _warn_format(self, problem: str) -> None:
        with self._lock:
            if self._warned_format:
                return
            self._warned_format = True
        message = (
            f"the supervisor server at {self.base_url} (model {self.model!r}) returned output "
            f"that does not follow the requested {self.format_feature} ({problem}); it may "
            "not support it. Decisions are validated on the client and retried."
        )
        emit_warning(message)


def emit_warning(message: str) -> None:
    """Warn once through ``warnings``; under ``-W error`` log instead of failing the case."""
    try:
        warnings.warn(SupervisorOutputWarning(message), stacklevel=3)
    except Warning:
        log.warning(message)


def _retry_after(exc: Exception) -> float | None:
    """The server's ``Retry-After`` (or ``retry-after-ms``) in seconds, if it sent one."""
    after = retry_after_seconds(exc)
    if after is not None:
        return after
    headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        ms = headers.get("retry-after-ms") if headers is not None else None
        return float(ms) / 1000 if ms is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def _error_fields(exc: Exception) -> tuple[str | None, str]:
    """The provider's error code/type and message from an SDK status error."""
    body = getattr(exc, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    code = getattr(exc, "code", None)
    message = ""
    if isinstance(inner, dict):
        raw = inner.get("message")
        message = raw if isinstance(raw, str) else ""
        # OpenAI puts the machine-readable reason in "code"; Anthropic only has "type".
        code = code or inner.get("code") or inner.get("type")
    elif isinstance(inner, str):
        message = inner
    if not message:
        message = getattr(exc, "message", "") or str(exc)
    return (str(code) if code else None), message
