"""What went wrong with a provider call: an :data:`~.errors.ERROR_CODES` code, and whether
a retry can help.

SDK status errors are classified by their HTTP status and the provider's error code or type
(OpenAI puts the reason in ``code``, Anthropic in ``type``); transport errors (no response at
all) are recognised by the provider client, which knows its SDK's classes. Every text that
reaches a message goes through :func:`excerpt`, which scrubs secrets and bounds the length.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..redact import Redactor

__all__ = [
    "MAX_EXCERPT_CHARS",
    "Failure",
    "classify_error",
    "classify_status",
    "error_fields",
    "excerpt",
]

#: The longest piece of server text quoted in a message.
MAX_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Failure:
    """One failed call: its code, whether to retry, and a message-ready detail."""

    code: str
    retryable: bool
    detail: str


def excerpt(redactor: Redactor, text: str | None) -> str:
    """``text`` with secrets redacted, cut to :data:`MAX_EXCERPT_CHARS`."""
    text = redactor.redact_text(text or "")
    return text if len(text) <= MAX_EXCERPT_CHARS else text[:MAX_EXCERPT_CHARS] + "..."


def classify_error(
    exc: Exception,
    *,
    transport: str | None,
    redactor: Redactor,
    key_hint: str,
    not_found_hint: str,
) -> Failure:
    """Classify any exception a provider call raised.

    Args:
        exc: what the SDK raised.
        transport: ``"connection"`` / ``"timeout"`` when the client recognised a transport
            error of its SDK, else None.
        redactor: scrubs the API key (and other secrets) from quoted server text.
        key_hint: where the API key comes from, named after a 401/403.
        not_found_hint: what to check after a 404.
    """
    if transport is not None:
        return Failure(transport, True, f"{transport} error: {excerpt(redactor, str(exc))}")
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        return Failure(
            "client_error", False, f"{type(exc).__name__}: {excerpt(redactor, str(exc))}"
        )
    return classify_status(
        exc, status, redactor=redactor, key_hint=key_hint, not_found_hint=not_found_hint
    )


def classify_status(
    exc: Exception, status: int, *, redactor: Redactor, key_hint: str, not_found_hint: str
) -> Failure:
    """Classify an HTTP error response (see :func:`classify_error` for the arguments).

    Quota problems come first: OpenAI reports them as 429 ``insufficient_quota``, which must
    not be retried like a rate limit; Anthropic as a 400 about the credit balance.
    """
    code, message = error_fields(exc)
    detail = f"HTTP {status}" + (f" ({code})" if code else "")
    detail += f": {excerpt(redactor, message)}" if message else ""
    if code == "insufficient_quota" or status == 402 or "credit balance" in message:
        return Failure("quota", False, _then(detail, "The account has no quota left"))
    if status in (401, 403) or code == "invalid_api_key":
        return Failure("auth", False, _then(detail, f"check the API key ({key_hint})"))
    if status == 404 or code == "model_not_found":
        return Failure("model_not_found", False, _then(detail, not_found_hint))
    if status == 429:
        return Failure("rate_limited", True, detail)
    if status in (408, 409) or status >= 500:
        return Failure("server_error", True, detail)
    return Failure("bad_request", False, detail)


def _then(detail: str, advice: str) -> str:
    """``detail`` and ``advice`` as two sentences: the server's message often ends with its
    own period ("... details."), which must not become "details.. The account"."""
    if detail.endswith((".", "!", "?")):
        return f"{detail} {advice}"
    return f"{detail}. {advice}"


def error_fields(exc: Exception) -> tuple[str | None, str]:
    """The provider's error code/type and message from an SDK status error.

    The server's own words are kept, in this order: ``error.message`` (OpenAI, Anthropic),
    a string ``error`` (Ollama's native ``{"error": "model \"x\" not found, ..."}``; the
    openai SDK hands over that string as the body), then the raw response text (a plain-text
    or HTML error page, or JSON of another shape); the SDK's own ``Error code: 404`` only
    when the server said nothing. Callers redact and shorten it (:func:`excerpt`).
    """
    body = getattr(exc, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else body
    code = getattr(exc, "code", None)
    message = ""
    if isinstance(inner, dict):
        raw = inner.get("message")
        message = raw if isinstance(raw, str) else ""
        # OpenAI puts the machine-readable reason in "code"; Anthropic only has "type".
        code = code or inner.get("code") or inner.get("type")
    elif isinstance(inner, str):
        message = inner
    if not message.strip():
        message = _response_text(exc)
    if not message.strip():
        message = getattr(exc, "message", "") or str(exc)
    return (str(code) if code else None), " ".join(message.split())


def _response_text(exc: Exception) -> str:
    """The raw body of the error response, or "" (no response, or it can't be read)."""
    response = getattr(exc, "response", None)
    try:
        text = getattr(response, "text", "")
    except Exception:  # a streamed body that was never read, a decoding problem
        return ""
    return text if isinstance(text, str) else ""
