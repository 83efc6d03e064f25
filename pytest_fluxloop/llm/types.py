"""The data of one structured-output call: the request, the reduced response, token counts.

These are plain values shared by every provider client and every role (supervisor, judge,
input generator ...), so they hold no provider types and no role-specific fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["LLMRequest", "RawOutput", "Stop", "Tally", "TokenUsage"]

Stop = Literal["ok", "truncated", "refused"]
"""How a response ended: normally, cut off by the token limit, or refused / filtered."""


class TokenUsage(BaseModel):
    """Token counts of LLM calls (kept apart from the agent's own usage)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


@dataclass(frozen=True)
class LLMRequest:
    """One structured-output request, independent of the provider.

    Args:
        system: the system prompt text.
        user: the user message text (the caller redacts and delimits untrusted data).
        schema: the JSON schema the output must follow (OpenAI strict structured output
            rules: every property required, no additional properties).
        schema_name: the schema's name (OpenAI ``json_schema.name``, Anthropic tool name).
        schema_description: what the output records (Anthropic tool description).
        temperature: sent when not None (a server may reject it; see the clients).
        model: overrides the client's model for this request when not None.
        max_tokens: the output limit where the API needs one (Anthropic); None = default.
        extra_body: extra top-level keys of the request body (a role's ``model_parameters``:
            ``top_p``, ``seed``, ``reasoning_effort`` ...), sent as they are; a key also set
            by the client (``temperature``) takes this value.
    """

    system: str
    user: str
    schema: Mapping[str, Any]
    schema_name: str
    schema_description: str | None = None
    temperature: float | None = None
    model: str | None = None
    max_tokens: int | None = None
    extra_body: Mapping[str, Any] | None = None


@dataclass
class RawOutput:
    """One provider response, reduced to what the structured-output loop needs."""

    text: str | None = None
    data: Any = None  # already-parsed JSON (an Anthropic tool input), else None
    usage: TokenUsage | None = None
    stop: Stop = "ok"
    detail: str = ""  # refusal text or finish reason, for messages


@dataclass
class Tally:
    """Provider calls made and tokens used by one logical request, retries included.

    Errors carry these numbers, so a failed request still reports what it cost.
    """

    calls: int = 0
    usage: TokenUsage | None = None

    def add_usage(self, usage: TokenUsage | None) -> None:
        """Add one response's usage (None when the server reported none)."""
        if usage is not None:
            self.usage = usage if self.usage is None else self.usage + usage
