"""The run's status policy: when a run stops early, and what its summary says at the end.

One copy for every way of running an experiment (``Experiment.run``, the pytest controller,
the ``@pytest.mark.fluxloop`` fixture), so they can't disagree.
"""

from __future__ import annotations

from ..engine.executor import CaseResult
from ..sinks.base import FinalStatus

EXIT_INTERRUPTED = 2
"""pytest's exit code for Ctrl-C / SIGTERM, also used for an interrupted ``Experiment.run``."""


def final_status(
    exit_code: int | None, *, cut_off: bool = False, stopped: bool = False, unfinished: bool = False
) -> FinalStatus:
    """``summary.json``'s final status.

    ``interrupted`` when the run was cut off (Ctrl-C, SIGTERM, an exception out of
    ``Experiment.run``) or stopped early (``-x``, ``--maxfail``, a fatal provider error) with
    selected cases left unrun; ``complete`` when it ran to its end (failed cases included:
    exit codes 0 and 1); ``failed`` when the harness itself failed (internal or usage error).
    """
    if cut_off or exit_code == EXIT_INTERRUPTED or (stopped and unfinished):
        return "interrupted"
    if exit_code in (None, 0, 1):
        return "complete"
    return "failed"


def fatal_reason(result: CaseResult) -> str | None:
    """Why the run must stop after ``result``, or None.

    A configuration problem every case would hit (bad API key, no quota, unknown model) is
    reported once and stops the run, rather than failing every remaining case the same way.
    """
    if not result.fatal:
        return None
    error = result.record.error
    reason = f"{error.type}: {error.message}" if error else result.record.status
    return f"pytest-fluxloop: stopping the run: {reason}"
