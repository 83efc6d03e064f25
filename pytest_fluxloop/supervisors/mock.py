"""The ``mock`` supervisor: scripted playback or a fixed decision, no LLM.

Stateless, so one instance serves every case and thread: the next scripted question is
derived from the request (the number of user messages so far), not from a counter.
"""

from __future__ import annotations

from ..config.models import SupervisorMetadata
from ..errors import ConfigError
from .base import SupervisorDecision, SupervisorReply, SupervisorRequest

__all__ = ["MockSupervisor"]

MOCK_MODEL = "mock"


class MockSupervisor:
    """Deterministic supervisor driven by ``multi_turn.supervisor.metadata``.

    * Scripted mode (``scripted_questions`` non-empty): after the agent's first reply the
      user asks question 0, after the second reply question 1, and so on; when the list is
      exhausted, terminate with ``mock_reason`` and ``mock_closing``.
    * Fallback mode: ``mock_decision: terminate`` (default) terminates right away with
      ``mock_reason``/``mock_closing``; ``continue`` always continues with
      ``mock_next_user_message`` (the turn limit ends the conversation).

    Raises:
        ConfigError: fallback ``continue`` without ``mock_next_user_message``, or an empty
            ``mock_reason``.
    """

    def __init__(self, metadata: SupervisorMetadata) -> None:
        self.metadata = metadata
        if not metadata.mock_reason.strip():
            raise ConfigError(
                "multi_turn.supervisor.metadata.mock_reason must not be empty "
                "(it becomes the termination_reason)"
            )
        if (
            not metadata.scripted_questions
            and metadata.mock_decision == "continue"
            and not (metadata.mock_next_user_message or "").strip()
        ):
            raise ConfigError(
                "multi_turn.supervisor.metadata.mock_decision is 'continue' but "
                "mock_next_user_message is missing: set the message the mock user sends, "
                "or add scripted_questions"
            )
        empty = [i for i, q in enumerate(metadata.scripted_questions) if not q.strip()]
        if empty:
            raise ConfigError(
                "multi_turn.supervisor.metadata.scripted_questions has empty entries "
                f"(index {', '.join(map(str, empty))})"
            )

    def _terminate(self) -> SupervisorDecision:
        return SupervisorDecision(
            decision="terminate",
            termination_reason=self.metadata.mock_reason,
            closing_user_message=self.metadata.mock_closing,
        )

    def decide(self, request: SupervisorRequest) -> SupervisorReply:
        """The scripted or fixed decision for this point of the conversation."""
        meta = self.metadata
        if meta.scripted_questions:
            # The first user message is the case's input; question i follows reply i + 1.
            index = max(request.user_turns - 1, 0)
            if index < len(meta.scripted_questions):
                decision = SupervisorDecision(
                    decision="continue", next_user_message=meta.scripted_questions[index]
                )
            else:
                decision = self._terminate()
        elif meta.mock_decision == "continue":
            decision = SupervisorDecision(
                decision="continue", next_user_message=meta.mock_next_user_message
            )
        else:
            decision = self._terminate()
        return SupervisorReply(decision=decision, usage=None, attempts=0, model=MOCK_MODEL)
