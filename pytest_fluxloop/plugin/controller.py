"""The controller: the one process that writes results (not an xdist worker).

Records reach it on test reports, from items run in this process or by xdist workers; it
hands each to the :class:`~pytest_fluxloop.run.recorder.RunRecorder` of its experiment
(one per experiment: the configured one and each marker's), updates the progress bar, and
at session finish lets each recorder write its summary with the run's final status.

No silent loss: it also counts the cases whose items reported (from the reports, whether or
not a record came with them); a case that reported without a written record makes the
summary ``incomplete`` with its id (``run.status.missing_records``), a warning in the
terminal summary, and exit code 2 instead of 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import ArtifactWriteError
from .keys import EXPERIMENT_ATTR, RECORD_ATTR
from .nodeids import case_id_of
from .usage import usage_errors
from .xdist import NO_CRASH_RECORD_ATTR, report_worker

if TYPE_CHECKING:
    from ..records import ExperimentSummary, TraceRecord
    from ..run import Experiment
    from ..run.recorder import RunRecorder
    from .progress import ProgressPrinter
    from .state import PluginState


class _HookListener:
    """Turns recorder events into the plugin's own hooks."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def record_written(self, record: TraceRecord, location: Path | None) -> None:
        hook = self.config.hook.pytest_fluxloop_record_written
        if hook.get_hookimpls():  # a hook call per record costs even with no one listening
            hook(config=self.config, record=record, experiment_dir=location)

    def experiment_finished(self, summary: ExperimentSummary, location: Path | None) -> None:
        self.config.hook.pytest_fluxloop_experiment_finished(
            config=self.config, summary=summary, experiment_dir=location
        )


class _RedactingReporter:
    """The terminal reporter, with the text of ``write_line``/``write_sep`` redacted."""

    def __init__(self, reporter: Any, redact: Callable[[str], str]) -> None:
        self._reporter = reporter
        self._redact = redact

    def write_line(self, line: str, **markup: Any) -> None:
        self._reporter.write_line(self._redact(str(line)), **markup)

    def write_sep(self, sep: str, title: str | None = None, **markup: Any) -> None:
        self._reporter.write_sep(sep, self._redact(title) if title else title, **markup)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)


class Controller:
    """Receives every record of the session and owns the recorders (registered as a plugin)."""

    def __init__(self, state: PluginState) -> None:
        self.state = state
        self.config = state.config
        self.recorders: dict[str, RunRecorder] = {}
        self.progress: ProgressPrinter | None = None
        self._listener = _HookListener(self.config)
        self._summary_errors: dict[str, ArtifactWriteError] = {}
        """Recorders whose final summary.json could not be written (by experiment key)."""
        self._reported: dict[str, set[str]] = {}
        """Case ids whose items reported a result and whose record is not written (yet), by
        experiment key: counted from the reports themselves, whether or not their record
        arrived (see :meth:`finish`)."""
        self._lost: dict[str, list[str]] = {}
        self._reports: dict[str, str] = {}
        """``--fluxloop-report``: where each experiment's report went (or why it did not)."""
        """Reported case ids of an experiment the controller has no recorder for, by key."""

    def recorder(self, experiment: Experiment, total_cases: int | None = None) -> RunRecorder:
        """The opened recorder of ``experiment`` (created on first use; usage error if the
        output folder can't be made)."""
        recorder = self.recorders.get(experiment.key)
        if recorder is None:
            from ..run.recorder import RunRecorder  # once: this method runs for every record

            state = self.state
            resume = state.resume if experiment is state.experiment else None
            # Making the sinks checks their settings too (a missing extra, a collector URL).
            with usage_errors():
                recorder = RunRecorder.for_experiment(
                    experiment,
                    resume=resume,
                    listener=self._listener,
                    extra_metadata={"pytest_args": list(self.config.invocation_params.args)},
                )
                recorder.open(total_cases)
            self.recorders[experiment.key] = recorder
        return recorder

    # ------------------------------------------------------------------ records

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Append the record carried by ``report`` as soon as its item reports."""
        data = getattr(report, RECORD_ATTR, None)
        if self.state.experiment is None and data is None:
            return  # no experiment, and not a marker test's report: nothing to note
        if not self._append_record(report):
            # No record written for this report (none came, or it could not be written):
            # count its case, so the summary lists it as missing if no record ever does. A
            # written record needs no such count: the recorder knows it (and this costs
            # more per case than anything else here).
            self._note_reported(report, data)

    def _append_record(self, report: pytest.TestReport) -> bool:
        """Append the record ``report`` carries (or a crashed worker's); True if written."""
        record = self._take_record(report)
        if record is None:
            return False
        experiment = self.state.experiment_by_key(str(getattr(report, EXPERIMENT_ATTR, None)))
        if experiment is None:
            return False
        recorder = self.recorder(experiment)
        if recorder.write_error is not None:
            return False  # stopping: this case is in no file, so --resume runs it again
        try:
            recorder.append(record)
        except ArtifactWriteError as exc:
            self._stop_writing(recorder, exc)
            return False
        if self.progress is not None:
            records = sum(r.records for r in self.recorders.values())
            failed = sum(r.failed for r in self.recorders.values())
            self.progress.update(records, failed)
        return True

    def _note_reported(self, report: pytest.TestReport, data: Any) -> None:
        """Count the case of a report that must have a record: the call report of an item
        of the configured experiment (known by its node id, whatever its report carries),
        and any report carrying a record (``data``: a marker's test). Setup/teardown reports
        without one, skipped or deselected items and items never run (``-x``) count for
        nothing."""
        experiment = self.state.experiment
        if experiment is not None and (report.when == "call" or data is not None):
            case_id = case_id_of(report.nodeid, experiment.name)
            if (
                case_id is not None
                # Node ids use "/" on every platform: no Path object per report.
                and report.nodeid.partition("::")[0].rpartition("/")[2]
                == experiment.cfg.config_path.name
            ):
                case = experiment.plan.case(case_id)
                if case is not None:
                    self._reported.setdefault(experiment.key, set()).add(case.case_id)
                    return
        if data is None:
            return
        case_id = data.get("case_id") if isinstance(data, dict) else data.case_id
        if isinstance(case_id, str):
            key = str(getattr(report, EXPERIMENT_ATTR, None))
            self._reported.setdefault(key, set()).add(case_id)

    def _stop_writing(self, recorder: RunRecorder, error: ArtifactWriteError) -> None:
        """A record could not be written (disk full...): stop the session once, cleanly.

        Not an INTERNALERROR: the stop reason names the file, the cause and the fix; the
        summary is still written at the session's end with what is on disk.
        """
        from ..run.status import write_stop_reason

        reason = write_stop_reason(error, recorder.location)
        session = self.config.pluginmanager.get_plugin("session")
        if session is not None and not session.shouldstop:
            session.shouldstop = reason
        # Under xdist the controller's loop is xdist's: its own flag stops the workers.
        dsession = self.config.pluginmanager.get_plugin("dsession")
        if dsession is not None and not getattr(dsession, "shouldstop", False):
            dsession.shouldstop = reason

    def _take_record(self, report: pytest.TestReport) -> TraceRecord | None:
        data = getattr(report, RECORD_ATTR, None)
        if data is None:
            return self._crash_record(report)
        # The terminal reporter keeps every report: drop the record so memory stays flat.
        delattr(report, RECORD_ATTR)
        if not isinstance(data, dict):
            return data  # the record object itself, from an item in this process
        from ..records import TraceRecord  # JSON data from an xdist worker

        return TraceRecord.model_validate(data)

    def _crash_record(self, report: pytest.TestReport) -> TraceRecord | None:
        """A ``crashed`` record for a case whose xdist worker died while running it.

        Only for the item xdist blames and :class:`~.xdist.ControllerHooks` kept the blame
        on: an item run again instead is reported as ``rerun`` (not failed), and one that
        already had its record gets no second one.
        """
        experiment = self.state.experiment
        if experiment is None or not report.failed or report.when not in ("???", None):
            return None
        if getattr(report, NO_CRASH_RECORD_ATTR, False):
            return None
        case_id = case_id_of(report.nodeid, experiment.name)
        case = experiment.plan.case(case_id) if case_id is not None else None
        if case is None:
            return None
        from ..engine.record import crashed_record

        setattr(report, EXPERIMENT_ATTR, experiment.key)
        return crashed_record(case, str(report.longrepr), report_worker(report))

    # ------------------------------------------------------------------ the end

    def start_progress(self, total: int) -> None:
        """Start the ``--fluxloop-progress`` bar for ``total`` items."""
        from .progress import ProgressPrinter

        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return

        def write(text: str) -> None:
            reporter.write(text)
            reporter.flush()

        isatty: Any = reporter.isatty
        self.progress = ProgressPrinter(
            total, write=write, is_tty=isatty if isinstance(isatty, bool) else isatty()
        )

    def finish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write each ``summary.json`` atomically with the run's final status; any case that
        reported without a written record turns exit 0/1 into
        :data:`~pytest_fluxloop.run.status.EXIT_MISSING_RECORDS` (2)."""
        if self.progress is not None:
            self.progress.finish()
        state = self.state
        if state.runner is not None:
            state.runner.cancel()
        # -x / --maxfail / a stop request leave selected cases unrun: not "complete". Under
        # xdist the stop is xdist's own, which pytest's session does not see: its shouldstop
        # (a worker's -x) or, when crashed workers may not be replaced (--max-worker-restart),
        # the summary line it keeps for that stop (xdist 3.x has no public flag for it).
        dsession = self.config.pluginmanager.get_plugin("dsession")
        stopped = bool(
            session.shouldstop
            or session.shouldfail
            or getattr(dsession, "shouldstop", False)
            or getattr(dsession, "_summary_report", None)
        )
        self._open_for_lost_records()
        lost = bool(self._lost)
        for key, recorder in self.recorders.items():
            is_main = state.experiment is not None and key == state.experiment.key
            try:
                recorder.finish(
                    int(exitstatus),
                    stopped=stopped,
                    selected=state.selected if is_main else None,
                    reported=self._reported.get(key, ()),
                )
            except ArtifactWriteError as exc:
                # Even the summary can't be written: say so in the terminal summary, and
                # don't let the exit code claim a finished run.
                self._summary_errors[key] = exc
                if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                    session.exitstatus = pytest.ExitCode.INTERRUPTED
            lost = lost or bool(recorder.missing)
            self._write_report(key, recorder)
            outcome = recorder.evaluation_outcome
            if (
                outcome is not None
                and outcome.fails_run
                and session.exitstatus == pytest.ExitCode.OK
            ):
                # Every item passed, but the run is not reliable enough: a failed gate.
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if lost and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # Cases reported a result that is in no file: never a clean exit (run.status).
            from ..run.status import EXIT_MISSING_RECORDS

            session.exitstatus = EXIT_MISSING_RECORDS

    def _write_report(self, key: str, recorder: RunRecorder) -> None:
        """``--fluxloop-report``: the HTML report of a finished experiment (never fails the
        run: a report that cannot be written is said in the terminal summary)."""
        option = self.config.getoption("fluxloop_report", None)
        if option is None or recorder.location is None or recorder.summary is None:
            return
        from ..errors import FluxloopError
        from ..report.html import write_report

        output = None
        if option and len(self.recorders) == 1:
            output = Path(option)
            if not output.is_absolute():
                output = self.config.invocation_params.dir / output
        try:
            self._reports[key] = str(write_report(recorder.location, output, overwrite=True))
        except (FluxloopError, OSError) as exc:
            self._reports[key] = f"not written: {exc}"

    def _open_for_lost_records(self) -> None:
        """Give a recorder to each experiment whose cases reported but none of whose records
        arrived (its summary then lists them); cases of an unknown experiment are kept in
        :attr:`_lost` for the terminal summary."""
        for key, case_ids in self._reported.items():
            if key in self.recorders:
                continue
            experiment = self.state.experiment_by_key(key)
            if experiment is not None:
                try:
                    self.recorder(experiment)
                    continue
                except pytest.UsageError:
                    pass  # no folder for it: say so in the terminal summary
            self._lost[key] = sorted(case_ids)

    def _redact(self, text: str) -> str:
        """``text`` redacted with every experiment's redactor (each knows its config's keys)."""
        for recorder in self.recorders.values():
            text = recorder.experiment.redactor.redact_text(text)
        return text

    def _evaluation_summary(self, terminalreporter: Any, recorder: RunRecorder) -> None:
        """Verdict counts, the reliability table (worst first), gates and alerts."""
        from ..evaluation.reliability import reliability_table

        outcome = recorder.evaluation_outcome
        assert outcome is not None
        block = outcome.block
        verdicts = block.get("verdicts") or {}
        if set(verdicts) - {"none"}:
            counts = ", ".join(f"{n} {k}" for k, n in sorted(verdicts.items()) if k != "none")
            terminalreporter.write_line(f"evaluation: {counts}")
        reliability = block.get("reliability") or {}
        overall = reliability.get("overall") or {}
        repeated = any(g.get("n", 0) > 1 for g in reliability.get("groups") or [])
        if repeated or outcome.gates:
            for line in reliability_table(reliability):
                terminalreporter.write_line(line)
        elif overall.get("excluded"):
            terminalreporter.write_line(f"left out of the figures: {overall['excluded']}")
        for persona, stats in (block.get("by_persona") or {}).items():
            rate = stats.get("success_rate")
            mean = stats.get("mean_score")
            terminalreporter.write_line(
                f"persona {persona}: {stats['passed']} passed, {stats['failed']} failed"
                + (f", success {rate:.0%}" if rate is not None else "")
                + (f", mean score {mean:.2f}" if mean is not None else "")
            )
        for gate in outcome.gates:
            mark = "passed" if gate.passed else "FAILED"
            terminalreporter.write_line(f"gate {mark}: {gate.message}", red=not gate.passed)
        for alert in outcome.alerts:
            if not alert.passed:
                terminalreporter.write_line(f"alert: {alert.message}", yellow=True)
        for line in outcome.notes():
            terminalreporter.write_line(line, yellow=True)
        for line in outcome.messages():
            if line.startswith("--fluxloop-strict-judges"):
                terminalreporter.write_line(line, red=True)

    def terminal_summary(self, terminalreporter: Any) -> None:
        """Print where each experiment's artifacts went (and why writing stopped, if so)."""
        # Every line here is ours and may quote a path or an OS message: redact them all.
        terminalreporter = _RedactingReporter(terminalreporter, self._redact)
        for key, recorder in self.recorders.items():
            summary = recorder.summary
            summary_error = self._summary_errors.get(key)
            if summary is None and summary_error is None:
                continue
            terminalreporter.write_sep("-", "fluxloop")
            if summary is not None:
                terminalreporter.write_line(
                    f"experiment '{summary.experiment_name}' {summary.status}: "
                    f"{summary.total_traces} traces, {summary.successful} successful, "
                    f"{summary.failed} failed, avg {summary.avg_duration_ms:.1f} ms"
                )
            error = recorder.write_error
            if error is not None and summary is not None:
                # The full reason and fix is the session's stop line; this says the outcome.
                terminalreporter.write_line(
                    f"writing stopped ({error.path.name}: {error.reason}); summary.json counts "
                    f"the {summary.total_traces} traces on disk; finish the run with --resume "
                    f"{recorder.location}",
                    red=True,
                )
            if summary_error is not None:
                from ..run.status import summary_failed_reason  # lazily: the plugin stays inert

                reason = summary_failed_reason(summary_error, recorder.location)
                terminalreporter.write_line(reason, red=True)
            if recorder.missing:
                from ..run.status import missing_warning

                warning = missing_warning(
                    recorder.experiment.name, recorder.missing, recorder.location
                )
                terminalreporter.write_line(warning, red=True)
            if recorder.evaluation_outcome is not None and summary is not None:
                self._evaluation_summary(terminalreporter, recorder)
            if recorder.cassettes is not None and summary is not None:
                for number, line in enumerate(recorder.cassettes.lines()):
                    terminalreporter.write_line(line, yellow=number > 0)
            if summary is not None:
                for line in recorder.sink_lines():
                    terminalreporter.write_line(line)
            terminalreporter.write_line(f"results: {recorder.location}")
            if key in self._reports:
                terminalreporter.write_line(f"report: {self._reports[key]}")
        for key, case_ids in self._lost.items():
            from ..run.status import MISSING_IDS_SHOWN

            terminalreporter.write_sep("-", "fluxloop")
            terminalreporter.write_line(
                f"pytest-fluxloop: {len(case_ids)} case(s) reported a result for an experiment "
                f"this process has no results folder for ({key}): their records are in no file "
                f"({', '.join(case_ids[:MISSING_IDS_SHOWN])}"
                f"{', ...' if len(case_ids) > MISSING_IDS_SHOWN else ''})",
                red=True,
            )
