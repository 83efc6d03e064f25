"""Multi-turn conversations: the agent talks to a supervisor that plays the user.

One conversation runs inside one executor attempt (so under the case deadline, with the
attempt's single event loop for async agents)::

    initial input -> agent -> supervisor decision -> next user message -> agent -> ...

until the supervisor terminates, ``max_turns`` is reached (one turn = one user message and
one agent reply), the agent raises, or the supervisor fails. The transcript is kept in every
case; the supervisor's failures are reported apart from the agent's.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ...errors import FluxloopError
from ...jsonsafe import to_jsonable
from ...records import ErrorInfo, MultiTurnInfo
from ...sdk.context import acting_as, current_span_id, current_trace, current_turn
from ...supervisors import SupervisorDecision, SupervisorError, SupervisorReply, SupervisorRequest
from ..record import error_info
from ..values import conversation_values, persona_values
from .base import Binder, DriverOutcome, Resolve

if TYPE_CHECKING:
    from ...config.models import MultiTurnConfig
    from ...plan import Case
    from ...supervisors import Supervisor

MAX_TURNS_REACHED = "max_turns_reached"
ERROR = "error"
DEADLINE = "timeout"
TERMINATED = "terminated"
"""Reason recorded when a supervisor terminates without giving one."""


class _InvalidDecision(FluxloopError):
    """A (custom) supervisor returned something that is not a usable decision."""

    code = "invalid_decision"


class MultiTurnConversation:
    """Drives multi-turn conversations for every case of an experiment.

    Holds no per-conversation state, so one instance (and one supervisor) serves all cases,
    including cases running at the same time on different threads.
    """

    def __init__(
        self,
        settings: MultiTurnConfig,
        supervisor: Supervisor,
        service_context: str | None,
        override_description: str | None = None,
        timeout_seconds: float | None = None,
        override_profile: Mapping[str, Any] | None = None,
    ) -> None:
        """``override_description`` describes ``settings.persona_override`` (if known),
        ``override_profile`` is its configured profile (if any); ``timeout_seconds`` is the
        case deadline: no turn or decision starts after it."""
        self.settings = settings
        self.timeout_seconds = timeout_seconds
        self.supervisor = supervisor
        self.service_context = service_context
        self.override_description = override_description
        self.override_profile = override_profile

    def run(
        self,
        agent: Callable[..., Any],
        case: Case,
        binding: Binder,
        values: dict[str, Any],
        resolve: Resolve,
    ) -> DriverOutcome:
        """Run one conversation for ``case`` and return its outcome (never raises for the
        agent's or the supervisor's failures: they are data in the outcome)."""
        return _Run(self, agent, case, binding, values, resolve).go()


class _Run:
    """The state of one conversation (one attempt of one case)."""

    def __init__(
        self,
        owner: MultiTurnConversation,
        agent: Callable[..., Any],
        case: Case,
        binding: Binder,
        values: dict[str, Any],
        resolve: Resolve,
    ) -> None:
        self.owner = owner
        self.agent = agent
        self.case = case
        self.binding = binding
        self.resolve = resolve
        override = owner.settings.persona_override
        self.persona = override or case.persona
        self.values = dict(values)
        if override and override != case.persona:
            # The case's description belongs to its own persona, not to the forced one.
            self.description = owner.override_description
            self.values.update(
                persona_values(override, owner.override_profile, owner.override_description)
            )
        else:
            self.description = case.persona_description
        self.turns: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []
        self.usage: dict[str, float] = {}
        self.calls = 0
        self.attempts = 0
        self.model: str | None = None
        self.turn_count = 0
        self.output: Any = None
        self.ctx = current_trace()
        timeout = owner.timeout_seconds
        self.deadline = time.monotonic() + timeout if timeout else None

    # ---------------------------------------------------------------- the loop

    def go(self) -> DriverOutcome:
        message = self.case.input
        max_turns = self.owner.settings.max_turns
        while True:
            self.turns.append({"role": "user", "content": message})
            try:
                reply = self._agent_turn(message)
            except Exception as exc:  # the agent's failure ends the conversation, kept as data
                return self._outcome(ERROR, agent_error=exc)
            self.output = reply
            if self.turn_count >= max_turns:
                return self._outcome(MAX_TURNS_REACHED)
            if self._past_deadline():
                return self._outcome(DEADLINE)
            try:
                decision = self._decide()
            except Exception as exc:  # the simulator failed: not the agent's fault
                return self._supervisor_failed(exc)
            if decision.decision == "terminate":
                if decision.closing_user_message:
                    # Recorded as the user's last word; the agent never sees it.
                    self.turns.append({"role": "user", "content": decision.closing_user_message})
                return self._outcome(decision.termination_reason or TERMINATED)
            message = decision.next_user_message or ""
            if self._past_deadline():
                return self._outcome(DEADLINE)

    def _past_deadline(self) -> bool:
        # The executor has given up on this case by now and the thread is left behind:
        # stop here rather than keep paying for supervisor calls nobody will record.
        return self.deadline is not None and time.monotonic() > self.deadline

    def _agent_turn(self, message: str) -> Any:
        turn = self.turn_count + 1
        state = self.state()  # a deep copy: the agent can't change the record
        # The turns so far end with the message the agent answers now.
        per_turn = conversation_values(state, state["turns"])
        args, kwargs = self.binding.bind(message, {**self.values, **per_turn})
        span_id = self.ctx.new_span_id() if self.ctx else None
        # The agent's own spans (@fluxloop.agent, tools) nest under this turn.
        token = current_span_id.set(span_id) if span_id else None
        turn_token = current_turn.set(turn)
        t0 = time.perf_counter()
        try:
            reply = self.resolve(self.agent(*args, **kwargs))
        except Exception as exc:
            self._observe_turn(turn, span_id, message, None, t0, exc)
            raise
        finally:
            current_turn.reset(turn_token)
            if token is not None:
                current_span_id.reset(token)
        self.turn_count = turn
        self.turns.append({"role": "assistant", "content": _as_text(reply)})
        self._observe_turn(turn, span_id, message, reply, t0, None)
        return reply

    def _decide(self) -> SupervisorDecision:
        request = SupervisorRequest(
            case_id=self.case.case_id,
            turns=copy.deepcopy(self.turns),
            turn_count=self.turn_count,
            max_turns=self.owner.settings.max_turns,
            persona=self.persona,
            persona_description=self.description,
            service_context=self.owner.service_context,
            metadata=copy.deepcopy(dict(self.case.metadata)),
        )
        t0 = time.perf_counter()
        turn_token = current_turn.set(self.turn_count)
        try:
            with acting_as("supervisor"):  # its LLM calls are the harness's, not the agent's
                reply = self.owner.supervisor.decide(request)
        finally:
            current_turn.reset(turn_token)
        duration_ms = round((time.perf_counter() - t0) * 1000, 3)
        decision = _check_reply(reply)
        self.calls += 1
        attempts = getattr(reply, "attempts", 1)  # provider calls; 0 for the mock
        self.attempts += attempts if isinstance(attempts, int) else 1
        self.model = getattr(reply, "model", None) or self.model
        usage = self._add_usage(getattr(reply, "usage", None))
        entry = {
            "turn": self.turn_count,
            "decision": decision.decision,
            "termination_reason": decision.termination_reason,
            "next_user_message": decision.next_user_message,
            "closing_user_message": decision.closing_user_message,
        }
        self.decisions.append(entry)
        if self.ctx is not None:
            self.ctx.add(
                "supervisor_decision",
                "supervisor",
                role="supervisor",
                output=to_jsonable(entry),
                duration_ms=duration_ms,
                metadata={
                    "turn": self.turn_count,
                    "model": getattr(reply, "model", None),
                    "attempts": getattr(reply, "attempts", None),
                    "usage": usage or None,
                },
            )
        return decision

    def _add_usage(self, usage: Any) -> dict[str, float]:
        counts = _usage_dict(usage)
        for key, value in counts.items():
            self.usage[key] = self.usage.get(key, 0) + value
        return counts

    # ---------------------------------------------------------------- results

    def state(self) -> dict[str, Any]:
        """The conversation state ``{turns, metadata, context}`` (a fresh deep copy)."""
        metadata = copy.deepcopy(dict(self.case.metadata))
        metadata["supervisor"] = {
            "implementation": type(self.owner.supervisor).__name__,
            "model": self.model,
            "calls": self.calls,
            "attempts": self.attempts,
            "decisions": copy.deepcopy(self.decisions),
        }
        metadata["max_turns"] = self.owner.settings.max_turns
        return {
            "turns": copy.deepcopy(self.turns),
            "metadata": metadata,
            "context": {"persona": self.persona, "service_context": self.owner.service_context},
        }

    def _outcome(
        self,
        reason: str,
        agent_error: BaseException | None = None,
        supervisor_error: ErrorInfo | None = None,
        fatal: bool = False,
    ) -> DriverOutcome:
        state = self.state()
        state["metadata"]["termination_reason"] = reason
        return DriverOutcome(
            output=self.output,
            multi_turn=MultiTurnInfo(
                enabled=True, turn_count=self.turn_count, termination_reason=reason
            ),
            conversation_state=state,
            # The record builder puts these counts in the trace's by-role shape.
            token_usage={"supervisor": {**self.usage, "calls": self.attempts}}
            if self.usage
            else None,
            agent_error=agent_error,
            supervisor_error=supervisor_error,
            fatal=fatal,
            # The persona the conversation was played as (persona_override may differ
            # from the case's own).
            persona=self.persona,
        )

    def _supervisor_failed(self, exc: Exception) -> DriverOutcome:
        if isinstance(exc, SupervisorError):
            info, fatal = exc.to_error_info(), exc.fatal
            # The failed calls cost attempts and tokens too.
            self.attempts += exc.attempts
            self._add_usage(exc.usage)
        elif isinstance(exc, _InvalidDecision):
            info = ErrorInfo(
                kind="supervisor", type=f"SupervisorError.{exc.code}", message=str(exc)
            )
            fatal = False
        else:  # a bug in a custom supervisor: keep its traceback
            info = error_info(exc, "supervisor")
            fatal = False
        if self.ctx is not None:
            self.ctx.add(
                "supervisor_decision",
                "supervisor",
                role="supervisor",
                error=f"{info.type}: {info.message}"[:500],
                metadata={"turn": self.turn_count, "fatal": fatal},
            )
        outcome = self._outcome(ERROR, supervisor_error=info, fatal=fatal)
        assert outcome.conversation_state is not None
        outcome.conversation_state["metadata"]["supervisor"]["error"] = {
            "type": info.type,
            "message": info.message,
            "fatal": fatal,
        }
        return outcome

    def _observe_turn(
        self,
        turn: int,
        span_id: str | None,
        message: str,
        reply: Any,
        t0: float,
        error: BaseException | None,
    ) -> None:
        if self.ctx is None:
            return
        self.ctx.add(
            "turn",
            f"turn {turn}",
            observation_id=span_id,
            input=message,
            output=None if error else to_jsonable(reply),
            error=f"{type(error).__name__}: {error}"[:500] if error else None,
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
            metadata={"turn": turn, "persona": self.persona},
        )


def _check_reply(reply: Any) -> SupervisorDecision:
    """The decision in ``reply``; _InvalidDecision if it is not a usable one."""
    decision = reply.decision if isinstance(reply, SupervisorReply) else reply
    if not isinstance(decision, SupervisorDecision):
        raise _InvalidDecision(
            f"supervisor.decide() returned {type(reply).__name__}; expected a SupervisorReply"
        )
    if decision.decision == "continue" and not (decision.next_user_message or "").strip():
        raise _InvalidDecision("supervisor decided to continue but gave no next_user_message")
    if decision.decision not in ("continue", "terminate"):
        raise _InvalidDecision(f"supervisor decision {decision.decision!r} is not valid")
    return decision


def _usage_dict(usage: Any) -> dict[str, float]:
    """Numeric token counts of a TokenUsage (model, dataclass or mapping)."""
    if usage is None:
        return {}
    if hasattr(usage, "model_dump"):
        data = usage.model_dump()
    elif isinstance(usage, dict):
        data = usage
    else:
        data = dict(getattr(usage, "__dict__", {}))
    return {
        k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _as_text(reply: Any) -> str:
    """The agent's reply as transcript text (JSON for structured replies)."""
    if isinstance(reply, str):
        return reply
    if reply is None:
        return ""
    return json.dumps(to_jsonable(reply), ensure_ascii=False)
