"""The ``openai`` client: Chat Completions with strict structured output.

Works with OpenAI and with OpenAI-compatible servers (Ollama, vLLM, llama.cpp server,
LM Studio) through ``base_url``. The ``openai`` package is imported when a client is created,
not when this module is. The SDK's own retries are off (see :mod:`.client`).
"""

from __future__ import annotations

import threading
from typing import Any

from .client import LLMClient
from .types import LLMRequest, RawOutput, TokenUsage

__all__ = ["DROPPABLE_PARAMS", "OPENAI_DEFAULT_BASE_URL", "OpenAIClient", "response_format"]

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Request parameters some models/servers reject with a 400 naming them (reasoning models
# accept only the default temperature; some local servers lack json_schema): on such a 400
# the parameter is dropped for the rest of the run, with a warning.
DROPPABLE_PARAMS = ("temperature", "response_format")


def response_format(request: LLMRequest) -> dict[str, Any]:
    """The ``response_format`` asking for ``request.schema``, strictly."""
    return {
        "type": "json_schema",
        "json_schema": {"name": request.schema_name, "strict": True, "schema": request.schema},
    }


class OpenAIClient(LLMClient):
    """Client backed by the official ``openai`` package (thread-safe, one SDK client each).

    ``base_url`` None means the SDK's default (which honours ``OPENAI_BASE_URL``); the other
    keywords are those of :class:`~.client.LLMClient`.
    """

    provider = "openai"
    format_feature = "response_format (json_schema, strict)"
    key_env = "OPENAI_API_KEY"

    def __init__(self, *, api_key: str, base_url: str | None = None, **options: Any) -> None:
        import openai  # lazy: only when an openai client is created

        self._openai = openai
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=options.get("timeout", 120.0)
        )
        resolved = str(self._client.base_url).rstrip("/") or OPENAI_DEFAULT_BASE_URL
        super().__init__(api_key=api_key, base_url=resolved, **options)
        self._dropped: set[str] = set()
        self._drop_lock = threading.Lock()

    def not_found_hint(self) -> str:
        """Local servers answer 404 for a model they don't serve: say how to get it."""
        return (
            f"check {self.config_key}.model and {self.config_key}.base_url (an "
            "OpenAI-compatible base_url usually ends in /v1); a local server must serve that "
            "model, e.g. `ollama pull <model>`"
        )

    def transport_error(self, exc: Exception) -> str | None:
        """``timeout`` / ``connection`` for the SDK's transport errors."""
        if isinstance(exc, self._openai.APITimeoutError):
            return "timeout"
        if isinstance(exc, self._openai.APIConnectionError):
            return "connection"
        return None

    def dropped(self) -> frozenset[str]:
        """The parameters this client no longer sends (the server rejected them)."""
        with self._drop_lock:
            return frozenset(self._dropped)

    def send(self, request: LLMRequest) -> RawOutput:
        """One Chat Completions call, reduced (refusal, content filter, length, content)."""
        response = self._create(request)
        if isinstance(response, str):  # a server answering with a non-JSON body
            return RawOutput(text=response)
        usage = _usage(getattr(response, "usage", None))
        choices = getattr(response, "choices", None) or []
        if not choices:
            return RawOutput(text=None, usage=usage)
        choice = choices[0]
        message = getattr(choice, "message", None)
        refusal = getattr(message, "refusal", None)
        finish = getattr(choice, "finish_reason", None)
        if refusal:
            return RawOutput(usage=usage, stop="refused", detail=str(refusal))
        if finish == "content_filter":
            return RawOutput(usage=usage, stop="refused", detail="finish_reason content_filter")
        if finish == "length":
            return RawOutput(usage=usage, stop="truncated", detail="finish_reason length")
        content = getattr(message, "content", None)
        return RawOutput(text=content if isinstance(content, str) else None, usage=usage)

    def _params(self, request: LLMRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model_for(request),
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        params["response_format"] = response_format(request)
        if request.extra_body:
            # The SDK merges these into the JSON body, so any server-specific parameter
            # reaches the server without this client knowing it.
            params["extra_body"] = dict(request.extra_body)
        with self._drop_lock:
            for name in self._dropped:
                params.pop(name, None)
        return params

    def _create(self, request: LLMRequest) -> Any:
        # At most one extra call per droppable parameter: the loop is bounded.
        for _ in range(len(DROPPABLE_PARAMS) + 1):
            try:
                return self._client.chat.completions.create(**self._params(request))
            except self._openai.BadRequestError as exc:
                name = _rejected_param(exc)
                if name is None or not self._drop(name, request):
                    raise
        raise AssertionError("unreachable: each retry drops a new parameter")  # pragma: no cover

    def _drop(self, name: str, request: LLMRequest) -> bool:
        with self._drop_lock:
            if name in self._dropped:
                return False
            self._dropped.add(name)
        self.warn(
            f"the {self.role} server at {self.base_url} rejected '{name}' for model "
            f"{self.model_for(request)!r}; sending requests without it"
            + (" (output is still validated on the client)" if name != "temperature" else "")
        )
        return True


def _rejected_param(exc: Any) -> str | None:
    """The droppable parameter a 400 complains about, if any."""
    param = getattr(exc, "param", None)
    if param in DROPPABLE_PARAMS:
        return str(param)
    message = str(getattr(exc, "message", "") or "")
    if "response_format" in message or "json_schema" in message:
        return "response_format"
    return None


def _usage(raw: Any) -> TokenUsage | None:
    if raw is None:
        return None
    prompt = getattr(raw, "prompt_tokens", None) or 0
    completion = getattr(raw, "completion_tokens", None) or 0
    total = getattr(raw, "total_tokens", None) or prompt + completion
    return TokenUsage(
        prompt_tokens=int(prompt), completion_tokens=int(completion), total_tokens=int(total)
    )
