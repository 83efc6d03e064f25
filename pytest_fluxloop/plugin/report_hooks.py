"""The per-report hooks, registered only when a run has records to carry.

A suite that uses no experiment and no fluxloop marker pays nothing per item: these hooks
are registered when an experiment is configured, or when the first marker test stashes a
result (:func:`activate`, called by ``keep_result`` before its item's report is made).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .keys import EXPERIMENT_ATTR, EXPERIMENT_KEY, RECORD_ATTR, RESULT_KEY
from .xdist import worker_id

NAME = "fluxloop-reports"
ITEM_DOMAIN = "fluxloop case "
"""How an experiment item's report location starts (``FluxloopItem.reportinfo``)."""
PROGRESS_NAME = "fluxloop-progress"


class ReportHooks:
    """Put each finished case's trace record on its item's report (xdist included)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.reporter: Any = None  # registered after this plugin: looked up on first use

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Put the case's trace record on the report, so it reaches the controller."""
        report = yield
        result = item.stash.get(RESULT_KEY, None)
        if result is None or (call.when != "call" and not (call.when == "setup" and report.failed)):
            return report
        del item.stash[RESULT_KEY]  # attach once
        record = result.record
        record.test_outcome = (
            "failed" if report.failed else ("skipped" if report.skipped else "passed")
        )
        record.worker = worker_id(item.config)
        # The record object itself; it becomes JSON only if xdist serialises the report.
        setattr(report, RECORD_ATTR, record)
        setattr(report, EXPERIMENT_ATTR, item.stash.get(EXPERIMENT_KEY, ""))
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Let the terminal reporter forget an experiment item's passed setup and teardown.

        It keeps every report of the session (``stats[""]`` for these two), about 2 KB per
        case that nothing reads again when nothing was captured; at 50,000 cases that is a
        third of the process's memory. The call report, which the counts and summaries use,
        stays. Reports with captured output stay too (``-rP`` prints a teardown's).
        """
        if report.when == "call" or not report.passed or report.sections:
            return
        location = report.location
        if not (location and str(location[2]).startswith(ITEM_DOMAIN)):
            return
        reporter = self.reporter
        if reporter is None:
            reporter = self.reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is None:
                return
        kept = reporter.stats.get("")
        if kept and kept[-1] is report:
            kept.pop()

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(
        self, config: pytest.Config, report: pytest.TestReport
    ) -> Generator[None, dict[str, Any] | None, dict[str, Any] | None]:
        """Send the trace record to the xdist controller as plain JSON data."""
        data = yield
        record = getattr(report, RECORD_ATTR, None)
        if data is not None and record is not None and not isinstance(record, dict):
            data[RECORD_ATTR] = record.model_dump(mode="json")
        return data


class ProgressHooks:
    """With ``--fluxloop-progress`` the bar replaces per-case progress characters."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport, config: pytest.Config
    ) -> tuple[str, str, str] | None:
        """No progress character for a report that carries a record."""
        if getattr(report, RECORD_ATTR, None) is None:
            return None
        return report.outcome, "", report.outcome.upper()


def activate(config: pytest.Config) -> None:
    """Register :class:`ReportHooks` (idempotent)."""
    manager = config.pluginmanager
    if not manager.has_plugin(NAME):
        manager.register(ReportHooks(config), NAME)
