"""The run recorder: the single writer of one experiment run.

Every record of a run, from ``Experiment.run``, from pytest items in this process or from
xdist workers, goes through one :class:`RunRecorder`: it opens the sinks once, fans each
record out to them, counts what it has seen, applies the status policy at the end, and tells
a :class:`RunListener` (the pytest hooks) about each record and the final summary.
"""

from __future__ import annotations

import platform
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..cassettes.tally import CassetteTally
from ..errors import ArtifactWriteError
from ..records import ExperimentSummary, TraceRecord
from ..sinks.base import ReportingSink, RunEnd, RunStart, Sink
from ..sinks.files import FileSink
from ..sinks.http import http_sink_for
from ..sinks.otel import otel_sink_for
from .status import (
    EXIT_GATE_FAILED,
    EXIT_MISSING_RECORDS,
    MISSING_IDS_KEPT,
    final_status,
    missing_records,
    status_with_missing,
)

if TYPE_CHECKING:
    from ..artifacts.resume import ResumeState
    from ..evaluation.run_stats import EvaluationOutcome, RunEvaluation
    from .experiment import Experiment


class RunListener(Protocol):
    """Told about each record once every sink has it, and about the final summary."""

    def record_written(self, record: TraceRecord, location: Path | None) -> None:
        """A record reached every sink."""
        ...

    def experiment_finished(self, summary: ExperimentSummary, location: Path | None) -> None:
        """The run finished; ``summary`` is what ``summary.json`` says."""
        ...


class RunRecorder:
    """Owns the results of one run of one experiment (thread-safe through its sinks).

    Build it with :meth:`for_experiment`, :meth:`open` it (or let the first :meth:`append`
    do it), :meth:`append` each record, then :meth:`finish` once.
    """

    def __init__(
        self,
        experiment: Experiment,
        sinks: Sequence[Sink],
        *,
        listener: RunListener | None = None,
        extra_metadata: dict[str, Any] | None = None,
        resumed_cases: int = 0,
        resumed_case_ids: Collection[str] = (),
        evaluation: RunEvaluation | None = None,
    ) -> None:
        self.experiment = experiment
        self.evaluation = evaluation
        """The run's evaluation figures (fed every written record), or None."""
        self.evaluation_outcome: EvaluationOutcome | None = None
        """Set by :meth:`finish`: the evaluation block, the gates and whether they failed."""
        cassettes = experiment.cassettes
        self.cassettes = (
            CassetteTally(cassettes.mode, str(cassettes.folder), cassettes.reason)
            if cassettes is not None
            else None
        )
        """The run's cassette figures (fed every written record), or None."""
        self.sinks = list(sinks)
        self.listener = listener
        self.extra_metadata = dict(extra_metadata or {})
        self.resumed_cases = resumed_cases
        """Cases done by the run being resumed: they count towards ``total_cases``."""
        self.records = 0
        self.failed = 0
        self.summary: ExperimentSummary | None = None
        self.write_error: ArtifactWriteError | None = None
        """The first failed write (disk full...): the run must stop, see :meth:`append`."""
        self.unwritten: set[str] = set()
        """Case ids of records handed to :meth:`append` that no file got (a failed write):
        with the written ones, every record offered, without a second set of every id."""
        self.written: set[str] = set(resumed_case_ids)
        """Case ids with a record in the files: appended by this run, or done by the run
        being resumed (a set of strings: small even at tens of thousands of cases)."""
        self.missing: list[str] = []
        """Set by :meth:`finish`: cases that reported but have no record (sorted)."""
        self._opened = False
        self._location: Path | None = None

    @classmethod
    def for_experiment(
        cls,
        experiment: Experiment,
        *,
        output_root: Path | None = None,
        resume: ResumeState | None = None,
        listener: RunListener | None = None,
        extra_metadata: dict[str, Any] | None = None,
    ) -> RunRecorder:
        """The recorder with the sinks the experiment's config asks for (files today)."""
        files = FileSink(experiment.cfg, override_root=output_root, resume=resume)
        sinks: list[Sink] = [files]
        collector = http_sink_for(experiment, spool_folder=lambda: files.location)
        if collector is not None:
            sinks.append(collector)
        otel = otel_sink_for(experiment)
        if otel is not None:
            sinks.append(otel)
        evaluation = experiment.run_evaluation()
        if resume is not None:
            for line in resume.done.values():
                evaluation.add_line(line)
        return cls(
            experiment,
            sinks,
            listener=listener,
            extra_metadata=extra_metadata,
            resumed_cases=len(resume.done) if resume is not None else 0,
            resumed_case_ids=resume.done.keys() if resume is not None else (),
            evaluation=evaluation,
        )

    def sink_lines(self) -> list[str]:
        """What the other sinks (collector, OpenTelemetry) say in the terminal summary."""
        lines: list[str] = []
        for sink in self.sinks:
            if isinstance(sink, ReportingSink):
                lines.extend(sink.lines())
        return lines

    @property
    def location(self) -> Path | None:
        """Where the results are (the first sink that has a location)."""
        if self._opened:
            return self._location  # fixed once the sinks are open; asked for every record
        return self._sink_location()

    def _sink_location(self) -> Path | None:
        return next((s.location for s in self.sinks if s.location is not None), None)

    @property
    def is_open(self) -> bool:
        """Whether the sinks were opened."""
        return self._opened

    def open(self, total_cases: int | None = None) -> None:
        """Open every sink (ConfigError for an unusable output); idempotent.

        ``total_cases`` is the number of cases this session will run (after selection);
        by default the whole plan.
        """
        if self._opened:
            return
        experiment = self.experiment
        cfg = experiment.cfg
        todo = experiment.plan.total if total_cases is None else total_cases
        start = RunStart(
            experiment_name=experiment.name,
            description=cfg.simulation.description,
            total_cases=self.resumed_cases + todo,
            seed=experiment.plan.seed,
            config_snapshot=cfg.snapshot(),
            metadata={
                "config_path": str(cfg.config_path),
                "project_root": str(cfg.project_root),
                "config_files": {k: str(v) for k, v in cfg.sources.items()},
                "target": cfg.simulation.runner.target_spec,
                "inputs_source": experiment.plan.source,
                "plan": experiment.plan.describe(),
                **experiment.plan.run_metadata(),
                "host": platform.node(),
                **self.extra_metadata,
            },
        )
        for sink in self.sinks:
            sink.open(start)
        self._location = self._sink_location()
        self._opened = True

    def append(self, record: TraceRecord) -> None:
        """Hand ``record`` to every sink, count it, and tell the listener.

        Raises:
            ArtifactWriteError: a sink could not write it (disk full, file too large). The
                record is in none of the files and not counted; :attr:`write_error` keeps
                the first such error. The caller should stop the run and still
                :meth:`finish` it: the summary then counts what is on disk.
        """
        self.open()
        try:
            for sink in self.sinks:
                sink.append(record)
        except BaseException as exc:
            self.unwritten.add(record.case_id)
            if isinstance(exc, ArtifactWriteError) and self.write_error is None:
                self.write_error = exc
            raise
        self.records += 1
        self.written.add(record.case_id)
        if self.evaluation is not None:
            self.evaluation.add(record)
        if self.cassettes is not None:
            self.cassettes.add(record)
        if not record.success or record.test_outcome == "failed":
            self.failed += 1
        if self.listener is not None:
            self.listener.record_written(record, self.location)

    def finish(
        self,
        exit_code: int | None,
        *,
        cut_off: bool = False,
        stopped: bool = False,
        selected: int | None = None,
        reported: Collection[str] = (),
    ) -> ExperimentSummary | None:
        """Finish every sink with the final status; returns the run's summary (once).

        ``cut_off``: the run ended by an interrupt or exception. ``stopped``: it was asked to
        stop early (``-x``, a fatal error); with fewer records than the ``selected`` cases
        (default: the whole plan) it is ``interrupted``.

        ``reported``: the case ids whose items reported a result in this session (the
        pytest controller's count, independent of the records that arrived). Those and every
        case offered to :meth:`append` must have a written record
        (:func:`~.status.missing_records`); any that has none is listed in
        :attr:`missing` and in the summary, and a run that would be ``complete`` is
        ``incomplete``, with exit code :data:`~.status.EXIT_MISSING_RECORDS` instead of 0
        or 1.
        """
        if self.summary is not None or not self._opened:
            return self.summary
        todo = selected if selected is not None else self.experiment.plan.total
        unfinished = self.records < todo
        self.missing = missing_records(self.unwritten.union(reported), self.written)
        status = final_status(exit_code, cut_off=cut_off, stopped=stopped, unfinished=unfinished)
        block = None
        if self.evaluation is not None:
            self.evaluation_outcome = outcome = self.evaluation.finish()
            block = outcome.block
            if outcome.fails_run and exit_code == 0:
                exit_code = EXIT_GATE_FAILED  # a failed gate fails a run whose items passed
        if self.missing and exit_code in (0, 1):
            exit_code = EXIT_MISSING_RECORDS  # what the pytest session exits with then
        end = RunEnd(
            status=status_with_missing(status, self.missing),
            exit_code=exit_code,
            total_cases=self.resumed_cases + todo,
            leaked_threads=self.experiment.leaked_threads,
            missing_cases=len(self.missing),
            missing_case_ids=tuple(self.missing[:MISSING_IDS_KEPT]),
            evaluation=block,
            cassettes=self.cassettes.block() if self.cassettes is not None else None,
        )
        # Reporting sinks (the collector) first: the others, the files sink among them,
        # write their reports into summary.json.
        reports: dict[str, dict[str, Any]] = {}
        for sink in self.sinks:
            if isinstance(sink, ReportingSink):
                sink.finish(end)
                reports[sink.name] = sink.report()
        end = replace(end, reports=reports)
        summaries = [sink.finish(end) for sink in self.sinks if not isinstance(sink, ReportingSink)]
        self.summary = next((s for s in summaries if s is not None), None)
        if self.summary is not None and self.listener is not None:
            self.listener.experiment_finished(self.summary, self.location)
        return self.summary
