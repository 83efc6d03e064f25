"""The supervisor contract: request, decision, reply, error and the ``Supervisor`` protocol.

After every agent reply the conversation loop sends a :class:`SupervisorRequest` (the whole
transcript so far) and gets a :class:`SupervisorReply` whose :class:`SupervisorDecision` follows
the JSON of ``seeds/004``. Whatever a provider claims about structured output, the decision is
validated here, on the client (fault cases 14, 16, 17).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import FluxloopError

if TYPE_CHECKING:
    from ..records import ErrorInfo

__all__ = [
    "DECISION_FIELDS",
    "DECISION_JSON_SCHEMA",
    "ERROR_CODES",
    "FATAL_CODES",
    "Supervisor",
    "SupervisorDecision",
    "SupervisorError",
    "SupervisorReply",
    "SupervisorRequest",
    "TokenUsage",
]


class SupervisorDecision(BaseModel):
    """One decision: go on with ``next_user_message``, or stop with a ``termination_reason``.

    Unknown keys are rejected (``extra="forbid"``), so a model can't smuggle in a verdict
    such as ``"result": "PASS"``; only these four fields carry meaning.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    decision: Literal["continue", "terminate"]
    next_user_message: str | None = None
    termination_reason: str | None = None
    closing_user_message: str | None = None

    @model_validator(mode="after")
    def _fields_match_decision(self) -> SupervisorDecision:
        if self.decision == "continue" and not (self.next_user_message or "").strip():
            raise ValueError("decision 'continue' needs a non-empty next_user_message")
        if self.decision == "terminate" and not (self.termination_reason or "").strip():
            raise ValueError("decision 'terminate' needs a non-empty termination_reason")
        return self


DECISION_FIELDS = ("decision", "next_user_message", "termination_reason", "closing_user_message")

#: The decision as a JSON schema that OpenAI's strict structured output accepts (every
#: property required, nullable via a type list, no additional properties). The non-empty
#: rules of :class:`SupervisorDecision` can't be expressed there; they are checked on the client.
DECISION_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {
            "type": "string",
            "enum": ["continue", "terminate"],
            "description": "continue the conversation, or terminate it",
        },
        "next_user_message": {
            "type": ["string", "null"],
            "description": "the user's next message when continuing, else null",
        },
        "termination_reason": {
            "type": ["string", "null"],
            "description": "short snake_case reason when terminating, else null",
        },
        "closing_user_message": {
            "type": ["string", "null"],
            "description": "optional final user message when terminating, else null",
        },
    },
    "required": list(DECISION_FIELDS),
    "additionalProperties": False,
}


class SupervisorRequest(BaseModel):
    """What the conversation loop asks the supervisor after each agent reply."""

    model_config = ConfigDict(extra="forbid")

    case_id: str
    turns: list[dict[str, str]] = Field(
        description='The whole transcript: [{"role": "user"|"assistant", "content": str}]'
    )
    turn_count: int = Field(ge=0, description="Completed turns (user + assistant pairs)")
    max_turns: int = Field(ge=1)
    persona: str | None = None
    persona_description: str | None = None
    service_context: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, description="The input's metadata")

    @property
    def user_turns(self) -> int:
        """How many user messages the transcript holds."""
        return sum(1 for turn in self.turns if turn.get("role") == "user")


class TokenUsage(BaseModel):
    """Token counts of supervisor calls (kept apart from the agent's own usage)."""

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


class SupervisorReply(BaseModel):
    """A validated decision plus what it cost."""

    decision: SupervisorDecision
    usage: TokenUsage | None = Field(default=None, description="None when no LLM was called")
    attempts: int = Field(default=1, ge=0, description="Provider calls made, retries included")
    model: str | None = None


#: Codes of :class:`SupervisorError`.
ERROR_CODES = (
    "invalid_output",  # not JSON / outside the schema, after the bounded retries
    "truncated",  # the output was cut off (finish_reason "length", stop_reason "max_tokens")
    "refused",  # the model refused, or a content filter stopped it
    "rate_limited",  # 429s outlasted the retries, or Retry-After was too long to wait
    "server_error",  # 5xx / 408 / 409 outlasted the retries
    "connection",  # the server could not be reached, or reset the connection
    "timeout",  # the request timed out, retries included
    "bad_request",  # 400 / 422: the server rejected the request
    "auth",  # 401 / 403
    "quota",  # insufficient_quota / payment required
    "model_not_found",  # 404: unknown model or wrong base_url
    "client_error",  # anything else the client raised
)
#: Codes every later case would hit as well: the run stops once.
FATAL_CODES = frozenset({"auth", "quota", "model_not_found"})


class SupervisorError(FluxloopError):
    """The supervisor could not produce a valid decision.

    ``code`` is one of :data:`ERROR_CODES`; ``fatal`` marks configuration problems every case
    would hit (bad key, no quota, unknown model), so the run stops once instead of failing each
    case. The message names the provider, base URL and model, and never holds an API key.
    ``repeat`` is True when a supervisor re-raises a fatal error it already reported.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        fatal: bool = False,
        provider: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        attempts: int = 0,
        usage: TokenUsage | None = None,
        repeat: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fatal = fatal
        self.provider = provider
        self.base_url = base_url
        self.model = model
        self.attempts = attempts
        self.usage = usage
        self.repeat = repeat

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: rebuild explicitly so the error survives pickling (xdist).
        return (_rebuild_error, (self.message, self._fields()))

    def _fields(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "fatal": self.fatal,
            "provider": self.provider,
            "base_url": self.base_url,
            "model": self.model,
            "attempts": self.attempts,
            "usage": self.usage,
            "repeat": self.repeat,
        }

    def again(self) -> SupervisorError:
        """A fresh copy for re-raising in a later case: marked ``repeat``, and with no
        attempts or usage of its own (no call was made for that case)."""
        fields = {**self._fields(), "repeat": True, "attempts": 0, "usage": None}
        return SupervisorError(self.message, **fields)

    def to_error_info(self) -> ErrorInfo:
        """This error as a trace's ``error`` block (kind ``supervisor``, never ``agent``)."""
        from ..records import ErrorInfo

        return ErrorInfo(kind="supervisor", type=f"SupervisorError.{self.code}", message=str(self))


def _rebuild_error(message: str, fields: dict[str, Any]) -> SupervisorError:
    return SupervisorError(message, **fields)


@runtime_checkable
class Supervisor(Protocol):
    """Anything with ``decide``; shared by all cases, so it must be thread-safe."""

    def decide(self, request: SupervisorRequest) -> SupervisorReply:
        """Return the next decision, or raise :class:`SupervisorError`."""
        ...
