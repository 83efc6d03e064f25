"""The controller: the one process that writes results (not an xdist worker).

Records reach it on test reports, from items run in this process or by xdist workers; it
hands each to the :class:`~pytest_fluxloop.run.recorder.RunRecorder` of its experiment
(one per experiment: the configured one and each marker's), updates the progress bar, and
at session finish lets each recorder write its summary with the run's final status.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .keys import EXPERIMENT_ATTR, RECORD_ATTR
from .nodeids import case_id_of
from .usage import usage_errors
from .xdist import report_worker

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
        self.config.hook.pytest_fluxloop_record_written(
            config=self.config, record=record, experiment_dir=location
        )

    def experiment_finished(self, summary: ExperimentSummary, location: Path | None) -> None:
        self.config.hook.pytest_fluxloop_experiment_finished(
            config=self.config, summary=summary, experiment_dir=location
        )


class Controller:
    """Receives every record of the session and owns the recorders (registered as a plugin)."""

    def __init__(self, state: PluginState) -> None:
        self.state = state
        self.config = state.config
        self.recorders: dict[str, RunRecorder] = {}
        self.progress: ProgressPrinter | None = None
        self._listener = _HookListener(self.config)

    def recorder(self, experiment: Experiment, total_cases: int | None = None) -> RunRecorder:
        """The opened recorder of ``experiment`` (created on first use; usage error if the
        output folder can't be made)."""
        from ..run.recorder import RunRecorder

        recorder = self.recorders.get(experiment.key)
        if recorder is None:
            state = self.state
            resume = state.resume if experiment is state.experiment else None
            recorder = RunRecorder.for_experiment(
                experiment,
                resume=resume,
                listener=self._listener,
                extra_metadata={"pytest_args": list(self.config.invocation_params.args)},
            )
            with usage_errors():
                recorder.open(total_cases)
            self.recorders[experiment.key] = recorder
        return recorder

    # ------------------------------------------------------------------ records

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Append the record carried by ``report`` as soon as its item reports."""
        record = self._take_record(report)
        if record is None:
            return
        experiment = self.state.experiment_by_key(str(getattr(report, EXPERIMENT_ATTR, None)))
        if experiment is None:
            return
        self.recorder(experiment).append(record)
        if self.progress is not None:
            records = sum(r.records for r in self.recorders.values())
            failed = sum(r.failed for r in self.recorders.values())
            self.progress.update(records, failed)

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
        """A ``crashed`` record for a case whose xdist worker died while running it."""
        experiment = self.state.experiment
        if experiment is None or not report.failed or report.when not in ("???", None):
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
        """Write each ``summary.json`` atomically with the run's final status."""
        if self.progress is not None:
            self.progress.finish()
        state = self.state
        if state.runner is not None:
            state.runner.cancel()
        # -x / --maxfail / a stop request leave selected cases unrun: not "complete".
        stopped = bool(session.shouldstop or session.shouldfail)
        for key, recorder in self.recorders.items():
            is_main = state.experiment is not None and key == state.experiment.key
            recorder.finish(
                int(exitstatus),
                stopped=stopped,
                selected=state.selected if is_main else None,
            )

    def terminal_summary(self, terminalreporter: Any) -> None:
        """Print where each experiment's artifacts went."""
        for recorder in self.recorders.values():
            summary = recorder.summary
            if summary is None:
                continue
            terminalreporter.write_sep("-", "fluxloop")
            terminalreporter.write_line(
                f"experiment '{summary.experiment_name}' {summary.status}: "
                f"{summary.total_traces} traces, {summary.successful} successful, "
                f"{summary.failed} failed, avg {summary.avg_duration_ms:.1f} ms"
            )
            terminalreporter.write_line(f"results: {recorder.location}")
