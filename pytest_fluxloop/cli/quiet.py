"""pytest plugin behind ``fluxloop run experiment --no-display``: no live progress output.

``--display`` (the default) asks the FluxLoop plugin for its progress bar, which also
replaces pytest's per-test characters. ``--no-display`` wants neither: the run prints only
what comes at its end (failures, the FluxLoop section, pytest's count line, the CLI's
summary). The CLI loads this module with ``-p pytest_fluxloop.cli.quiet`` (see
``build_pytest_args``), so the pytest command line shown by ``--dry-run`` reproduces the run
exactly. pytest imports it only when it is named there; ``fluxloop --help`` never does.

PYTEST_DONT_REWRITE: a plugin module with no assertions to rewrite.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

TestStatus = tuple[str, str, Any]


@pytest.hookimpl(wrapper=True)
def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> Generator[None, TestStatus | None, TestStatus | None]:
    """Keep each report's category and word, drop its progress character (``.``/``F``...).

    The category still feeds pytest's closing count line. Per-test lines asked for
    explicitly stay: verbosity above normal (``-- -vv``, as the CLI passes ``-q`` itself).
    """
    status = yield
    if status is None or config.get_verbosity() > 0:
        return status
    category, _letter, word = status
    return category, "", word
