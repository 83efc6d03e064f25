"""Scripted supervisors and small helpers for the multi-turn tests."""

from __future__ import annotations

from typing import Any

from pytest_fluxloop.records import TraceRecord
from pytest_fluxloop.supervisors import (
    SupervisorDecision,
    SupervisorReply,
    SupervisorRequest,
    TokenUsage,
)


def cont(message: str) -> SupervisorDecision:
    return SupervisorDecision(decision="continue", next_user_message=message)


def stop(reason: str = "user_satisfied", closing: str | None = None) -> SupervisorDecision:
    return SupervisorDecision(
        decision="terminate", termination_reason=reason, closing_user_message=closing
    )


class Scripted:
    """Plays decisions (or raises exceptions) in order; remembers every request."""

    def __init__(
        self, *steps: SupervisorDecision | BaseException | Any, usage: TokenUsage | None = None
    ) -> None:
        self.steps = list(steps)
        self.usage = usage
        self.requests: list[SupervisorRequest] = []

    def decide(self, request: SupervisorRequest) -> SupervisorReply:
        self.requests.append(request)
        step = self.steps.pop(0) if self.steps else stop("script_end")
        if isinstance(step, BaseException):
            raise step
        if not isinstance(step, SupervisorDecision):
            return step  # deliberately malformed replies
        return SupervisorReply(decision=step, usage=self.usage, attempts=1, model="scripted-1")


def contents(record: TraceRecord) -> list[tuple[str, str]]:
    assert record.conversation_state is not None
    return [(t["role"], t["content"]) for t in record.conversation_state["turns"]]
