"""The ``anthropic`` client: the Messages API with a forced tool.

The requested schema is the tool's ``input_schema`` and ``tool_choice`` forces the tool, so
the model answers with structured input; a text answer holding the JSON is passed on too
(the parse function decides). Needs ``pip install pytest-fluxloop[anthropic]``; the package
is imported when a client is created, not when this module is.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from .client import LLMClient
from .types import LLMRequest, RawOutput, TokenUsage

__all__ = ["ANTHROPIC_DEFAULT_BASE_URL", "MAX_TOKENS", "AnthropicClient", "output_tool"]

log = logging.getLogger("pytest_fluxloop.llm")

ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
#: ``max_tokens`` is mandatory; this leaves room for a small JSON object with some prose
#: in it. A request may ask for more.
MAX_TOKENS = 1024


def output_tool(request: LLMRequest) -> dict[str, Any]:
    """The tool whose input is the requested output."""
    return {
        "name": request.schema_name,
        "description": request.schema_description or f"Record the {request.schema_name}.",
        "input_schema": request.schema,
    }


class AnthropicClient(LLMClient):
    """Client backed by the official ``anthropic`` package (thread-safe, one SDK client each).

    ``base_url`` None means the SDK's default (which honours ``ANTHROPIC_BASE_URL``); the
    other keywords are those of :class:`~.client.LLMClient`.
    """

    provider = "anthropic"
    format_feature = "forced output tool (tool_choice)"
    key_env = "ANTHROPIC_API_KEY"

    def __init__(self, *, api_key: str, base_url: str | None = None, **options: Any) -> None:
        import anthropic  # lazy: optional extra, checked by connect.require_sdk

        self._anthropic = anthropic
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=options.get("timeout", 120.0)
        )
        resolved = str(self._client.base_url).rstrip("/") or ANTHROPIC_DEFAULT_BASE_URL
        super().__init__(api_key=api_key, base_url=resolved, **options)
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

    def not_found_hint(self) -> str:
        """A 404 here is almost always a model id that is not a Claude model."""
        return f"check {self.config_key}.model (a Claude model id) and {self.config_key}.base_url"

    def transport_error(self, exc: Exception) -> str | None:
        """``timeout`` / ``connection`` for the SDK's transport errors."""
        if isinstance(exc, self._anthropic.APITimeoutError):
            return "timeout"
        if isinstance(exc, self._anthropic.APIConnectionError):
            return "connection"
        return None

    def send(self, request: LLMRequest) -> RawOutput:
        """One Messages call, reduced: the tool input, else the text (refusal, max_tokens)."""
        tool = output_tool(request)
        params: dict[str, Any] = {
            "model": self.model_for(request),
            "max_tokens": request.max_tokens or MAX_TOKENS,
            "system": request.system,
            "messages": [{"role": "user", "content": request.user}],
            "tools": [tool],
            "tool_choice": {"type": "tool", "name": tool["name"]},
        }
        if self._send_temperature and request.temperature is not None:
            params["temperature"] = request.temperature
        response = self._client.messages.create(**params)
        usage = _usage(getattr(response, "usage", None))
        stop = getattr(response, "stop_reason", None)
        blocks = getattr(response, "content", None) or []
        if stop == "refusal":
            return RawOutput(usage=usage, stop="refused", detail="stop_reason refusal")
        for block in blocks:
            if (
                getattr(block, "type", None) == "tool_use"
                and getattr(block, "name", "") == (tool["name"])
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
