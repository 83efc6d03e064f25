"""Per-pytest-session state: experiments, and on the controller the single artifact writer.

Workers (xdist) run cases and put each record on its test report; only the controller
process writes files, so ``-n 8`` produces the same artifacts as ``-n 0``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import sys
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from .options import config_path, overrides_from_options

if TYPE_CHECKING:
    from ..artifacts.resume import ResumeState
    from ..artifacts.writer import ExperimentWriter
    from ..engine.executor import CaseExecutor
    from ..engine.scheduler import CaseScheduler
    from ..plan.cases import Case
    from ..records import ExperimentSummary
    from ..run.experiment import Experiment
    from .collection import FluxloopItem
    from .progress import ProgressPrinter

SESSION_KEY = pytest.StashKey["FluxloopSession"]()
RECORD_ATTR = "fluxloop_record"
EXPERIMENT_ATTR = "fluxloop_experiment"


class FluxloopWarning(UserWarning):
    """A FluxLoop setting that is accepted but only partly in effect."""


def is_worker(config: pytest.Config) -> bool:
    """True inside a pytest-xdist worker process."""
    return hasattr(config, "workerinput")


@dataclass
class _Sink:
    writer: ExperimentWriter
    experiment_name: str
    summary: ExperimentSummary | None = None


@dataclass(eq=False)  # hashable by identity: it is registered as a plugin object
class FluxloopSession:
    """Everything the plugin keeps for one pytest run (in ``config.stash``)."""

    config: pytest.Config
    experiment: Experiment | None = None
    marker_experiments: dict[tuple[Any, ...], Experiment] = field(default_factory=dict)
    sinks: dict[str, _Sink] = field(default_factory=dict)
    collected: bool = False
    selected: int | None = None
    records_seen: int = 0
    failed_seen: int = 0
    progress: ProgressPrinter | None = None
    scheduler: CaseScheduler | None = None
    resume: ResumeState | None = None
    executor: CaseExecutor | None = None
    item_order: dict[str, int] = field(default_factory=dict)
    session_items: list[pytest.Item] = field(default_factory=list)
    _cwd: str = field(default_factory=os.getcwd)
    _old_sigterm: Any = None
    _seed: int | None = None

    # ------------------------------------------------------------------ setup

    @property
    def xdist_controller(self) -> bool:
        """True in an xdist controller that distributes items to workers."""
        return self.controller and self.config.pluginmanager.hasplugin("dsession")

    @property
    def controller(self) -> bool:
        """True in the process that writes artifacts (not an xdist worker)."""
        return not is_worker(self.config)

    def run_seed(self) -> int:
        """The seed used for ``seed: null``: drawn once by the controller, passed to workers.

        Every xdist worker must collect the same cases in the same order, so a "random"
        order has to be the same random order everywhere.
        """
        if self._seed is None:
            workerinput = getattr(self.config, "workerinput", None)
            if workerinput is not None and "fluxloop_seed" in workerinput:
                self._seed = int(workerinput["fluxloop_seed"])
            else:
                self._seed = secrets.randbits(31)
        return self._seed

    def load_configured(self) -> None:
        """Load the ``--fluxloop-config`` experiment; config problems are usage errors."""
        path = config_path(self.config)
        if path is None:
            return
        resume_dir = self.config.getoption("fluxloop_resume")
        if resume_dir:
            self._read_resume(Path(resume_dir))
        self.experiment = self._load(path, {})
        self.experiment.key = f"config:{path}"
        if self.resume is not None:
            from ..artifacts.resume import ResumeError, check_matches

            try:
                check_matches(self.resume, {case.case_id for case in self.experiment.cases})
            except ResumeError as exc:
                raise pytest.UsageError(f"pytest-fluxloop: --fluxloop-resume: {exc}") from None
        self._install_sigterm()

    def _read_resume(self, directory: Path) -> None:
        from ..artifacts.resume import ResumeError, read_resume_state

        if not directory.is_absolute():
            directory = self.config.invocation_params.dir / directory
        try:
            self.resume = read_resume_state(directory)
        except ResumeError as exc:
            raise pytest.UsageError(f"pytest-fluxloop: --fluxloop-resume: {exc}") from None
        if self.resume.seed is not None and not is_worker(self.config):
            self._seed = self.resume.seed  # seed: null → the order of the run being resumed

    def deselect_done(self, items: list[pytest.Item]) -> None:
        """With ``--fluxloop-resume``: deselect the cases that already have a result."""
        from .collection import FluxloopItem

        if self.resume is None:
            return
        done = [
            i for i in items if isinstance(i, FluxloopItem) and self.resume.is_done(i.case.case_id)
        ]
        if done:
            items[:] = [i for i in items if i not in set(done)]
            self.config.hook.pytest_deselected(items=done)

    def experiment_for_marker(
        self, path_value: str, kwargs: dict[str, Any], test_dir: Path | None = None
    ) -> Experiment:
        """The experiment of a ``@pytest.mark.fluxloop(config=...)`` marker (cached).

        A relative path is taken from the rootdir; if no file is there, from the test
        file's folder (so a project's tests work wherever the rootdir is).
        """
        path = Path(path_value).expanduser()
        if not path.is_absolute():
            candidates = [self.config.rootpath / path]
            if test_dir is not None:
                candidates.append(test_dir / path)
            path = next((c for c in candidates if c.is_file()), candidates[0])
        path = path.resolve()
        key = (str(path), tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key not in self.marker_experiments:
            experiment = self._load(path, kwargs)
            # Its own folder, apart from a --fluxloop-config run of the same file.
            experiment.key = f"marker:{key!r}"
            self.marker_experiments[key] = experiment
        return self.marker_experiments[key]

    def _load(self, path: Path, marker_kwargs: dict[str, Any]) -> Experiment:
        from ..errors import ConfigError
        from ..run.experiment import Experiment

        try:
            overrides = overrides_from_options(self.config, **marker_kwargs)
            experiment = Experiment.load(
                path, overrides, run_seed=self.run_seed(), supervisor_hook=self._supervisor_hook
            )
        except ConfigError as exc:
            raise pytest.UsageError(f"pytest-fluxloop: {exc}") from None
        except (TypeError, ValueError) as exc:  # bad marker keyword arguments
            raise pytest.UsageError(f"pytest-fluxloop: {path}: {exc}") from None
        cases = experiment.plan.cases
        self.config.hook.pytest_fluxloop_modify_cases(config=self.config, cases=cases)
        for notice in experiment.notices:
            warnings.warn(FluxloopWarning(notice), stacklevel=1)
        return experiment

    def _supervisor_hook(self, settings: Any) -> Any:
        return self.config.hook.pytest_fluxloop_supervisor(config=self.config, settings=settings)

    def _install_sigterm(self) -> None:
        # A CI cancel sends SIGTERM: turn it into KeyboardInterrupt so pytest stops cleanly,
        # the session-finish hook runs, and summary.json says "interrupted" (exit code 2).
        if not self.controller or sys.platform == "win32":
            return
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:
            self._old_sigterm = None  # not the main thread (embedded pytest.main)

    # ------------------------------------------------------------------ running

    def prepare(self) -> None:
        """Resolve the target before the first case runs (TargetError → usage error)."""
        from ..errors import ConfigError

        if self.experiment is None or self.config.option.collectonly:
            return
        if self.selected == 0 and not self.xdist_controller:
            return  # every case was deselected: nothing to run, no empty experiment folder
        try:
            from ..engine.scheduler import CaseScheduler

            executor = self.executor = self.experiment.prepare()
            parallel = self.experiment.cfg.simulation.parallel_runs
            self.scheduler = CaseScheduler(executor.run, parallel)
            if self.controller:
                self._open_sink(self.experiment, total=self.selected)
        except ConfigError as exc:
            raise pytest.UsageError(f"pytest-fluxloop: {exc}") from None

    def _open_sink(self, experiment: Experiment, total: int | None = None) -> _Sink:
        from ..sinks.files import open_writer

        key = experiment.key
        sink = self.sinks.get(key)
        if sink is None:
            if self.resume is not None and experiment is self.experiment:
                writer = self._reopen(experiment, total)
            else:
                writer = open_writer(
                    experiment,
                    total_cases=total,
                    extra_metadata={"pytest_args": list(self.config.invocation_params.args)},
                )
            sink = _Sink(writer, experiment.name)
            self.sinks[key] = sink
        return sink

    def remember_items(self, items: list[pytest.Item]) -> None:
        """Keep the run order, so cases can be scheduled ahead of their items."""
        from .collection import FluxloopItem

        self.session_items = items
        self.item_order = {
            item.nodeid: index for index, item in enumerate(items) if isinstance(item, FluxloopItem)
        }

    def upcoming(self, item: FluxloopItem) -> list[Case]:
        """Cases of the next items this process will run (at most parallel_runs - 1)."""
        from .collection import FluxloopItem

        want = (self.scheduler.parallel_runs - 1) if self.scheduler else 0
        if want <= 0:
            return []
        indices: Iterable[int]
        if is_worker(self.config):
            indices = _xdist_queue(self.config, limit=want * 4)
        else:
            start = self.item_order.get(item.nodeid, len(self.session_items)) + 1
            indices = range(start, len(self.session_items))  # lazy: only the window is read
        cases: list[Case] = []
        for index in indices:
            candidate = self.session_items[index] if index < len(self.session_items) else None
            if isinstance(candidate, FluxloopItem):
                cases.append(candidate.case)
                if len(cases) == want:
                    break
        return cases

    def _reopen(self, experiment: Experiment, remaining: int | None) -> ExperimentWriter:
        from ..artifacts.resume import reopen_writer

        assert self.resume is not None
        sim = experiment.cfg.simulation
        todo = remaining if remaining is not None else experiment.plan.total
        return reopen_writer(
            self.resume,
            experiment_name=experiment.name,
            description=sim.description,
            config_snapshot=experiment.cfg.snapshot(),
            total_cases=len(self.resume.done) + todo,
            save_traces=sim.save_traces,
            save_aggregated_metrics=sim.save_aggregated_metrics,
        )

    def start_progress(self, total: int) -> None:
        """Start the ``--fluxloop-progress`` bar for ``total`` items."""
        from .progress import ProgressPrinter

        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        self.progress = ProgressPrinter(
            total,
            write=lambda text: (reporter.write(text), reporter.flush()),  # type: ignore[func-returns-value]
            is_tty=reporter.isatty if isinstance(reporter.isatty, bool) else reporter.isatty(),
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Controller: append the record to the artifacts as soon as its item reports."""
        self.on_report(report)

    def on_report(self, report: pytest.TestReport) -> None:
        """Controller: append the record carried by ``report`` and update progress."""
        if not self.controller:
            return
        data = getattr(report, RECORD_ATTR, None)
        if data is None:
            data = self._crash_record(report)
            if data is None:
                return
        else:
            # The terminal reporter keeps every report: drop the record so memory stays flat.
            delattr(report, RECORD_ATTR)
        from ..errors import ConfigError
        from ..records import TraceRecord

        record = data if isinstance(data, TraceRecord) else TraceRecord.model_validate(data)
        experiment_key = getattr(report, EXPERIMENT_ATTR, None)
        sink = self.sinks.get(str(experiment_key))
        if sink is None:
            experiment = self._experiment_by_key(str(experiment_key))
            if experiment is None:
                return
            try:
                sink = self._open_sink(experiment)
            except ConfigError as exc:
                raise pytest.UsageError(f"pytest-fluxloop: {exc}") from None
        sink.writer.append(record)
        self.records_seen += 1
        self.failed_seen += 0 if record.success and record.test_outcome != "failed" else 1
        if self.progress is not None:
            self.progress.update(self.records_seen, self.failed_seen)
        self.config.hook.pytest_fluxloop_record_written(
            config=self.config, record=record, experiment_dir=sink.writer.path
        )

    def _crash_record(self, report: pytest.TestReport) -> dict[str, Any] | None:
        """A ``crashed`` record for a case whose xdist worker died while running it."""
        experiment = self.experiment
        if experiment is None or not report.failed or report.when not in ("???", None):
            return None
        prefix = f"::{experiment.name}["
        _, sep, rest = report.nodeid.partition(prefix)
        case = experiment.plan.case(rest[:-1]) if sep and rest.endswith("]") else None
        if case is None:
            return None
        from ..records import ErrorInfo, TraceRecord, utcnow

        now = utcnow()
        record = TraceRecord(
            trace_id=uuid.uuid4().hex,
            case_id=case.case_id,
            iteration=case.iteration,
            persona=case.persona,
            persona_description=case.persona_description,
            input=case.input,
            input_index=case.input_index,
            duration_ms=0.0,
            success=False,
            status="crashed",
            error=ErrorInfo(
                kind="infrastructure", type="WorkerCrashed", message=str(report.longrepr)
            ),
            seed=case.seed,
            started_at=now,
            completed_at=now,
            metadata=dict(case.metadata),
            test_outcome="failed",
            worker=_worker_id(report),
        )
        setattr(report, EXPERIMENT_ATTR, experiment.key)
        return record.model_dump(mode="json")

    def _experiment_by_key(self, key: str) -> Experiment | None:
        candidates = [self.experiment, *self.marker_experiments.values()]
        return next((e for e in candidates if e is not None and e.key == key), None)

    def finish(self, exitstatus: int, interrupted: bool) -> None:
        """Controller: write each ``summary.json`` atomically with the run's final status."""
        if self.progress is not None:
            self.progress.finish()
        if self.scheduler is not None:
            self.scheduler.cancel_pending()  # -x, Ctrl-C, SIGTERM: nothing more starts
        executor = self.executor
        main_key = self.experiment.key if self.experiment else None
        for key, sink in self.sinks.items():
            if key == main_key and self.selected is not None:
                done = len(self.resume.done) if self.resume else 0
                sink.writer.total_cases = done + self.selected  # known late under xdist
            if key == main_key and executor is not None:
                sink.writer.leaked_threads = executor.leaked_threads
            if exitstatus in (0, 1) and not interrupted:
                status = "complete"
            elif exitstatus == 2 or interrupted:
                status = "interrupted"
            else:
                status = "failed"
            sink.summary = sink.writer.finish(status, exit_code=int(exitstatus))
            self.config.hook.pytest_fluxloop_experiment_finished(
                config=self.config, summary=sink.summary, experiment_dir=sink.writer.path
            )

    def restore(self) -> None:
        """Undo process-wide changes (cwd, SIGTERM handler) at unconfigure."""
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        with contextlib.suppress(OSError):
            os.chdir(self._cwd)


def _worker_id(report: pytest.TestReport) -> str | None:
    gateway = getattr(getattr(report, "node", None), "gateway", None)
    return getattr(gateway, "id", None)


def _xdist_queue(config: pytest.Config, limit: int) -> list[int]:
    """Indices of the items an xdist worker will run next (its own queue, in order).

    Reads pytest-xdist's WorkerInteractor; only the head of the queue is used, so cases
    that worksteal may move to another worker are rarely run ahead. Empty if unavailable.
    """
    for plugin in config.pluginmanager.get_plugins():
        torun = getattr(plugin, "torun", None)
        if torun is None or not hasattr(plugin, "nextitem_index"):
            continue
        with torun.lock() as pending:
            queued = [i for i in itertools.islice(pending, limit) if isinstance(i, int)]
        head = plugin.nextitem_index
        return ([head] if isinstance(head, int) else []) + queued
    return []


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")
