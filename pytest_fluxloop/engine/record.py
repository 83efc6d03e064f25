"""Build the :class:`~pytest_fluxloop.records.TraceRecord` of a case: the one place that does.

The executor builds the record of every case it runs; the pytest adapter builds the record of
a case whose xdist worker died (``status: crashed``). Both go through :func:`case_record`, so
a record's fields come from the case the same way whoever made it.
"""

from __future__ import annotations

import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from ..jsonsafe import REPLACED_INVALID_UNICODE, replacement_note, to_jsonable
from ..plan import Case
from ..records import (
    ErrorInfo,
    ErrorKind,
    Observation,
    TraceRecord,
    TraceStatus,
    new_trace_id,
    unvalidated,
    utcnow,
)
from ..sdk.usage import add_role_usage, token_usage_by_role
from .drivers.base import DriverOutcome

# Frames of pytest-fluxloop itself are noise in an agent's traceback.
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


def case_record(
    case: Case,
    *,
    status: TraceStatus,
    trace_id: str | None = None,
    error: ErrorInfo | None = None,
    output: Any = None,
    outcome: DriverOutcome | None = None,
    attempts: int = 1,
    duration_ms: float = 0.0,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
    observations: list[Observation] | None = None,
    observations_dropped: int = 0,
    test_outcome: Any = None,
    worker: str | None = None,
) -> TraceRecord:
    """The record of ``case``: identity fields from the case, the result from the arguments.

    ``output`` is kept (JSON-converted) only for cases whose agent answered (``success``,
    or a ``supervisor_error`` after the agent's last reply); ``outcome`` adds what a driver
    produced (the transcript, multi-turn info, token usage, the persona actually played).
    A lone surrogate in the output, metadata or transcript becomes U+FFFD; the record then
    says where in ``metadata.replaced_invalid_unicode`` (``{count, paths}``).
    """
    now = utcnow() if started_at is None or completed_at is None else started_at
    answered = status in ("success", "supervisor_error")
    # Lone surrogates become U+FFFD (files are UTF-8); say where, so it is never silent.
    replaced: list[str] = []
    json_output = to_jsonable(output, replaced=replaced, path="output") if answered else None
    metadata = to_jsonable(case.metadata, replaced=replaced, path="metadata")
    state = (
        to_jsonable(outcome.conversation_state, replaced=replaced, path="conversation_state")
        if outcome
        else None
    )
    if replaced and isinstance(metadata, dict):
        metadata[REPLACED_INVALID_UNICODE] = replacement_note(replaced)
    # Not validated (records.unvalidated): every value here comes typed from the case, the
    # driver, the executor or to_jsonable; validating ~25 fields again cost more per case
    # than all the rest of this function.
    return unvalidated(
        TraceRecord,
        dict(
            trace_id=trace_id or new_trace_id(),
            case_id=case.case_id,
            iteration=case.iteration,
            # persona_override: the record names the persona the conversation was played as.
            persona=(outcome.persona if outcome else None) or case.persona,
            persona_description=case.persona_description,
            input=case.input,
            input_index=case.input_index,
            output=json_output,
            duration_ms=round(duration_ms, 3),
            success=status == "success",
            status=status,
            error=error,
            attempts=attempts,
            seed=case.seed,
            started_at=started_at or now,
            completed_at=completed_at or now,
            metadata=metadata,
            multi_turn=outcome.multi_turn if outcome else None,
            conversation_state=state,
            token_usage=trace_token_usage(observations or [], outcome),
            observations=observations or [],
            observations_dropped=observations_dropped,
            test_outcome=test_outcome,
            worker=worker,
            evaluation=None,
            cassette=None,
        ),
    )


def trace_token_usage(
    observations: list[Observation], outcome: DriverOutcome | None
) -> dict[str, Any] | None:
    """A trace's token counts by role: its generations' usage, summed per role, and the
    supervisor's as the conversation driver tallied it (exact even with LLM capture off,
    so the supervisor's own captured calls are not added a second time)."""
    driver_usage = outcome.token_usage if outcome else None
    skip = tuple(driver_usage) if driver_usage else ()
    by_role = token_usage_by_role(observations, skip_roles=skip)
    return add_role_usage(by_role, driver_usage)


def crashed_record(case: Case, message: str, worker: str | None) -> TraceRecord:
    """The record of a case whose process died while running it (blamed on the host)."""
    return case_record(
        case,
        status="crashed",
        error=ErrorInfo(kind="infrastructure", type="WorkerCrashed", message=message),
        test_outcome="failed",
        worker=worker,
    )


def error_info(exc: BaseException, kind: ErrorKind = "agent") -> ErrorInfo:
    """ErrorInfo for ``exc`` with a traceback that shows only the agent's own frames."""
    te = traceback.TracebackException.from_exception(exc)
    node: traceback.TracebackException | None = te
    agent_frames = False
    while node is not None:
        frames = [f for f in node.stack if not f.filename.startswith(_PACKAGE_DIR)]
        node.stack = traceback.StackSummary.from_list(frames)
        agent_frames = agent_frames or bool(frames)
        node = node.__cause__ or node.__context__
    # Our own error about the agent's code (runner.factory raised) shows its cause's frames.
    text = "".join(te.format()) if agent_frames else None
    return ErrorInfo(
        kind=kind, type=type(exc).__name__, message=str(exc) or type(exc).__name__, traceback=text
    )
