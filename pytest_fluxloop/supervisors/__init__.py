"""Supervisors: who plays the user in multi-turn conversations.

``create_supervisor(settings)`` builds the one the config asks for (``mock``, ``openai`` or
``anthropic``); any object with a ``decide(SupervisorRequest) -> SupervisorReply`` method
can stand in for it (see the ``pytest_fluxloop_supervisor`` hook). The LLM supervisors are
built on the shared layer :mod:`pytest_fluxloop.llm` (clients, retries, output validation);
this package keeps the prompt and the decision. Importing it is cheap: the LLM clients load
only when an LLM supervisor is created.
"""

from __future__ import annotations

from .base import (
    DECISION_JSON_SCHEMA,
    ERROR_CODES,
    FATAL_CODES,
    Supervisor,
    SupervisorDecision,
    SupervisorError,
    SupervisorReply,
    SupervisorRequest,
    TokenUsage,
)
from .factory import create_supervisor
from .mock import MockSupervisor

__all__ = [
    "DECISION_JSON_SCHEMA",
    "ERROR_CODES",
    "FATAL_CODES",
    "MockSupervisor",
    "Supervisor",
    "SupervisorDecision",
    "SupervisorError",
    "SupervisorReply",
    "SupervisorRequest",
    "TokenUsage",
    "create_supervisor",
]
