"""The ``anthropic`` supervisor: the Messages API with a forced decision tool.

The decision schema is the tool's ``input_schema`` and ``tool_choice`` forces the tool, so the
model answers with structured input; a text answer holding the JSON is accepted too. Either
way the decision is validated on the client. Needs ``pip install pytest-fluxloop[anthropic]``.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from .base import DECISION_JSON_SCHEMA, SupervisorRequest, TokenUsage
from .llm import LLMSupervisor, RawOutput
from .prompt import render_request, system_prompt

__all__ = ["ANTHROPIC_DEFAULT_BASE_URL", "DECISION_TOOL", "AnthropicSupervisor"]

log = logging.getLogger("pytest_fluxloop.supervisors")

ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
TOOL_NAME = "supervisor_decision"
DECISION_TOOL: dict[str, Any] = {
    "name": TOOL_NAME,
    "description": "Record the supervisor's decision about the simulated conversation.",
    "input_schema": DECISION_JSON_SCHEMA,
}
#: Room for a decision and a few sentences of user message; ``max_tokens`` is mandatory.
MAX_TOKENS = 1024


class AnthropicSupervisor(LLMSupervisor):
    """Supervisor backed by the official ``anthropic`` client (thread-safe, one per instance)."""

    provider = "anthropic"
    format_feature = "forced decision tool (tool_choice)"
    key_env = "ANTHROPIC_API_KEY"
    not_found_hint = "check supervisor.model (a Claude model id) and supervisor.base_url"

    def __init__(self, *, api_key: str, base_url: str | None = None, **kwargs: Any) -> None:
        import anthropic  # lazy: optional extra, checked by the factory

        self._anthropic = anthropic
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=kwargs.get("timeout", 120.0)
        )
        resolved = str(self._client.base_url).rstrip("/") or ANTHROPIC_DEFAULT_BASE_URL
        super().__init__(api_key=api_key, base_url=resolved, **kwargs)
        # Newer SDKs dropped ``temperature`` from messages.create; send it only where it exists.
        try:
            params = inspect.signature(self._client.messages.create).parameters
            self._send_temperature = "temperature" in params
        except (TypeError, ValueError):  # pragma: no cover - C-level or odd callables
            self._send_temperature = False
        if not self._send_temperature:
            log.debug("anthropic %s: messages.create has no temperature", anthropic.__version__)

    @property
    def sends_temperature(self) -> bool:
        """Whether this SDK's messages.create accepts ``temperature`` (it is sent if so)."""
        return self._send_temperature

    def _classify_sdk(self, exc: Exception) -> str | None:
        if isinstance(exc, self._anthropic.APITimeoutError):
            return "timeout"
        if isinstance(exc, self._anthropic.APIConnectionError):
            return "connection"
        return None

    def _call(self, request: SupervisorRequest) -> RawOutput:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": MAX_TOKENS,
            "system": system_prompt(self.system_prompt),
            "messages": [{"role": "user", "content": render_request(request, self.redactor)}],
            "tools": [DECISION_TOOL],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
        }
        if self._send_temperature:
            params["temperature"] = self.temperature
        response = self._client.messages.create(**params)
        usage = _usage(getattr(response, "usage", None))
        stop = getattr(response, "stop_reason", None)
        blocks = getattr(response, "content", None) or []
        if stop == "refusal":
            return RawOutput(usage=usage, stop="refused", detail="stop_reason refusal")
        for block in blocks:
            if (
                getattr(block, "type", None) == "tool_use"
                and getattr(block, "name", "") == TOOL_NAME
            ):
                data = getattr(block, "input", None)
                # A tool input cut off by max_tokens may still parse: never trust it.
                if stop == "max_tokens":
                    break
                return RawOutput(data=data if data is not None else {}, usage=usage)
        if stop == "max_tokens":
            return RawOutput(usage=usage, stop="truncated", detail="stop_reason max_tokens")
        text = "".join(
            getattr(block, "text", "") or ""
            for block in blocks
            if getattr(block, "type", None) == "text"
        )
        return RawOutput(text=text or None, usage=usage)


def _usage(raw: Any) -> TokenUsage | None:
    if raw is None:
        return None
    # Cached prompt tokens are billed input too, so they count as prompt tokens here.
    prompt = sum(
        int(getattr(raw, name, None) or 0)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    completion = int(getattr(raw, "output_tokens", None) or 0)
    return TokenUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
