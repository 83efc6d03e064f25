"""The ``openai`` supervisor: Chat Completions with strict structured output.

Works with OpenAI and with OpenAI-compatible servers (Ollama, vLLM, llama.cpp server,
LM Studio) through ``base_url``. The client is :class:`pytest_fluxloop.llm.OpenAIClient`.
"""

from __future__ import annotations

from typing import Any

from ..llm.client import LLMClient
from ..llm.openai_client import OPENAI_DEFAULT_BASE_URL, OpenAIClient
from .llm import LLMSupervisor

__all__ = ["OPENAI_DEFAULT_BASE_URL", "OpenAISupervisor"]


class OpenAISupervisor(LLMSupervisor):
    """Supervisor backed by the official ``openai`` client (thread-safe, one per instance)."""

    provider = "openai"

    def _create_client(self, *, api_key: str, base_url: str | None, **options: Any) -> LLMClient:
        return OpenAIClient(api_key=api_key, base_url=base_url, **options)
