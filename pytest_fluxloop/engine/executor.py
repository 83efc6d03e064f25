"""Run one case: call the agent with a deadline, retry transient errors, build the record.

Every attempt runs on a reused daemon worker thread (an async agent's coroutine on the one
shared event loop), and the caller waits at most ``timeout_seconds``. That one mechanism
enforces the timeout for sync agents stuck in ``time.sleep``, async agents that block their
loop, and agents that swallow ``CancelledError``: the case ends as ``timeout`` on time and a
thread that will not stop is left behind as a daemon (counted in ``leaked_threads``), never
holding the process. What happens inside an attempt (one call, or a whole conversation) is
the driver's business (:mod:`.drivers`).
"""

from __future__ import annotations

import inspect
import random
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import copy_context
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgentTimeout
from ..llm.retry import MAX_RETRY_AFTER_SECONDS, backoff_delay, is_transient, retry_after_seconds
from ..plan import Case
from ..records import ErrorInfo, Observation, TraceRecord, TraceStatus, utcnow
from ..sdk.context import trace_context
from .agent_threads import AgentThreads
from .async_loop import SharedLoop
from .drivers import Driver, DriverOutcome, Resolve, SingleTurnDriver
from .record import case_record, error_info
from .target import Target

CANCEL_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class RunSettings:
    """How cases are executed (from ``runner`` and the top-level settings)."""

    timeout_seconds: float = 120.0
    max_retries: int = 3
    run_delay_seconds: float = 0.0
    auto_approve_tools: bool = True
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    service_context: str | None = None
    retry_on: tuple[str, ...] = ()


@dataclass
class CaseResult:
    """A finished case: the record, plus the agent's raw return value (for fixtures)."""

    record: TraceRecord
    output: Any = None
    fatal: bool = False
    """The failure is a configuration problem that every case would hit: stop the run."""


@dataclass
class _Attempt:
    outcome: DriverOutcome | None = None
    error: BaseException | None = None
    timed_out: bool = False
    observations: list[Observation] = field(default_factory=list)


class CaseExecutor:
    """Runs cases of one target. Thread-safe; holds no per-case state between calls."""

    def __init__(
        self,
        target: Target,
        settings: RunSettings,
        sleep: Callable[[float], None] = time.sleep,
        driver: Driver | None = None,
        async_loop: SharedLoop | None = None,
    ) -> None:
        self.target = target
        self.settings = settings
        self.driver: Driver = driver or SingleTurnDriver()
        self.async_loop = async_loop or SharedLoop()
        self._threads = AgentThreads()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_start = 0.0
        self.leaked_threads = 0

    def run(self, case: Case, trace_id: str | None = None) -> CaseResult:
        """Run ``case`` to completion (all attempts) and return its record."""
        self._pace()
        trace_id = trace_id or uuid.uuid4().hex
        started_at = utcnow()
        t0 = time.perf_counter()
        rng = random.Random(case.seed)
        observations: list[Observation] = []
        attempts = 0
        gave_up = ""
        while True:
            attempts += 1
            attempt = self._attempt(case, trace_id)
            observations.extend(attempt.observations)
            error = attempt.error
            if error is None:
                break
            transient = attempt.timed_out or is_transient(error, self.settings.retry_on)
            if not transient or attempts > self.settings.max_retries:
                break
            delay = backoff_delay(
                attempts - 1, rng, self.settings.backoff_base, self.settings.backoff_max
            )
            hinted = retry_after_seconds(error)
            if hinted is not None:
                if hinted > MAX_RETRY_AFTER_SECONDS:
                    # Give up now, and say why, rather than sleep silently for minutes.
                    gave_up = (
                        f"gave up retrying: the server asked to wait {hinted:g}s (Retry-After), "
                        f"more than the {MAX_RETRY_AFTER_SECONDS:g}s limit"
                    )
                    observations.append(
                        Observation(
                            trace_id=trace_id,
                            type="retry",
                            name="gave_up",
                            error=gave_up,
                            metadata={"attempt": attempts},
                        )
                    )
                    break
                delay = max(delay, hinted)
            observations.append(
                Observation(
                    trace_id=trace_id,
                    type="retry",
                    name="retry",
                    error=_one_line(error),
                    metadata={"attempt": attempts, "delay_s": round(delay, 3)},
                )
            )
            self._sleep(delay)
        duration_ms = (time.perf_counter() - t0) * 1000
        status: TraceStatus = "success"
        info: ErrorInfo | None = None
        outcome = attempt.outcome
        if attempt.error is not None:
            status = "timeout" if attempt.timed_out else "error"
            info = error_info(attempt.error, "timeout" if attempt.timed_out else "agent")
            if gave_up:
                info.message = f"{info.message} ({gave_up})"
        elif outcome is not None and outcome.supervisor_error is not None:
            # The simulator failed, not the agent: counted apart in the summary.
            status, info = "supervisor_error", outcome.supervisor_error
        output = outcome.output if outcome is not None else None
        record = case_record(
            case,
            status=status,
            trace_id=trace_id,
            error=info,
            output=output,
            outcome=outcome,
            attempts=attempts,
            duration_ms=duration_ms,
            started_at=started_at,
            completed_at=utcnow(),
            observations=observations,
        )
        return CaseResult(
            record, output if info is None else None, fatal=bool(outcome and outcome.fatal)
        )

    def _pace(self) -> None:
        # run_delay_seconds spaces case *starts*, also when several cases run at once.
        delay = self.settings.run_delay_seconds
        if delay <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + delay
        if start > now:
            self._sleep(start - now)

    def _values(self, case: Case) -> dict[str, Any]:
        return {
            "persona": case.persona,
            "iteration": case.iteration,
            "metadata": dict(case.metadata),
            "auto_approve": self.settings.auto_approve_tools,
            "seed": case.seed,
            # A single turn is a conversation of one user message, in the same shape
            # as a multi-turn conversation_state, so agents read it one way.
            "conversation_state": {
                "turns": [{"role": "user", "content": case.input}],
                "metadata": dict(case.metadata),
                "context": {
                    "persona": case.persona,
                    "service_context": self.settings.service_context,
                },
            },
        }

    def _attempt(self, case: Case, trace_id: str) -> _Attempt:
        values = self._values(case)
        driver, binding = self.driver, self.target.binding

        def invoke(fn: Callable[..., Any], resolve: Resolve) -> DriverOutcome:
            return driver.run(fn, case, binding, values, resolve)

        return self.call(trace_id, invoke, f"fluxloop-{case.case_id}")

    def call(
        self,
        trace_id: str,
        invoke: Callable[[Callable[..., Any], Resolve], DriverOutcome],
        thread_name: str,
    ) -> _Attempt:
        """Run ``invoke(agent_callable, resolve)`` on a worker thread under the deadline.

        ``resolve`` runs awaitables on one event loop per attempt, so an async agent called
        several times (one conversation) keeps the same loop for its clients.
        """
        result = _Attempt()
        state: dict[str, Any] = {}

        def resolve(value: Any) -> Any:
            if not inspect.isawaitable(value):
                return value
            call = self.async_loop.submit(value)
            state["async_call"] = call
            return call.result()

        def work() -> None:
            with trace_context(trace_id) as ctx:
                state["ctx"] = ctx
                try:
                    outcome = invoke(self.target.make_callable(), resolve)
                    result.outcome = outcome
                    result.error = outcome.agent_error
                except BaseException as exc:  # the agent's failure is data, not our crash
                    result.error = exc

        job = self._threads.start(copy_context().run, work, thread_name)
        if not job.wait(self.settings.timeout_seconds):
            call = state.get("async_call")
            task_ended = call is None or call.cancel(CANCEL_GRACE_SECONDS)
            if not job.wait(CANCEL_GRACE_SECONDS) or not task_ended:
                with self._lock:
                    self.leaked_threads += 1
            result.timed_out = True
            result.outcome = None
            result.error = AgentTimeout(
                f"agent did not finish within timeout_seconds={self.settings.timeout_seconds:g}"
            )
        ctx = state.get("ctx")
        if ctx is not None:
            result.observations = list(ctx.observations)
        return result


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
