"""The ``openai`` supervisor: Chat Completions with strict structured output.

Works with OpenAI and with OpenAI-compatible servers (Ollama, vLLM, llama.cpp server,
LM Studio) through ``base_url``. The SDK's own retries are off (see :mod:`.llm`).
"""

from __future__ import annotations

import threading
from typing import Any

from .base import DECISION_JSON_SCHEMA, SupervisorRequest, TokenUsage
from .llm import LLMSupervisor, RawOutput, emit_warning
from .prompt import render_request, system_prompt

__all__ = ["OPENAI_DEFAULT_BASE_URL", "OpenAISupervisor"]


OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "supervisor_decision", "strict": True, "schema": DECISION_JSON_SCHEMA},
}
# Request parameters some models/servers reject with a 400 naming them (reasoning models
# accept only the default temperature; some local servers lack json_schema): on such a 400
# the parameter is dropped for the rest of the run, with a warning.
_DROPPABLE = ("temperature", "response_format")


class OpenAISupervisor(LLMSupervisor):
    """Supervisor backed by the official ``openai`` client (thread-safe, one per instance)."""

    provider = "openai"
    format_feature = "response_format (json_schema, strict)"
    key_env = "OPENAI_API_KEY"
    not_found_hint = (
        "check supervisor.model and supervisor.base_url (an OpenAI-compatible base_url usually "
        "ends in /v1); a local server must serve that model, e.g. `ollama pull <model>`"
    )

    def __init__(self, *, api_key: str, base_url: str | None = None, **kwargs: Any) -> None:
        import openai  # lazy: only runs with provider openai

        self._openai = openai
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=kwargs.get("timeout", 120.0)
        )
        resolved = str(self._client.base_url).rstrip("/") or OPENAI_DEFAULT_BASE_URL
        super().__init__(api_key=api_key, base_url=resolved, **kwargs)
        self._dropped: set[str] = set()
        self._drop_lock = threading.Lock()

    def _classify_sdk(self, exc: Exception) -> str | None:
        if isinstance(exc, self._openai.APITimeoutError):
            return "timeout"
        if isinstance(exc, self._openai.APIConnectionError):
            return "connection"
        return None

    def _params(self, request: SupervisorRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system_prompt(self.system_prompt)},
                {"role": "user", "content": render_request(request, self.redactor)},
            ],
            "temperature": self.temperature,
            "response_format": RESPONSE_FORMAT,
        }
        with self._drop_lock:
            for name in self._dropped:
                params.pop(name, None)
        return params

    def _create(self, request: SupervisorRequest) -> Any:
        # At most one extra call per droppable parameter: the loop is bounded.
        for _ in range(len(_DROPPABLE) + 1):
            try:
                return self._client.chat.completions.create(**self._params(request))
            except self._openai.BadRequestError as exc:
                name = _rejected_param(exc)
                if name is None or not self._drop(name):
                    raise
        raise AssertionError("unreachable: each retry drops a new parameter")  # pragma: no cover

    def _drop(self, name: str) -> bool:
        with self._drop_lock:
            if name in self._dropped:
                return False
            self._dropped.add(name)
        message = (
            f"the supervisor server at {self.base_url} rejected '{name}' for model "
            f"{self.model!r}; sending requests without it"
            + (" (decisions are still validated on the client)" if name != "temperature" else "")
        )
        emit_warning(message)
        return True

    def _call(self, request: SupervisorRequest) -> RawOutput:
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


def _rejected_param(exc: Any) -> str | None:
    """The droppable parameter a 400 complains about, if any."""
    param = getattr(exc, "param", None)
    if param in _DROPPABLE:
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
