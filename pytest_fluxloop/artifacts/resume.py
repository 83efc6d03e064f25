"""Resume an experiment folder: find what is done, reopen the folder for the rest.

A case counts as done when its latest line in ``trace_summary.jsonl`` is a real result
(``success``, an agent ``error`` or a ``timeout``). Cases that are missing, ``crashed`` or
failed for simulator reasons (``supervisor_error``, error kind ``infrastructure``) run
again; their new lines are appended after the old ones, and the summary counts the latest
line of each case, so the counts reconcile.

A run that died mid-write (killed, disk full, power cut) may leave a JSONL file ending in
half a line, or the detail lines of a record that never reached ``trace_summary.jsonl``.
Before appending, :func:`reopen_writer` cuts such tails off every JSONL file (with a warning
naming the file), so new lines never glue onto torn text and a record is in all its files or
in none. :func:`find_dead_runs` finds the folders of runs that died (``summary.json`` still
``running``, its process gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ..errors import FluxloopWarning, ResumeError
from ..redact import Redactor
from .writer import (
    DEFAULT_MAX_FIELD_CHARS,
    JSONL_FILES,
    SUMMARY_FILE,
    TRACE_SUMMARY_FILE,
    ExperimentWriter,
)

_CHUNK = 64 * 1024

RERUN_STATUSES = frozenset({"crashed", "supervisor_error"})
RERUN_ERROR_KINDS = frozenset({"infrastructure", "supervisor"})


@dataclass
class ResumeState:
    """What an earlier run of the experiment left behind."""

    path: Path
    seed: int | None
    started_at: datetime | None
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    rerun: set[str] = field(default_factory=set)
    runs: list[str] = field(default_factory=list)
    trace_ids: set[str] = field(default_factory=set)
    """Every trace listed in ``trace_summary.jsonl`` (detail lines of others are unfinished)."""

    def is_done(self, case_id: str) -> bool:
        """True if ``case_id`` already has a real result."""
        return case_id in self.done


def read_resume_state(path: Path) -> ResumeState:
    """Read ``path``'s summary and trace summaries, changing nothing.

    A last line without its newline is torn (the writer writes each line with its newline
    in one call): it is ignored here, its case runs again, and :func:`reopen_writer` cuts it
    off. Another unparseable line is skipped with a warning.
    """
    path = path.expanduser().resolve()
    lines_file = path / TRACE_SUMMARY_FILE
    if not lines_file.is_file():
        raise ResumeError(
            f"{path} is not a FluxLoop experiment folder (no {TRACE_SUMMARY_FILE}); pass the "
            "exp_<timestamp> folder of the run to resume"
        )
    summary: dict[str, Any] = {}
    summary_file = path / SUMMARY_FILE
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ResumeError(f"{summary_file}: unreadable ({exc})") from None
    latest: dict[str, dict[str, Any]] = {}
    trace_ids: set[str] = set()
    try:
        data = lines_file.read_bytes()
    except OSError as exc:
        raise ResumeError(f"{lines_file}: unreadable ({exc})") from None
    # Whole lines only: a torn last line is not a result (reopen_writer removes it).
    raw = data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace").splitlines()
    for number, text in enumerate(raw, start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            # Left by an older version that kept going after a failed write: that case
            # simply runs again.
            warnings.warn(f"{lines_file}:{number}: skipping a truncated line", stacklevel=2)
            continue
        if isinstance(line, dict) and isinstance(line.get("case_id"), str):
            latest[line["case_id"]] = line
            if isinstance(line.get("trace_id"), str):
                trace_ids.add(line["trace_id"])
    state = ResumeState(
        path=path,
        seed=summary.get("seed") if isinstance(summary.get("seed"), int) else None,
        started_at=parse_time(summary.get("started_at")),
        runs=[*summary.get("resumed_runs", []), summary.get("run_id", "?")] if summary else [],
        trace_ids=trace_ids,
    )
    for case_id, line in latest.items():
        if line.get("status") in RERUN_STATUSES or line.get("error_kind") in RERUN_ERROR_KINDS:
            state.rerun.add(case_id)
        else:
            state.done[case_id] = line
    return state


def check_matches(state: ResumeState, case_ids: set[str]) -> None:
    """Refuse to resume a folder whose cases don't belong to this experiment."""
    unknown = sorted((set(state.done) | state.rerun) - case_ids)
    if unknown:
        sample = ", ".join(unknown[:3])
        raise ResumeError(
            f"{state.path} holds {len(unknown)} case(s) this config doesn't produce ({sample}); "
            "resume with the same config, inputs and iterations (and the same seed)"
        )


def reopen_writer(
    state: ResumeState,
    *,
    experiment_name: str,
    description: str,
    config_snapshot: dict[str, Any],
    total_cases: int,
    save_traces: bool,
    save_aggregated_metrics: bool,
    redactor: Redactor | None = None,
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
) -> ExperimentWriter:
    """An ExperimentWriter appending to ``state.path``, seeded with the done cases.

    ``redactor`` and ``max_field_chars`` as for :meth:`ExperimentWriter.create`.

    First every JSONL file is repaired (:func:`repair_tails`), so the summary's counts are
    the lines that parse.
    """
    repair_tails(state)
    redactor = redactor if redactor is not None else Redactor()
    writer = ExperimentWriter(
        state.path,
        experiment_name=experiment_name,
        description=description,
        config_snapshot=redactor(config_snapshot),
        seed=state.seed,
        total_cases=total_cases,
        started_at=state.started_at or datetime.now().astimezone(),
        save_traces=save_traces,
        save_aggregated_metrics=save_aggregated_metrics,
        redactor=redactor,
        max_field_chars=max_field_chars,
    )
    writer.count_existing(state.done.values())
    # Kept in every summary.json the writer writes, the final one included.
    writer.summary_extra["resumed_runs"] = state.runs
    if save_aggregated_metrics:
        writer.write_running_summary()  # this process's pid from now on
    writer.reserve_space()
    return writer


def repair_tails(state: ResumeState) -> None:
    """Cut what a run that died mid-write left at the end of each JSONL file.

    * a torn last line (no newline: the writer writes a line and its newline in one call) in
      any of the files;
    * in ``traces.jsonl`` and ``observations.jsonl``, the last lines of a record that never
      reached ``trace_summary.jsonl`` (written last): its case runs again, and would
      otherwise be there twice.

    Each repair is reported with a :class:`~pytest_fluxloop.errors.FluxloopWarning` naming
    the file. Raises ResumeError when a file cannot be repaired.
    """
    for name in JSONL_FILES:
        path = state.path / name
        if not path.is_file():
            continue
        try:
            with open(path, "r+b") as fh:
                torn = _cut_torn_line(fh)
                unfinished = 0 if name == TRACE_SUMMARY_FILE else _cut_unfinished(fh, state)
        except OSError as exc:
            raise ResumeError(
                f"{path}: cannot repair the end of the file ({exc.strerror or exc}); check "
                "the folder's permissions and free space, then resume again"
            ) from None
        if torn:
            warnings.warn(
                FluxloopWarning(
                    f"{path}: removed a truncated last line ({torn} bytes) left by a run that "
                    "stopped in the middle of writing it; its case runs again"
                ),
                stacklevel=2,
            )
        if unfinished:
            warnings.warn(
                FluxloopWarning(
                    f"{path}: removed {unfinished} line(s) of a case that was being written "
                    f"when the run stopped (not in {TRACE_SUMMARY_FILE}); it runs again"
                ),
                stacklevel=2,
            )


def _cut_torn_line(fh: IO[bytes]) -> int:
    """Truncate ``fh`` after its last newline; the number of bytes removed."""
    size = fh.seek(0, os.SEEK_END)
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        fh.seek(start)
        newline = fh.read(end - start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    else:
        keep = 0
    if keep < size:
        fh.truncate(keep)
    return size - keep


def _lines_backwards(fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of each line from the last one back (the file ends with a newline)."""
    pos = fh.seek(0, os.SEEK_END)
    buf = b""
    while True:
        cut = buf.rfind(b"\n", 0, len(buf) - 1)
        if cut >= 0:
            yield pos + cut + 1, buf[cut + 1 : -1]
            buf = buf[: cut + 1]
        elif pos > 0:
            start = max(0, pos - _CHUNK)
            fh.seek(start)
            buf = fh.read(pos - start) + buf
            pos = start
        else:
            if buf:
                yield 0, buf[:-1]
            return


def _cut_unfinished(fh: IO[bytes], state: ResumeState) -> int:
    """Truncate the trailing lines whose ``trace_id`` is not in ``trace_summary.jsonl``."""
    keep: int | None = None
    removed = 0
    for offset, line in _lines_backwards(fh):
        trace_id = None
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            trace_id = data.get("trace_id") if isinstance(data, dict) else None
        if trace_id in state.trace_ids:
            break
        keep, removed = offset, removed + 1
    if keep is not None:
        fh.truncate(keep)
    return removed


@dataclass(frozen=True)
class DeadRun:
    """An experiment folder whose run died: ``summary.json`` says ``running``, its process
    (``pid`` on this host) is gone."""

    path: Path
    pid: int
    total_traces: int
    total_cases: int


def find_dead_runs(output_root: Path, *, skip: Path | None = None) -> list[DeadRun]:
    """The folders under ``output_root`` left by runs of this host that died before the end.

    Only summaries that record a ``pid`` and this ``host`` are judged (a run on another
    machine, or of an older version, can't be checked); unreadable ones are ignored. Oldest
    first.
    """
    host = platform.node()
    found: list[DeadRun] = []
    skip = skip.resolve() if skip is not None else None
    for summary_file in sorted(Path(output_root).glob("exp_*/" + SUMMARY_FILE)):
        folder = summary_file.parent
        if skip is not None and folder.resolve() == skip:
            continue
        try:
            data = json.loads(summary_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("status") != "running":
            continue
        pid = data.get("pid")
        if not isinstance(pid, int) or data.get("host") != host or process_alive(pid):
            continue
        found.append(
            DeadRun(
                path=folder,
                pid=pid,
                total_traces=_int(data.get("total_traces")),
                total_cases=_int(data.get("total_cases")),
            )
        )
    return found


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is still running (True when it can't be told)."""
    if pid <= 0 or os.name != "posix":
        return True  # on Windows os.kill would terminate the process: never guess there
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    try:
        # A killed child not yet reaped by its parent is a zombie: it is gone.
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def parse_time(value: Any) -> datetime | None:
    """An artifact timestamp (ISO 8601, ``Z`` or offset) as a datetime; None if not one.
    Resume and merge read ``started_at`` / ``completed_at`` with it."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
