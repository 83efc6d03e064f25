"""The pytest plugin (entry point ``fluxloop``): options, markers, fixtures and hooks.

Inert unless asked: this module imports only pytest and small local modules; the engine,
pydantic models and artifact writers load only when an experiment is configured or a
fluxloop marker/fixture is used, and no file is created otherwise.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs, marker, options
from .collection import EXPERIMENT_KEY, RESULT_KEY, FluxloopFile, FluxloopItem
from .marker import fluxloop_case, fluxloop_result
from .state import EXPERIMENT_ATTR, RECORD_ATTR, SESSION_KEY, FluxloopSession, is_worker

__all__ = ["fluxloop_case", "fluxloop_result"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register pytest-fluxloop's own hook specifications."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--fluxloop-*`` options and the ``fluxloop_config`` ini key."""
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Under ``-n`` without ``--dist``, schedule an experiment with xdist's ``worksteal``.

    xdist's default ``load`` mode feeds each worker 2-4 items at a time, too few for
    ``parallel_runs`` to schedule ahead; worksteal hands each worker its share up front
    (and rebalances), which also suits agents whose latencies vary. Runs before xdist sets
    its own default.
    """
    wants_experiment = config.getoption("fluxloop_config") or config.getini("fluxloop_config")
    numprocesses = getattr(config.option, "numprocesses", None)
    if wants_experiment and numprocesses and getattr(config.option, "dist", None) == "no":
        config.option.dist = "worksteal"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; load the configured experiment (usage error if invalid)."""
    config.addinivalue_line("markers", marker.MARKER_HELP)
    state = FluxloopSession(config)
    config.stash[SESSION_KEY] = state
    state.load_configured()
    # The state object receives pytest_runtest_logreport itself (that hook gets no config).
    config.pluginmanager.register(state, "fluxloop-session")
    if config.pluginmanager.hasplugin("xdist") and not is_worker(config):
        config.pluginmanager.register(_XdistHooks(state), "fluxloop-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the working directory and signal handlers."""
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        state.restore()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> FluxloopFile | None:
    """Collect the configured simulation.yaml as the experiment's collector."""
    state = parent.config.stash[SESSION_KEY]
    experiment = state.experiment
    if experiment is None or state.collected or file_path != experiment.cfg.config_path:
        return None
    state.collected = True
    return FluxloopFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add the experiment's items when its config file was outside the collected paths."""
    state = config.stash[SESSION_KEY]
    if state.experiment is None:
        return
    if not state.collected:
        state.collected = True
        node = FluxloopFile.from_parent(session, path=state.experiment.cfg.config_path)
        items.extend(session.genitems(node))
    state.deselect_done(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember how many fluxloop cases were selected (after -k / --lf / deselection)."""
    state = session.config.stash[SESSION_KEY]
    if not state.xdist_controller:  # the xdist controller collects nothing itself
        state.selected = sum(isinstance(item, FluxloopItem) for item in session.items)
        state.remember_items(session.items)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize tests marked ``@pytest.mark.fluxloop(config=...)`` over the cases."""
    marker.generate_tests(metafunc)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Resolve the target and open the artifact writer before the first case runs."""
    state = session.config.stash[SESSION_KEY]
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return  # pytest stops for the collection errors; don't open an empty experiment
    state.prepare()
    config = session.config
    wants_progress = config.getoption("fluxloop_progress") and not config.option.collectonly
    if state.experiment is not None and wants_progress and state.controller:
        known = state.selected is not None and not state.xdist_controller
        state.start_progress(state.selected if known else state.experiment.plan.total)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Put the case's trace record on the report, so it reaches the controller (xdist too)."""
    report = yield
    result = item.stash.get(RESULT_KEY, None)
    if result is None or (call.when != "call" and not (call.when == "setup" and report.failed)):
        return report
    del item.stash[RESULT_KEY]  # attach once
    record = result.record
    record.test_outcome = "failed" if report.failed else ("skipped" if report.skipped else "passed")
    record.worker = getattr(item.config, "workerinput", {}).get("workerid")
    # The record object itself; it becomes JSON only if xdist serialises the report.
    setattr(report, RECORD_ATTR, record)
    setattr(report, EXPERIMENT_ATTR, item.stash.get(EXPERIMENT_KEY, ""))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(
    config: pytest.Config, report: pytest.TestReport
) -> Generator[None, dict[str, Any] | None, dict[str, Any] | None]:
    """Send the trace record to the xdist controller as plain JSON data."""
    data = yield
    record = getattr(report, RECORD_ATTR, None)
    if data is not None and record is not None and not isinstance(record, dict):
        data[RECORD_ATTR] = record.model_dump(mode="json")
    return data


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    """With ``--fluxloop-progress`` the bar replaces per-case progress characters."""
    if not config.getoption("fluxloop_progress") or getattr(report, RECORD_ATTR, None) is None:
        return None
    return report.outcome, "", report.outcome.upper()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Controller: write summary.json with the final status."""
    state = session.config.stash.get(SESSION_KEY, None)
    if state is not None and state.controller:
        # -x / --maxfail / a stop request leave selected cases unrun: not "complete".
        stopped = bool(session.shouldstop or session.shouldfail)
        unfinished = state.selected is not None and state.records_seen < state.selected
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or (stopped and unfinished)
        state.finish(int(exitstatus), interrupted)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print where each experiment's artifacts went."""
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    for sink in state.sinks.values():
        summary = sink.summary
        if summary is None:
            continue
        terminalreporter.write_sep("-", "fluxloop")
        terminalreporter.write_line(
            f"experiment '{summary.experiment_name}' {summary.status}: "
            f"{summary.total_traces} traces, {summary.successful} successful, "
            f"{summary.failed} failed, avg {summary.avg_duration_ms:.1f} ms"
        )
        terminalreporter.write_line(f"results: {sink.writer.path}")


class _XdistHooks:
    """Controller-side xdist hooks, registered only when pytest-xdist is active."""

    def __init__(self, state: FluxloopSession) -> None:
        self.state = state

    def pytest_configure_node(self, node: Any) -> None:
        """Send the run seed to each worker so ``seed: null`` orders cases identically."""
        node.workerinput["fluxloop_seed"] = self.state.run_seed()

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Count the selected cases from a worker's collection (all workers agree)."""
        experiment = self.state.experiment
        if experiment is not None:
            marker = f"::{experiment.name}["
            self.state.selected = sum(marker in nodeid for nodeid in ids)
