"""Run one case: call the agent with a deadline, retry transient errors, build the record.

Every attempt runs on a reused daemon worker thread (an async agent's coroutine on the one
shared event loop), and the caller waits at most ``timeout_seconds``. That one mechanism
enforces the timeout for sync agents stuck in ``time.sleep``, async agents that block their
loop, and agents that swallow ``CancelledError``: the case ends as ``timeout`` on time and a
thread that will not stop is left behind as a daemon (counted in ``leaked_threads``), never
holding the process. What happens inside an attempt (one call, or a whole conversation) is
the driver's business (:mod:`.drivers`).

An async case that blocks the shared loop is a ``timeout`` and is not retried (a retry would
block the loop for everyone again); the async cases it held up are run again on a fresh loop,
without using up their retries, and say so in a ``loop_blocked`` notice. The working
directory is put back around every attempt (:mod:`.process_state`).
"""

from __future__ import annotations

import inspect
import os
import random
import threading
import time
from collections.abc import Callable
from contextvars import copy_context
from dataclasses import dataclass, field
from typing import Any

from ..cassettes.session import current_tape
from ..errors import AgentTimeout
from ..integrations import case_capture
from ..llm.retry import MAX_RETRY_AFTER_SECONDS, backoff_delay, is_transient, retry_after_seconds
from ..plan import Case
from ..records import ErrorInfo, Observation, TraceRecord, TraceStatus, new_trace_id, utcnow
from ..sdk.context import DEFAULT_CAPTURE, CaptureSettings, trace_context
from .agent_threads import AgentThreads, Job
from .async_loop import AsyncCall, Blocked, LoopBlocked, SharedLoop
from .drivers import Driver, DriverOutcome, Resolve, SingleTurnDriver
from .process_state import CwdGuard
from .record import case_record, error_info
from .streams import collect, collect_async, is_async_stream, is_stream
from .target import Target
from .values import case_values

CANCEL_GRACE_SECONDS = 1.0
MAX_LOOP_RERUNS = 3
"""Fresh attempts a case gets, beyond its retries, after other cases blocked its loop."""


@dataclass(frozen=True)
class RunSettings:
    """How cases are executed (from ``runner`` and the top-level settings)."""

    timeout_seconds: float = 120.0
    max_retries: int = 3
    run_delay_seconds: float = 0.0
    auto_approve_tools: bool = True
    backoff_base: float = 0.5
    """Delay before the first retry (``runner.retry_delay`` when set), doubling after each,
    times a jitter factor in [0.5, 1]; 0 retries at once."""
    backoff_max: float = 30.0
    service_context: str | None = None
    retry_on: tuple[str, ...] = ()
    stream_output_path: str | None = None
    """Where a streaming agent's items hold their text (:mod:`.streams`)."""
    capture: CaptureSettings = DEFAULT_CAPTURE
    """What each case's trace records besides decorated spans (``capture:``)."""


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
    blocked_loop: bool = False
    """This attempt's own task blocked the shared event loop."""
    observations: list[Observation] = field(default_factory=list)
    dropped: int = 0
    """Observations past the trace's limit (``capture.max_observations``)."""


class CaseExecutor:
    """Runs cases of one target. Thread-safe; holds no per-case state between calls."""

    def __init__(
        self,
        target: Target,
        settings: RunSettings,
        sleep: Callable[[float], None] = time.sleep,
        driver: Driver | None = None,
        async_loop: SharedLoop | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``workdir``: the runner's working directory, restored around every attempt
        (None: the directory each attempt starts in is restored after it)."""
        self.target = target
        self.settings = settings
        self.driver: Driver = driver or SingleTurnDriver()
        self.async_loop = async_loop or SharedLoop()
        self._cwd = CwdGuard(workdir)
        self._threads = AgentThreads()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_start = 0.0
        self.leaked_threads = 0

    def run(self, case: Case, trace_id: str | None = None) -> CaseResult:
        """Run ``case`` to completion (all attempts) and return its record."""
        self._pace()
        trace_id = trace_id or new_trace_id()
        started_at = utcnow()
        t0 = time.perf_counter()
        rng: random.Random | None = None  # made on the first retry: most cases have none
        observations: list[Observation] = []
        dropped = 0
        attempts = 0
        reruns = 0  # fresh attempts after another case blocked the loop: not retries
        gave_up = ""
        while True:
            attempts += 1
            attempt = self._attempt(case, trace_id)
            observations.extend(attempt.observations)
            dropped += attempt.dropped
            error = attempt.error
            if error is None:
                break
            if isinstance(error, LoopBlocked) and reruns < MAX_LOOP_RERUNS:
                reruns += 1
                observations.append(_loop_blocked_notice(trace_id, error.blocked, attempts))
                continue  # at once, on the fresh loop: this case did nothing wrong
            if attempt.blocked_loop:
                break  # a retry would block the shared loop for every other case again
            transient = attempt.timed_out or is_transient(error, self.settings.retry_on)
            if not transient or attempts - reruns > self.settings.max_retries:
                break
            if rng is None:
                rng = random.Random(case.seed)
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
            observations_dropped=dropped,
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

    def _attempt(self, case: Case, trace_id: str) -> _Attempt:
        tape = current_tape.get()
        if tape is not None:
            tape.begin_attempt()  # a retry's calls are matched (and recorded) afresh
        driver, binding = self.driver, self.target.binding
        values = case_values(
            case,
            auto_approve=self.settings.auto_approve_tools,
            service_context=self.settings.service_context,
            binding=binding,
        )

        def invoke(fn: Callable[..., Any], resolve: Resolve) -> DriverOutcome:
            return driver.run(fn, case, binding, values, resolve)

        return self.call(trace_id, invoke, f"fluxloop-{case.case_id}", label=case.case_id)

    def call(
        self,
        trace_id: str,
        invoke: Callable[[Callable[..., Any], Resolve], DriverOutcome],
        thread_name: str,
        label: str | None = None,
    ) -> _Attempt:
        """Run ``invoke(agent_callable, resolve)`` on a worker thread under the deadline.

        ``resolve`` runs awaitables on the shared event loop, so an async agent called
        several times (one conversation) keeps the same loop for its clients, and consumes
        streams (:mod:`.streams`: sync ones on this thread, async ones on that loop), so
        both count toward the deadline. ``label`` (the case id) names this attempt if its
        task blocks that loop.
        """
        result = _Attempt()
        state: dict[str, Any] = {}
        entered = self._cwd.enter(trace_id)
        stream_path = self.settings.stream_output_path

        def on_loop(awaitable: Any) -> Any:
            call = self.async_loop.submit(awaitable, label=label)
            state["async_call"] = call
            return call.result()

        def resolve(value: Any) -> Any:
            if inspect.isawaitable(value):
                value = on_loop(value)
            if is_async_stream(value):
                return on_loop(collect_async(value, stream_path))
            if is_stream(value):
                return collect(value, stream_path)
            return value

        def work() -> None:
            # Writes go to `state`, never to `result`: a thread that ends after the deadline
            # must not overwrite the timeout the caller has recorded by then.
            with trace_context(trace_id, self.settings.capture) as ctx:
                state["ctx"] = ctx
                try:
                    with case_capture(ctx) as notices:
                        for notice in notices:
                            ctx.add("notice", "capture", kind="event", error=notice)
                        outcome = invoke(self.target.make_callable(), resolve)
                    state["outcome"] = outcome
                    state["error"] = outcome.agent_error
                except BaseException as exc:  # the agent's failure is data, not our crash
                    state["error"] = exc

        job = self._threads.start(copy_context().run, work, thread_name)
        if job.wait(self.settings.timeout_seconds):
            result.outcome = state.get("outcome")
            result.error = state.get("error")
            # Given up with a loop another case blocked: a timeout it did not cause.
            result.timed_out = isinstance(result.error, LoopBlocked)
        else:
            self._timed_out(job, state.get("async_call"), result)
        ctx = state.get("ctx")
        if ctx is not None:
            # A stream the agent never finished reading ends with its case.
            ctx.close_open_spans()
            result.observations = list(ctx.observations)
            result.dropped = ctx.dropped
        notice = self._cwd.leave(trace_id, entered)
        if notice is not None:
            result.observations.append(notice)
        return result

    def _timed_out(self, job: Job, call: AsyncCall[Any] | None, result: _Attempt) -> None:
        """The attempt missed its deadline: find out whether a blocked loop is to blame."""
        timeout = self.settings.timeout_seconds
        result.timed_out = True
        result.error = AgentTimeout(f"agent did not finish within timeout_seconds={timeout:g}")
        # Only the loop of an async call still waited on is pinged, only now it timed out.
        waiting = call is not None and not call.finished.is_set()
        blocked = self.async_loop.blocked(call) if call is not None and waiting else None
        if blocked is not None and blocked.blocker is not call:
            # Held up by another case's blocking task: blocked() gave this call up, so the
            # thread waiting on it returns now, and run() starts a fresh attempt.
            if not job.wait(CANCEL_GRACE_SECONDS):
                self._leaked()
            result.error = LoopBlocked(blocked)
            return
        if blocked is not None:
            assert call is not None
            call.cancel(0.0)  # it can't see the cancellation until it lets go of the loop
            self._leaked()
            result.blocked_loop = True
            result.error = AgentTimeout(
                f"agent did not finish within timeout_seconds={timeout:g} and was blocking "
                "the shared event loop (a blocking call such as time.sleep or sync I/O "
                "inside async def); the other async cases on that loop were moved to a "
                "fresh one, and this case is not retried"
            )
            return
        task_ended = call is None or call.cancel(CANCEL_GRACE_SECONDS)
        if not job.wait(CANCEL_GRACE_SECONDS) or not task_ended:
            self._leaked()

    def _leaked(self) -> None:
        with self._lock:
            self.leaked_threads += 1


def _loop_blocked_notice(trace_id: str, blocked: Blocked, attempt: int) -> Observation:
    return Observation(
        trace_id=trace_id,
        type="notice",
        name="loop_blocked",
        error=(
            f"the shared event loop was blocked by {blocked.describe()}; this case was "
            "run again on a fresh loop (not counted as a retry)"
        ),
        metadata={"attempt": attempt, "blocked_by": blocked.by},
    )


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
