"""``@pytest.mark.fluxloop`` tests under xdist write their records like a ``-n 0`` run.

The xdist controller collects nothing, so it learns of a marker experiment only from a
worker's record; it loads the experiment from the record's key (the config's place in the
project and the marker's arguments) and writes the record there.
"""

from __future__ import annotations

import pytest
from support.plugin_helpers import Project

pytest.importorskip("xdist")

pytestmark = pytest.mark.slow

TEST_FILE = """\
import pytest

@pytest.mark.fluxloop(config="configs/simulation.yaml", iterations=2)
def test_agent(fluxloop_result):
    assert fluxloop_result.success
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_marker_records_are_written_under_xdist(project: Project, workers: str) -> None:
    project.setup()
    project.write("test_marker.py", TEST_FILE)
    result = project.pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", workers)
    # 3 inputs × 2 iterations; the crashing input fails in the fixture (an error, as with -n 0)
    result.assert_outcomes(passed=4, errors=2)
    assert result.ret == 1  # failed cases only: nothing is missing
    exp = project.only_experiment()
    rows = project.jsonl(exp / "trace_summary.jsonl")
    assert len(rows) == 6
    summary = project.summary(exp)
    assert (summary["total_traces"], summary["status"], summary["missing_cases"]) == (
        6,
        "complete",
        0,
    )
