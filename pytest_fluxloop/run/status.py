"""The run's status policy: when a run stops early, and what its summary says at the end.

One copy for every way of running an experiment (``Experiment.run``, the pytest controller,
the ``@pytest.mark.fluxloop`` fixture), so they can't disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from ..engine.executor import CaseResult
from ..errors import ArtifactWriteError
from ..redact import Redactor, redact
from ..sinks.base import FinalStatus

EXIT_INTERRUPTED = 2
"""pytest's exit code for Ctrl-C / SIGTERM, also used for an interrupted ``Experiment.run``."""
EXIT_USAGE_ERROR = 4
"""pytest's exit code for a usage error; also the exit code of a fatal configuration stop."""
EXIT_GATE_FAILED = 1
"""A run whose items all passed but whose gate failed (``pass^3>=0.8``...), or that had
unscored judge results under ``--fluxloop-strict-judges``: pytest's "tests failed"."""

FATAL_STOP_PREFIX = "pytest-fluxloop: stopping the run: "
"""How :func:`fatal_reason` starts: the session's stop reason says it was a fatal stop."""


def final_status(
    exit_code: int | None, *, cut_off: bool = False, stopped: bool = False, unfinished: bool = False
) -> FinalStatus:
    """``summary.json``'s final status.

    ``interrupted`` when the run was cut off (Ctrl-C, SIGTERM, an exception out of
    ``Experiment.run``) or stopped early (``-x``, ``--maxfail``, a fatal provider error) with
    selected cases left unrun; ``complete`` when it ran to its end (failed cases included:
    exit codes 0 and 1); ``failed`` when the harness itself failed (internal or usage error).
    (``incomplete``, a run that ended but lost records, is decided by the recorder with
    :func:`status_with_missing`.)

    A fatal configuration stop (bad key, no quota, unknown model) has exit code 4 like any
    configuration error: ``interrupted`` while cases were left unrun (fix the setting, then
    ``--resume``), ``failed`` when it hit the last case and nothing is left to resume.
    """
    if cut_off or exit_code == EXIT_INTERRUPTED or (stopped and unfinished):
        return "interrupted"
    if exit_code in (None, 0, 1):
        return "complete"
    return "failed"


MISSING_IDS_KEPT = 100
"""At most this many missing case ids are listed in ``summary.json`` (all are counted)."""
MISSING_IDS_SHOWN = 5
"""At most this many missing case ids are named in the terminal warning."""
EXIT_MISSING_RECORDS = EXIT_INTERRUPTED
"""The exit code of a session that would have exited 0 or 1 but lost records: 2, as when
results can't be written (disk full), since both leave cases that reported a result
without one on disk (``--resume`` runs them again); never 0, and not 1, which only says
that cases failed."""


def missing_records(reported: Collection[str], written: Collection[str]) -> list[str]:
    """The case ids that reported a result but have no written record, sorted.

    The invariant that makes silent loss impossible: every case whose item reported an
    outcome in this session (``reported``) must have a record in the files (``written``:
    appended in this session, or already done in the folder being resumed). Cases that
    never reported (deselected, ``-k``, ``--lf``, left unrun by ``-x``) are not in
    ``reported`` and are not missing; a written record whose case did not report (a crash
    record, a resumed case) is not an error either.
    """
    return sorted(case_id for case_id in set(reported) if case_id not in written)


def status_with_missing(status: FinalStatus, missing: Sequence[str]) -> FinalStatus:
    """``status`` once ``missing`` cases are known to have no record: a run that would be
    ``complete`` is ``incomplete``; ``interrupted`` and ``failed`` already say it is not."""
    return "incomplete" if missing and status == "complete" else status


def missing_warning(experiment_name: str, missing: Sequence[str], location: Path | None) -> str:
    """The terminal warning for cases that reported but whose records were not written."""
    shown = ", ".join(missing[:MISSING_IDS_SHOWN])
    more = (
        f" and {len(missing) - MISSING_IDS_SHOWN} more" if len(missing) > MISSING_IDS_SHOWN else ""
    )
    folder = f" {location}" if location is not None else " <experiment folder>"
    return (
        f"pytest-fluxloop: {len(missing)} case(s) of experiment '{experiment_name}' reported "
        f"a result but have no record in the files ({shown}{more}): the summary says "
        f"'incomplete' and lists them; run them again with --resume{folder} "
        f"(pytest: --fluxloop-resume{folder})"
    )


def fatal_reason(result: CaseResult, redactor: Redactor | None = None) -> str | None:
    """Why the run must stop after ``result``, or None.

    A configuration problem every case would hit (bad API key, no quota, unknown model) is
    reported once and stops the run, rather than failing every remaining case the same way.
    The reason is printed and may quote a server or the agent, so it is redacted: by
    ``redactor`` (the run's, which knows the config's keys), else by the environment's keys.
    """
    if not result.fatal:
        return None
    error = result.record.error
    reason = f"{error.type}: {error.message}" if error else result.record.status
    reason = redactor.redact_text(reason) if redactor is not None else str(redact(reason))
    return f"{FATAL_STOP_PREFIX}{reason}"


def is_fatal_stop(reason: object) -> bool:
    """Whether a session's stop reason (pytest's ``shouldfail``/``shouldstop``; under xdist a
    worker's reason reaches the controller as ``shouldstop``) is a :func:`fatal_reason`."""
    return isinstance(reason, str) and reason.startswith(FATAL_STOP_PREFIX)


WRITE_STOP_PREFIX = "pytest-fluxloop: results can't be written, stopping the run: "
"""How :func:`write_stop_reason` starts (not a fatal configuration stop: exit code 2)."""


def write_stop_reason(error: ArtifactWriteError, location: Path | None) -> str:
    """Why the run stops after a failed write (disk full, file too large), and what to do.

    Nothing written is lost (a failed record is in none of the files), so the fix is to
    free space and resume the folder. Names the file and the OS reason, nothing else.
    """
    folder = location if location is not None else error.path.parent
    return (
        f"{WRITE_STOP_PREFIX}{error.path}: {error.reason}. The cases already written to "
        f"{folder} are kept, each line whole; free disk space (or choose another "
        f"output_directory / --output-dir), then run the rest with --resume {folder} "
        f"(pytest: --fluxloop-resume {folder})"
    )


def summary_failed_reason(error: ArtifactWriteError, location: Path | None) -> str:
    """What to say when even the final ``summary.json`` could not be written."""
    folder = location if location is not None else error.path.parent
    return (
        f"pytest-fluxloop: could not write {error.path}: {error.reason}. It may still say "
        f"'running' with older counts; the lines of every case written are whole and kept. "
        f"Free disk space, then run with --resume {folder} (pytest: --fluxloop-resume "
        f"{folder}): it runs what is missing and rewrites summary.json with the right counts"
    )
