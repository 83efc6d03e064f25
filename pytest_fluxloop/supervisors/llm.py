"""What the LLM supervisors share: the decision request, and the conversion of LLM errors.

Everything provider-related (transport retries, Retry-After, the fatal latch, output
validation with bounded retries, the format warning) lives in :mod:`pytest_fluxloop.llm`; a
supervisor only renders its prompt (:mod:`.prompt`), asks for :data:`.base.DECISION_JSON_SCHEMA`
and parses the answer with :func:`.base.parse_decision`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..llm.client import LLMClient
from ..llm.connect import PROVIDER_KEY_ENV
from ..llm.errors import LLMError, LLMOutputWarning
from ..llm.errors import emit_warning as _emit
from ..llm.retry import MAX_RETRY_AFTER_SECONDS
from ..llm.structured import StructuredCaller
from ..llm.types import LLMRequest, RawOutput
from .base import (
    DECISION_DESCRIPTION,
    DECISION_JSON_SCHEMA,
    DECISION_SCHEMA_NAME,
    SupervisorDecision,
    SupervisorError,
    SupervisorReply,
    SupervisorRequest,
    parse_decision,
)
from .prompt import render_request, system_prompt

__all__ = [
    "ROLE",
    "LLMSupervisor",
    "RawOutput",
    "SupervisorOutputWarning",
    "emit_warning",
    "key_hint",
    "parse_decision",
]

#: The role label of supervisor calls: starts error messages, names the settings block.
ROLE = "supervisor"


class SupervisorOutputWarning(LLMOutputWarning):
    """The supervisor server did not follow the requested output format."""


def emit_warning(message: str) -> None:
    """Warn with :class:`SupervisorOutputWarning`; under ``-W error`` log instead."""
    _emit(message, SupervisorOutputWarning)


def key_hint(provider: str) -> str:
    """Where the supervisor's API key is set, named after a 401/403."""
    return (
        f"supervisor.api_key, --supervisor-api-key / FLUXLOOP_SUPERVISOR_API_KEY, or "
        f"{PROVIDER_KEY_ENV[provider]}"
    )


class LLMSupervisor:
    """Base of the LLM-backed supervisors: subclasses create their provider's client.

    Args:
        api_key: the provider key (scrubbed from every message).
        base_url: the server; None for the SDK's default.
        model, temperature, system_prompt: the ``multi_turn.supervisor`` settings.
        invalid_output_retries: extra calls after output that isn't a valid decision.
        transport_retries: extra calls after 429 / 5xx / connection failures.
        max_retry_after: the longest ``Retry-After`` honoured; longer gives up at once.
        retry_base_delay: the first backoff delay when the server gives no ``Retry-After``.
        timeout: seconds per request.

    Raises (from :meth:`decide`): :class:`~.base.SupervisorError`.
    """

    provider: ClassVar[str] = "llm"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        temperature: float,
        system_prompt: str | None,
        base_url: str | None = None,
        invalid_output_retries: int = 2,
        transport_retries: int = 3,
        max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
        retry_base_delay: float = 0.5,
        timeout: float = 120.0,
    ) -> None:
        options: dict[str, Any] = {
            "model": model,
            "role": ROLE,
            "key_hint": key_hint(self.provider),
            "transport_retries": transport_retries,
            "max_retry_after": max_retry_after,
            "retry_base_delay": retry_base_delay,
            "timeout": timeout,
            "warning_category": SupervisorOutputWarning,
        }
        self.client = self._create_client(api_key=api_key, base_url=base_url, **options)
        self.temperature = temperature
        self.system_prompt = system_prompt
        self._caller = StructuredCaller(
            self.client,
            parse_decision,
            invalid_output_retries=invalid_output_retries,
            what="decision",
        )

    def _create_client(self, *, api_key: str, base_url: str | None, **options: Any) -> LLMClient:
        """The provider's client (``options`` are :class:`~pytest_fluxloop.llm.LLMClient`
        keywords)."""
        raise NotImplementedError

    @property
    def model(self) -> str:
        """The model asked for decisions."""
        return self.client.model

    @property
    def base_url(self) -> str:
        """The resolved server URL."""
        return self.client.base_url

    @property
    def invalid_output_retries(self) -> int:
        """Extra calls after output that isn't a valid decision."""
        return self._caller.invalid_output_retries

    def llm_request(self, request: SupervisorRequest) -> LLMRequest:
        """The provider-neutral request for one decision (prompt, user message, schema)."""
        return LLMRequest(
            system=system_prompt(self.system_prompt),
            user=render_request(request, self.client.redactor),
            schema=DECISION_JSON_SCHEMA,
            schema_name=DECISION_SCHEMA_NAME,
            schema_description=DECISION_DESCRIPTION,
            temperature=self.temperature,
        )

    def decide(self, request: SupervisorRequest) -> SupervisorReply:
        """Call the provider until it returns a valid decision, within the retry bounds."""
        try:
            result = self._caller.call(self.llm_request(request))
        except LLMError as exc:
            raise SupervisorError.from_llm(exc) from None
        decision: SupervisorDecision = result.value
        return SupervisorReply(
            decision=decision, usage=result.usage, attempts=result.attempts, model=result.model
        )
