"""The supervisor contract: request, decision, reply, error and the ``Supervisor`` protocol.

After every agent reply the conversation loop sends a :class:`SupervisorRequest` (the whole
transcript so far) and gets a :class:`SupervisorReply` whose :class:`SupervisorDecision` follows
the FluxLoop decision JSON. Whatever a provider claims about structured output (servers that
ignore it, prose around the JSON, extra verdict keys), the decision is validated here, on the
client, by :func:`parse_decision`.
:class:`SupervisorError` is the :class:`~pytest_fluxloop.llm.LLMError` of this role; codes and
token usage come from the shared LLM layer (:mod:`pytest_fluxloop.llm`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..llm.errors import ERROR_CODES, FATAL_CODES, LLMError
from ..llm.parsing import InvalidOutput, output_json
from ..llm.types import RawOutput, TokenUsage
from ..records import ErrorKind

__all__ = [
    "DECISION_DESCRIPTION",
    "DECISION_FIELDS",
    "DECISION_JSON_SCHEMA",
    "DECISION_SCHEMA_NAME",
    "ERROR_CODES",
    "FATAL_CODES",
    "Supervisor",
    "SupervisorDecision",
    "SupervisorError",
    "SupervisorReply",
    "SupervisorRequest",
    "TokenUsage",
    "parse_decision",
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
#: The schema's name (OpenAI ``json_schema.name``, Anthropic tool name) and what it records.
DECISION_SCHEMA_NAME = "supervisor_decision"
DECISION_DESCRIPTION = "Record the supervisor's decision about the simulated conversation."


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


class SupervisorReply(BaseModel):
    """A validated decision plus what it cost."""

    decision: SupervisorDecision
    usage: TokenUsage | None = Field(default=None, description="None when no LLM was called")
    attempts: int = Field(default=1, ge=0, description="Provider calls made, retries included")
    model: str | None = None


class SupervisorError(LLMError):
    """The supervisor could not produce a valid decision.

    ``code`` is one of :data:`ERROR_CODES`; ``fatal`` marks configuration problems every case
    would hit (bad key, no quota, unknown model), so the run stops once instead of failing each
    case. The message names the provider, base URL and model, and never holds an API key.
    ``repeat`` is True when a supervisor re-raises a fatal error it already reported.
    Its trace ``error`` block has kind ``supervisor`` and type ``SupervisorError.<code>``.
    """

    error_kind: ClassVar[ErrorKind] = "supervisor"
    default_role: ClassVar[str] = "supervisor"

    @classmethod
    def from_llm(cls, error: LLMError) -> SupervisorError:
        """The same error (message, code, counts, ``repeat``) as a :class:`SupervisorError`."""
        if isinstance(error, cls):
            return error
        return cls(error.message, **error.fields())

    def again(self) -> SupervisorError:
        """A fresh copy for re-raising in a later case: marked ``repeat``, and with no
        attempts or usage of its own (no call was made for that case)."""
        return self.from_llm(super().again())


# --------------------------------------------------------------------------- parsing


def _check_schema(data: Any) -> None:
    if not isinstance(data, dict):
        raise InvalidOutput(f"expected a JSON object, got {type(data).__name__}", schema=True)
    # Absent nullable keys count as null: not worth a warning, the model validates them.
    extra = set(data) - set(DECISION_FIELDS)
    if extra:
        raise InvalidOutput(f"unexpected keys {sorted(extra)}", schema=True)
    if data.get("decision") not in ("continue", "terminate"):
        raise InvalidOutput(f"'decision' is {data.get('decision')!r}", schema=True)
    wrong = [k for k in DECISION_FIELDS[1:] if not isinstance(data.get(k), (str, type(None)))]
    if wrong:
        raise InvalidOutput(f"{wrong} must be strings or null", schema=True)


def parse_decision(raw: RawOutput) -> tuple[SupervisorDecision, bool]:
    """Validate ``raw`` as a decision; the flag says the format was not followed exactly.

    Raises:
        InvalidOutput: not JSON or outside the schema (``schema=True``), or a decision that
            breaks a rule such as "continue needs a message" (``schema=False``).
    """
    data, loose = output_json(raw)
    _check_schema(data)
    try:
        return SupervisorDecision.model_validate(data), loose
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise InvalidOutput(problems, schema=False) from None


@runtime_checkable
class Supervisor(Protocol):
    """Anything with ``decide``; shared by all cases, so it must be thread-safe."""

    def decide(self, request: SupervisorRequest) -> SupervisorReply:
        """Return the next decision, or raise :class:`SupervisorError`."""
        ...
