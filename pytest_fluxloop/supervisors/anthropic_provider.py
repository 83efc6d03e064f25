"""The ``anthropic`` supervisor: the Messages API with a forced decision tool.

The decision schema is the tool's ``input_schema`` and ``tool_choice`` forces the tool, so the
model answers with structured input; a text answer holding the JSON is accepted too. Either
way the decision is validated on the client. The client is
:class:`pytest_fluxloop.llm.AnthropicClient`; needs ``pip install pytest-fluxloop[anthropic]``.
"""

from __future__ import annotations

from typing import Any

from ..llm.anthropic_client import ANTHROPIC_DEFAULT_BASE_URL, AnthropicClient
from ..llm.client import LLMClient
from .base import DECISION_DESCRIPTION, DECISION_JSON_SCHEMA, DECISION_SCHEMA_NAME
from .llm import LLMSupervisor

__all__ = ["ANTHROPIC_DEFAULT_BASE_URL", "DECISION_TOOL", "AnthropicSupervisor"]

#: The tool the model is forced to call (what the client sends for a decision request).
DECISION_TOOL: dict[str, Any] = {
    "name": DECISION_SCHEMA_NAME,
    "description": DECISION_DESCRIPTION,
    "input_schema": DECISION_JSON_SCHEMA,
}


class AnthropicSupervisor(LLMSupervisor):
    """Supervisor backed by the official ``anthropic`` client (thread-safe, one per instance)."""

    provider = "anthropic"
    client: AnthropicClient

    def _create_client(self, *, api_key: str, base_url: str | None, **options: Any) -> LLMClient:
        return AnthropicClient(api_key=api_key, base_url=base_url, **options)

    @property
    def sends_temperature(self) -> bool:
        """Whether this SDK's messages.create accepts ``temperature`` (it is sent if so)."""
        return self.client.sends_temperature
