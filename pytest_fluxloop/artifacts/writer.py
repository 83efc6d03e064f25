"""The single writer of one experiment directory.

Only the files sink of the run recorder (in the pytest controller, the main process) creates
an :class:`ExperimentWriter`; workers send their
:class:`~pytest_fluxloop.records.TraceRecord` objects to it. Layout of the folder::

    exp_<YYYYMMDD_HHMMSS>[_<suffix>]/
        config.yaml           redacted config snapshot
        metadata.json         run id, versions, user metadata   (save_aggregated_metrics)
        summary.json          aggregates, replaced atomically   (save_aggregated_metrics)
        trace_summary.jsonl   one line per trace
        traces.jsonl          one complete record per line      (save_traces)
        observations.jsonl    one observation per line          (save_traces)

Every JSONL line is coerced with :func:`~.jsonsafe.to_jsonable`, redacted, written and
flushed to the OS before :meth:`ExperimentWriter.append` returns. Per record the detail
files are written first and ``trace_summary.jsonl`` last, so a trace listed there is complete
in the other files. Only running aggregates are kept in memory.

Crash safety: a record is in all its files or in none. When a write fails (disk full, file
too large, I/O error), every file of that record is truncated back to where the record
began, so each file still ends with a whole line and nothing written earlier is lost. While
the run goes on, ``summary.json`` says ``running`` with the counts so far (rewritten at most
every :data:`CHECKPOINT_SECONDS`) and the ``pid`` and ``host`` of the writing process, so a
run that died can be told from one that is still going. A small hidden :data:`RESERVE_FILE`
holds disk space for the final summary until :meth:`ExperimentWriter.finish` releases it: a
disk that fills up during the run still gets its summary.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import yaml
from pydantic_core import PydanticSerializationError, to_json

from ..atomicfile import write_atomic
from ..errors import ArtifactWriteError
from ..jsonsafe import dumps_line, line_safe, to_jsonable
from ..records import (
    TRUNCATION_KEYS,
    ExperimentSummary,
    SummaryStatus,
    TraceRecord,
    summary_projection_json,
    truncate_fields,
    utcnow,
)
from ..redact import Redactor
from ..sdk.usage import RoleUsage, add_role_usage
from .paths import make_experiment_dir, validate_experiment_name

__all__ = [
    "ARTIFACT_FORMAT",
    "CHECKPOINT_SECONDS",
    "CONFIG_FILE",
    "DEFAULT_MAX_FIELD_CHARS",
    "JSONL_FILES",
    "METADATA_FILE",
    "OBSERVATIONS_FILE",
    "RESERVE_FILE",
    "SUMMARY_FILE",
    "TRACES_FILE",
    "TRACE_SUMMARY_FILE",
    "ArtifactWriteError",
    "ExperimentWriter",
    "FinalStatus",
    "artifact_record",
    "record_lines",
]

ARTIFACT_FORMAT = 1
"""The artifact format this version writes (``metadata.json`` ``artifact_format``): raised only
by a change that an older reader would misread; an added field does not raise it."""
SUMMARY_FILE = "summary.json"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.yaml"
TRACE_SUMMARY_FILE = "trace_summary.jsonl"
TRACES_FILE = "traces.jsonl"
OBSERVATIONS_FILE = "observations.jsonl"
JSONL_FILES = (TRACE_SUMMARY_FILE, TRACES_FILE, OBSERVATIONS_FILE)
RESERVE_FILE = ".fluxloop-reserve"
"""Disk space held for the final ``summary.json``; deleted by ``finish``."""
RESERVE_BYTES = 64 * 1024

CHECKPOINT_SECONDS = 0.5
"""``summary.json`` (status ``running``) is rewritten when a record arrives this long after the
last rewrite: a run that dies leaves counts at most this far behind its lines. By time, not
by count: a rewrite (temp file and rename, no fsync) costs about a millisecond on some file
systems, so a count-based rewrite would slow fast runs; slow agents get one per record."""

FinalStatus = Literal["complete", "incomplete", "interrupted", "failed"]

DEFAULT_MAX_FIELD_CHARS = 100_000
"""Default cap on an input/output/error in ``trace_summary.jsonl`` and observations (the
``artifact_field_max_chars`` setting; ``traces.jsonl`` keeps the record's full values)."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _fluxloop_version() -> str:
    try:
        return importlib_metadata.version("pytest-fluxloop")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


class _LineFile:
    """An append-only JSONL file: one ``write`` per batch of lines, no user-space buffer.

    ``end`` is where the last whole line ends (the writer is the file's only writer), so a
    failed append can be cut back to it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # a+b: appends always go to the end; readable so a torn last line can be detected.
        self._fh: IO[bytes] = open(path, "a+b", buffering=0)  # noqa: SIM115 - long-lived
        self.end = os.fstat(self._fh.fileno()).st_size
        self._torn = False

    def write_lines(self, lines: list[str]) -> None:
        """Append ``lines``; on an OSError raise ArtifactWriteError (maybe half written:
        :meth:`truncate` cuts it back)."""
        data = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            if self._torn and not self._ends_with_newline():
                # Cutting a failed write back failed too: start on a fresh line so the next
                # record stays parseable (readers skip the broken one).
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = self._fh.write(view)
                if not written:
                    raise OSError("short write")
                view = view[written:]
            self._torn = False
        except OSError as exc:
            self._torn = True
            raise ArtifactWriteError(self.path, _reason(exc)) from exc
        self.end += len(data)

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (the end of a whole line); best effort."""
        try:
            os.ftruncate(self._fh.fileno(), size)
        except OSError:
            self._torn = True  # the next write starts on a fresh line instead
            with contextlib.suppress(OSError):
                self.end = os.fstat(self._fh.fileno()).st_size
            return
        self.end = size
        self._torn = False

    def _ends_with_newline(self) -> bool:
        size = os.fstat(self._fh.fileno()).st_size
        if size == 0:
            return True
        self._fh.seek(size - 1)
        return self._fh.read(1) == b"\n"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()


def _make_reserve(path: Path, size: int) -> bool:
    """Write ``size`` real bytes to ``path`` (not a sparse file: the blocks must be taken).

    Best effort: on a nearly full disk or under a file-size limit there is simply no reserve.
    """
    try:
        with open(path, "wb") as fh:
            fh.write(b"\0" * size)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return False


class ExperimentWriter:
    """Writes one experiment directory; thread-safe; keeps only running aggregates.

    Create it with :meth:`create`, :meth:`append` each finished record, then :meth:`finish`.
    Also usable as a context manager (finishes ``complete``, ``interrupted`` on
    ``KeyboardInterrupt``, ``failed`` on any other exception).
    """

    def __init__(
        self,
        path: Path,
        *,
        experiment_name: str,
        description: str,
        config_snapshot: dict[str, Any],
        seed: int | None,
        total_cases: int,
        started_at: datetime,
        save_traces: bool,
        save_aggregated_metrics: bool,
        redactor: Redactor,
        max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
    ) -> None:
        """Open the JSONL files of an existing directory. Prefer :meth:`create`."""
        self.path = path
        self.run_id = uuid.uuid4().hex
        self.experiment_name = experiment_name
        self.description = description
        self.config_snapshot = config_snapshot
        self.seed = seed
        self.total_cases = total_cases
        self.leaked_threads = 0  # set by the runner before finish()
        self.missing_cases = 0  # set by the files sink before finish() (run.status)
        self.missing_case_ids: list[str] = []
        self.evaluation: dict[str, Any] | None = None
        """The run's evaluation block, set before :meth:`finish` (summary.json ``evaluation``)."""
        self.cassettes: dict[str, Any] | None = None
        """The run's cassette figures, set before :meth:`finish` (summary.json ``cassettes``)."""
        self.reports: dict[str, dict[str, Any]] = {}
        """The other sinks' reports (``collector``, ``otel``), set before :meth:`finish`."""
        self.started_at = started_at
        self.save_traces = save_traces
        self.save_aggregated_metrics = save_aggregated_metrics
        self._redactor = redactor
        self.max_field_chars = max_field_chars
        # Re-entrant: finish() builds the summary while holding the lock.
        self._lock = threading.RLock()
        self._total = 0
        self._successful = 0
        self._duration_sum = 0.0
        self._by_status: Counter[str] = Counter()
        self._by_error_kind: Counter[str] = Counter()
        self._token_usage: RoleUsage | None = None
        self._final: ExperimentSummary | None = None
        self._closed = False
        self.summary_extra: dict[str, Any] = {}
        """Keys written into every ``summary.json`` next to the model fields (``resumed_runs``)."""
        self._saved_at = time.monotonic()
        self._trace_summary: _LineFile | None = None
        self._traces: _LineFile | None = None
        self._observations: _LineFile | None = None
        try:
            self._trace_summary = _LineFile(path / TRACE_SUMMARY_FILE)
            if save_traces:
                self._traces = _LineFile(path / TRACES_FILE)
                self._observations = _LineFile(path / OBSERVATIONS_FILE)
        except OSError as exc:
            self._close_files()
            raise ArtifactWriteError(Path(exc.filename or path), _reason(exc)) from exc
        self._reserve: Path | None = None

    @classmethod
    def create(
        cls,
        output_root: Path,
        *,
        experiment_name: str,
        description: str,
        config_snapshot: dict[str, Any],
        metadata: dict[str, Any],
        seed: int | None,
        total_cases: int,
        save_traces: bool = True,
        save_aggregated_metrics: bool = True,
        suffix: str | None = None,
        now: datetime | None = None,
        redactor: Redactor | None = None,
        max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
    ) -> ExperimentWriter:
        """Create a fresh experiment directory under ``output_root`` and open its files.

        ``now`` is the start time (naive values are taken as UTC); by default the current
        time, with the directory named in local time. ``experiment_name`` is validated
        before anything is written. ``redactor`` defaults to a :class:`Redactor` that reads
        the environment now; a run passes one that also knows its config's secrets.
        ``max_field_chars`` caps each field of the summary lines and observations
        (:func:`record_lines`).

        Raises:
            OutputPathError: for an unsafe experiment name or an unwritable ``output_root``.
            ArtifactWriteError: when an initial file cannot be written.
        """
        validate_experiment_name(experiment_name)
        redactor = redactor if redactor is not None else Redactor()
        if now is None:
            started_at = utcnow()
            dir_time = started_at.astimezone()
        else:
            started_at = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
            dir_time = now
        snapshot = redactor(to_jsonable(config_snapshot))
        if not isinstance(snapshot, dict):
            raise TypeError(f"config_snapshot must be a mapping, got {type(config_snapshot)}")
        path = make_experiment_dir(Path(output_root), dir_time, suffix)
        writer = cls(
            path,
            experiment_name=experiment_name,
            description=description,
            config_snapshot=snapshot,
            seed=seed,
            total_cases=total_cases,
            started_at=started_at,
            save_traces=save_traces,
            save_aggregated_metrics=save_aggregated_metrics,
            redactor=redactor,
            max_field_chars=max_field_chars,
        )
        try:
            writer._write_file(
                CONFIG_FILE,
                yaml.safe_dump(snapshot, sort_keys=False, allow_unicode=True).encode("utf-8"),
            )
            if save_aggregated_metrics:
                user_meta = to_jsonable(metadata) if metadata else {}
                if not isinstance(user_meta, dict):
                    user_meta = {"metadata": user_meta}
                # Writer-owned keys come last: run_id and versions must be the real ones.
                meta = {
                    **user_meta,
                    "experiment_name": experiment_name,
                    "description": description,
                    "run_id": writer.run_id,
                    "started_at": started_at,
                    "fluxloop_version": _fluxloop_version(),
                    "artifact_format": ARTIFACT_FORMAT,
                    "python_version": platform.python_version(),
                    "platform": platform.platform(),
                }
                writer._write_json(METADATA_FILE, meta)
                writer.write_running_summary()
        except BaseException:
            writer._close_files()
            raise
        writer.reserve_space()
        return writer

    # -- appending ---------------------------------------------------------------------

    def append(self, record: TraceRecord) -> None:
        """Write one finished case to the JSONL files and update the aggregates.

        Raises:
            ArtifactWriteError: with the file path and reason; earlier lines stay intact.
            RuntimeError: after :meth:`finish`.
        """
        if not isinstance(record, TraceRecord):
            raise TypeError(f"append() takes a TraceRecord, got {type(record).__name__}")
        # Serialise and redact outside the lock; only the writes are serialised.
        summary_line, detail_lines, observation_lines = _redacted_lines(
            record, self._redactor, self.save_traces, self.max_field_chars
        )
        assert self._trace_summary is not None
        # trace_summary.jsonl last on purpose: a trace listed there is complete elsewhere.
        batches = [
            (self._observations, observation_lines),
            (self._traces, detail_lines),
            (self._trace_summary, [summary_line]),
        ]
        with self._lock:
            if self._closed:
                raise RuntimeError(f"experiment writer for {self.path} is already finished")
            pending = [(f, lines) for f, lines in batches if f is not None and lines]
            marks = [(f, f.end) for f, _ in pending]
            try:
                for line_file, lines in pending:
                    line_file.write_lines(lines)
            except ArtifactWriteError:
                # All or nothing: cut every file of this record back to where it began, so
                # no file keeps half a line or a record the others don't have.
                for line_file, end in marks:
                    line_file.truncate(end)
                raise
            self._count(record)
            if (
                self.save_aggregated_metrics
                and time.monotonic() - self._saved_at >= CHECKPOINT_SECONDS
            ):
                self._checkpoint()

    def _checkpoint(self) -> None:
        """Rewrite the running ``summary.json`` with the counts so far (no fsync)."""
        # Best effort: the lines are on disk; the final summary or --resume counts them.
        with contextlib.suppress(ArtifactWriteError):
            self.write_running_summary(durable=False)

    def write_running_summary(self, *, durable: bool = True) -> None:
        """Write ``summary.json`` with status ``running`` and the counts so far.

        Raises:
            ArtifactWriteError: if it cannot be written (the previous one stays intact).
        """
        with self._lock:
            self._saved_at = time.monotonic()
            self._write_summary(self._build_summary("running"), durable=durable)

    def _count(self, record: TraceRecord) -> None:
        error_kind = record.error.kind if record.error is not None else None
        self._count_values(
            record.success, record.duration_ms, record.status, error_kind, record.token_usage
        )

    def _count_values(
        self,
        success: bool,
        duration_ms: float,
        status: str,
        error_kind: str | None,
        token_usage: Any = None,
    ) -> None:
        self._total += 1
        if isinstance(token_usage, dict):
            self._token_usage = add_role_usage(self._token_usage, token_usage)
        if success:
            self._successful += 1
        if math.isfinite(duration_ms):
            self._duration_sum += duration_ms
        self._by_status[status] += 1
        if error_kind is not None:
            self._by_error_kind[error_kind] += 1

    def count_existing(self, lines: Iterable[dict[str, Any]]) -> None:
        """Seed the aggregates with earlier ``trace_summary.jsonl`` lines (resuming a run)."""
        with self._lock:
            for line in lines:
                self._count_values(
                    bool(line.get("success")),
                    float(line.get("duration_ms") or 0.0),
                    str(line.get("status") or ("success" if line.get("success") else "error")),
                    line.get("error_kind"),
                    line.get("token_usage"),
                )

    # -- summary -----------------------------------------------------------------------

    def summary(self, status: SummaryStatus = "running") -> ExperimentSummary:
        """Build the summary of what has been appended so far, without writing it."""
        with self._lock:
            return self._build_summary(status)

    def _build_summary(self, status: SummaryStatus) -> ExperimentSummary:
        total = self._total
        return ExperimentSummary(
            experiment_name=self.experiment_name,
            description=self.description,
            run_id=self.run_id,
            status=status,
            total_cases=self.total_cases,
            total_traces=total,
            successful=self._successful,
            failed=total - self._successful,
            by_status=dict(self._by_status),
            by_error_kind=dict(self._by_error_kind),
            avg_duration_ms=self._duration_sum / total if total else 0.0,
            started_at=self.started_at,
            completed_at=None if status == "running" else utcnow(),
            seed=self.seed,
            leaked_threads=self.leaked_threads,
            missing_cases=self.missing_cases,
            missing_case_ids=list(self.missing_case_ids),
            token_usage=self._token_usage,
            evaluation=self.evaluation,
            cassettes=self.cassettes,
            collector=self.reports.get("collector"),
            otel=self.reports.get("otel"),
            pid=os.getpid(),
            host=platform.node(),
            config_snapshot=self.config_snapshot,
        )

    def finish(
        self,
        status: FinalStatus,
        exit_code: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ExperimentSummary:
        """Write the final ``summary.json`` atomically, close the files, return the summary.

        ``extra`` keys are added to ``summary.json`` next to the model fields (they may not
        replace one), after :attr:`summary_extra`. Idempotent: later calls return the first
        summary and write nothing. The disk space reserve is released first, so the summary
        can be written on a disk that filled up during the run.

        Raises:
            ValueError: if an ``extra`` key collides with an ExperimentSummary field.
            ArtifactWriteError: if ``summary.json`` cannot be written (files are closed;
                calling again retries the write).
        """
        with self._lock:
            if self._final is not None:
                return self._final
            clash = set(extra or {}) & set(ExperimentSummary.model_fields)
            if clash:
                raise ValueError(f"extra summary keys shadow summary fields: {sorted(clash)}")
            summary = self.summary(status).model_copy(update={"exit_code": exit_code})
            self._closed = True
            self._close_files()
            self._release_reserve()
            if self.save_aggregated_metrics:
                self._write_summary(summary, extra)
            self._final = summary
            return summary

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` has completed."""
        return self._final is not None

    # -- files -------------------------------------------------------------------------

    def _write_summary(
        self,
        summary: ExperimentSummary,
        extra: dict[str, Any] | None = None,
        *,
        durable: bool = True,
    ) -> None:
        data = summary.model_dump(mode="json")
        data.update(to_jsonable(self.summary_extra) if self.summary_extra else {})
        data.update(to_jsonable(extra) if extra else {})
        self._write_json(SUMMARY_FILE, data, durable=durable)

    def _write_json(self, name: str, data: Any, *, durable: bool = True) -> None:
        payload = self._redactor(to_jsonable(data))
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, indent=2)
        self._write_file(
            name, (text + "\n").encode("utf-8", errors="backslashreplace"), durable=durable
        )

    def _write_file(self, name: str, data: bytes, *, durable: bool = True) -> None:
        target = self.path / name
        try:
            write_atomic(target, data, durable=durable)
        except OSError as exc:
            raise ArtifactWriteError(target, _reason(exc)) from exc

    def reserve_space(self) -> None:
        """Hold disk space for the final ``summary.json`` in :data:`RESERVE_FILE` until
        :meth:`finish`, so a disk that fills up during the run still gets its summary.

        Taken after the initial files (it must never be what fails a run's start); best
        effort: on a nearly full disk, or under a file-size limit, there is no reserve.
        """
        if not self.save_aggregated_metrics or self._reserve is not None:
            return
        # Room for a summary twice the size of the config snapshot it carries, at least.
        size = RESERVE_BYTES + 2 * len(json.dumps(self.config_snapshot, default=str))
        if _make_reserve(self.path / RESERVE_FILE, size):
            self._reserve = self.path / RESERVE_FILE

    def _release_reserve(self) -> None:
        if self._reserve is not None:
            with contextlib.suppress(OSError):
                self._reserve.unlink()
            self._reserve = None

    def _close_files(self) -> None:
        for f in (self._trace_summary, self._traces, self._observations):
            if f is not None:
                f.close()

    def __enter__(self) -> ExperimentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish("complete", exit_code=0)
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted", exit_code=2)
        else:
            self.finish("failed")

    def __repr__(self) -> str:
        return f"<ExperimentWriter {str(self.path)!r} run_id={self.run_id} traces={self._total}>"


def _redacted_lines(
    record: TraceRecord, redactor: Redactor, save_traces: bool, max_field_chars: int
) -> tuple[str, list[str], list[str]]:
    """:func:`record_lines` of ``record`` redacted by ``redactor``.

    The lines are made from the record as it is and kept when the redactor's quick check
    on the record's whole JSON finds nothing it could change (nearly every record); else
    the record is redacted and the lines made again. Same lines either way, without a walk
    over every value of every record.
    """
    full = _record_json(record)
    summary_line, detail_lines, observation_lines, whole = _lines(
        full, save_traces, max_field_chars
    )
    # The traces.jsonl line holds every value of the record unless an observation was cut.
    checked = detail_lines[0] if whole else json_line(full)
    if redactor.leaves_json_unchanged(checked):
        return summary_line, detail_lines, observation_lines
    return record_lines(redactor(full), save_traces=save_traces, max_field_chars=max_field_chars)


def record_lines(
    full: dict[str, Any], *, save_traces: bool, max_field_chars: int
) -> tuple[str, list[str], list[str]]:
    """The JSONL lines of one (redacted) record: its ``trace_summary.jsonl`` line, its
    ``traces.jsonl`` lines and its ``observations.jsonl`` lines (none without ``save_traces``).

    A big value is kept whole once: ``traces.jsonl`` has the record's full ``input`` and
    ``output``; the summary line and every observation (in both files) cut fields longer
    than ``max_field_chars`` and record ``<field>_truncated: {length, sha256}``
    (:func:`~pytest_fluxloop.records.truncate_fields`).
    """
    summary_line, detail_lines, observation_lines, _ = _lines(full, save_traces, max_field_chars)
    return summary_line, detail_lines, observation_lines


def _lines(
    full: dict[str, Any], save_traces: bool, max_field_chars: int
) -> tuple[str, list[str], list[str], bool]:
    """:func:`record_lines`, and whether the ``traces.jsonl`` line holds every value of
    ``full`` (there is one and no observation in it was cut)."""
    summary = summary_projection_json(full)
    summary_line = json_line(summary)
    if len(summary_line) > max_field_chars:  # no field can be longer than its whole line
        summary_line = json_line(truncate_fields(summary, max_field_chars))
    if not save_traces:
        return summary_line, [], [], False
    full, observation_lines, cut = _cut_observations(full, max_field_chars)
    return summary_line, [json_line(full)], observation_lines, not cut


def _cut_observations(
    full: dict[str, Any], max_field_chars: int
) -> tuple[dict[str, Any], list[str], bool]:
    """``full`` with its observations as ``observations.jsonl`` holds them (long fields cut,
    unset truncation fields dropped), those lines, and whether any field was cut."""
    observation_lines: list[str] = []
    cut = False
    observations = full.get("observations")
    if isinstance(observations, list) and observations:
        kept: list[Any] = []
        for obs in observations:
            if isinstance(obs, dict):
                # Unset truncation fields stay out of the files (lines as before them).
                for key in TRUNCATION_KEYS:
                    if key in obs and obs[key] is None:
                        del obs[key]
            line = json_line(obs)
            if isinstance(obs, dict) and len(line) > max_field_chars:
                shorter = truncate_fields(obs, max_field_chars)
                if shorter is not obs:
                    cut, obs, line = True, shorter, json_line(shorter)
            kept.append(obs)
            observation_lines.append(line)
        full = {**full, "observations": kept}
    return full, observation_lines, cut


def artifact_record(
    record: TraceRecord, redactor: Redactor, *, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
) -> dict[str, Any]:
    """One record as the files hold it: the ``traces.jsonl`` line's data, redacted by the
    same pass as :meth:`ExperimentWriter.append`, its observations those of
    ``observations.jsonl``. What the collector sink sends, so the collector and the files
    agree item for item."""
    full, _, _ = _cut_observations(redactor(_record_json(record)), max_field_chars)
    return full


def json_line(data: Any) -> str:
    """:func:`~pytest_fluxloop.jsonsafe.dumps_line` of ``data`` in JSON form (a record's dump
    or part of it), written by pydantic-core's encoder: the same compact line, 4x faster
    than the ``json`` module's, which costs more than anything else per record.

    Anything that encoder refuses (a lone surrogate, too deep) and any non-finite float
    (``NaN`` or ``Infinity`` in its output, or in a string: a harmless false alarm) goes
    through ``dumps_line``, which coerces them as it always has.
    """
    try:
        raw = to_json(data, inf_nan_mode="constants")
    except (PydanticSerializationError, ValueError, TypeError, RecursionError):
        return dumps_line(data)
    if b"NaN" in raw or b"Infinity" in raw:
        return dumps_line(data)
    return line_safe(raw.decode())


def _record_json(record: TraceRecord) -> dict[str, Any]:
    """The record as JSON data: pydantic's dump (records the engine builds are JSON-safe),
    else the slower coercing walk. NaN/inf left in a dump are coerced by ``dumps_line``."""
    try:
        return record.model_dump(mode="json")
    except (ValueError, TypeError, RecursionError, PydanticSerializationError):
        result = to_jsonable(record)
        return result if isinstance(result, dict) else {"record": result}
