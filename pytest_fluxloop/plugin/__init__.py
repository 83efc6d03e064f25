"""The pytest plugin (entry point ``fluxloop``): options, markers, fixtures and hooks.

Inert unless asked: this module imports only pytest and small local modules; the engine,
pydantic models and artifact writers load only when an experiment is configured or a
fluxloop marker/fixture is used, and no file is created otherwise.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs, marker, options, report_hooks
from .collection import FluxloopFile, FluxloopItem
from .keys import STATE_KEY
from .legacy_runner import fluxloop_cli, fluxloop_runner, fluxloop_runner_multi_turn
from .marker import fluxloop_case, fluxloop_result
from .state import PluginState
from .usage import usage_errors
from .xdist import (
    ControllerHooks,
    is_distributing,
    plan_digest,
    prefer_worksteal,
)

__all__ = [
    "fluxloop_case",
    "fluxloop_cli",
    "fluxloop_result",
    "fluxloop_runner",
    "fluxloop_runner_multi_turn",
]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register pytest-fluxloop's own hook specifications."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--fluxloop-*`` options and the ``fluxloop_config`` ini key."""
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Under ``-n`` without ``--dist``, run an experiment with xdist's ``worksteal``."""
    if config.getoption("fluxloop_config") or config.getini("fluxloop_config"):
        prefer_worksteal(config)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; load the configured experiment (usage error if invalid)."""
    config.addinivalue_line("markers", marker.MARKER_HELP)
    state = PluginState(config)
    config.stash[STATE_KEY] = state
    state.load_configured()
    if state.experiment is not None:
        report_hooks.activate(config)
    if config.getoption("fluxloop_progress"):
        config.pluginmanager.register(report_hooks.ProgressHooks(), report_hooks.PROGRESS_NAME)
    if state.is_controller:
        from .controller import Controller

        state.controller = Controller(state)
        # The controller receives pytest_runtest_logreport itself (that hook gets no config).
        config.pluginmanager.register(state.controller, "fluxloop-controller")
        if config.pluginmanager.hasplugin("xdist"):
            experiment = state.experiment
            hooks = ControllerHooks(
                state.seed,
                experiment.name if experiment is not None else None,
                on_selected=lambda count: setattr(state, "selected", count),
                config=config,
                config_path=experiment.cfg.config_path if experiment is not None else None,
                plan=plan_digest(experiment.name, (c.case_id for c in experiment.cases))
                if experiment is not None
                else None,
            )
            config.pluginmanager.register(hooks, "fluxloop-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the working directory and signal handlers."""
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        state.guard.restore()
        if state.frozen:
            gc.unfreeze()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> FluxloopFile | None:
    """Collect the configured simulation.yaml as the experiment's collector."""
    state = parent.config.stash[STATE_KEY]
    experiment = state.experiment
    if experiment is None or state.collected or file_path != experiment.cfg.config_path:
        return None
    state.collected = True
    return FluxloopFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add the experiment's items when its config file was outside the collected paths;
    with ``--fluxloop-resume``, deselect the cases that already have a result."""
    state = config.stash[STATE_KEY]
    if state.experiment is None:
        return
    if not state.collected:
        state.collected = True
        node = FluxloopFile.from_parent(session, path=state.experiment.cfg.config_path)
        items.extend(session.genitems(node))
    resume = state.resume
    if resume is not None:
        done = [i for i in items if isinstance(i, FluxloopItem) and resume.is_done(i.case.case_id)]
        if done:
            skip = set(done)
            items[:] = [i for i in items if i not in skip]
            config.hook.pytest_deselected(items=done)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember how many fluxloop cases were selected (after -k / --lf / deselection)."""
    state = session.config.stash[STATE_KEY]
    if not is_distributing(session.config):  # the xdist controller collects nothing itself
        state.selected = sum(isinstance(item, FluxloopItem) for item in session.items)
    if state.experiment is not None and not state.frozen:
        # The collected items and cases live until the session ends: move them out of the
        # cycle collector's reach, or every full collection walks tens of thousands of
        # them again (~7 % of a 20,000-case run). Freed by refcount as usual; undone at
        # unconfigure.
        gc.freeze()
        state.frozen = True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize tests marked ``@pytest.mark.fluxloop(config=...)`` over the cases."""
    marker.generate_tests(metafunc)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Resolve the target and open the artifact writer before the first case runs."""
    config = session.config
    state = config.stash[STATE_KEY]
    experiment = state.experiment
    if experiment is None:
        return
    if session.testsfailed and not config.option.continue_on_collection_errors:
        return  # pytest stops for the collection errors; don't open an empty experiment
    collect_only = config.option.collectonly
    distributing = is_distributing(config)
    # Every case deselected: nothing to run, and no empty experiment folder.
    if not collect_only and (state.selected != 0 or distributing):
        from .runner import CaseRunner

        with usage_errors():
            state.runner = CaseRunner(config, experiment, session.items)
            if state.controller is not None:
                state.controller.recorder(experiment, total_cases=state.selected)
    controller = state.controller
    if controller is not None and config.getoption("fluxloop_progress") and not collect_only:
        known = state.selected is not None and not distributing
        controller.start_progress(
            state.selected if known and state.selected is not None else experiment.plan.total
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Exit 4 after a fatal configuration stop; controller: write summary.json with the
    final status."""
    state = session.config.stash.get(STATE_KEY, None)
    experiment = state.experiment if state is not None else None
    reason = _fatal_config_stop(session, exitstatus) if experiment is not None else None
    if reason is not None:
        if not (session.shouldstop or session.shouldfail):
            # Under xdist the worker's stop reaches only xdist's scheduler: say it here too,
            # so the summary counts the run as stopped early like without xdist.
            session.shouldstop = reason
        # A bad key, no quota or an unknown model is a configuration error every case would
        # hit, not a failed case: exit 4 like any other configuration error (pytest reads
        # session.exitstatus back after this hook).
        exitstatus = session.exitstatus = pytest.ExitCode.USAGE_ERROR
    if state is not None and state.controller is not None:
        state.controller.finish(session, exitstatus)
    elif state is not None and state.runner is not None:
        state.runner.cancel()  # a worker: nothing scheduled ahead starts any more


def _fatal_config_stop(session: pytest.Session, exitstatus: int) -> str | None:
    """The stop reason when the session stopped on a fatal configuration error of a case
    (set by ``keep_result``) and pytest is about to call that a failed or interrupted run.

    Without xdist it is the session's ``shouldfail``; under xdist a worker's reason reaches
    the controller only as xdist's own ``shouldstop`` (then pytest exits 2, "interrupted").
    """
    if exitstatus not in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED):
        return None  # a real usage or internal error, or a clean run: leave it
    from ..run.status import is_fatal_stop

    dsession = session.config.pluginmanager.get_plugin("dsession")
    for reason in (session.shouldfail, session.shouldstop, getattr(dsession, "shouldstop", None)):
        if is_fatal_stop(reason):
            return str(reason)
    return None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print where each experiment's artifacts went."""
    state = config.stash.get(STATE_KEY, None)
    if state is not None and state.controller is not None:
        state.controller.terminal_summary(terminalreporter)
