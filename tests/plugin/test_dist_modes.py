"""Every xdist distribution mode writes the same experiment as a run without xdist.

``--dist load``, ``loadscope``, ``loadgroup``, ``worksteal`` and ``-n auto`` only change which
worker runs which case; the artifacts (one record per case, with the same input, persona,
iteration, output and outcome) must be exactly those of ``-n 0``.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.plugin_helpers import Project

pytest.importorskip("xdist")

pytestmark = pytest.mark.slow

INPUTS = "generated_inputs:\n" + "".join(
    f"  - input: 'question {i}'\n    persona: {'crash' if i == 4 else 'p'}{i % 3}\n"
    for i in range(7)
)
AGENT = """\
import fluxloop

@fluxloop.agent()
def run(input_text, persona=None, iteration=0):
    if persona.startswith("crash"):
        raise ValueError("boom")
    return f"{persona}/{iteration}: {input_text}"
"""

# What a case's record says about the case, not about where or when it ran.
FIELDS = ("case_id", "input", "persona", "iteration", "output", "success", "status", "error_kind")


def _rows(project: Project, output: str) -> list[dict[str, Any]]:
    exp = project.only_experiment(output)
    rows = project.jsonl(exp / "trace_summary.jsonl")
    return sorted(({k: r.get(k) for k in FIELDS} for r in rows), key=lambda r: r["case_id"])


@pytest.mark.parametrize(
    "dist",
    [
        ("-n", "2", "--dist", "load"),
        ("-n", "2", "--dist", "loadscope"),
        ("-n", "2", "--dist", "loadgroup"),
        ("-n", "2", "--dist", "worksteal"),
        ("-n", "auto"),
    ],
    ids=["load", "loadscope", "loadgroup", "worksteal", "auto"],
)
def test_distribution_modes_match_a_serial_run(project: Project, dist: tuple[str, ...]) -> None:
    project.setup(inputs=INPUTS, agent=AGENT, iterations=2)
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    serial = project.pytester.runpytest_subprocess(*base, "--fluxloop-output-dir", "serial")
    serial.assert_outcomes(passed=12, failed=2)
    spread = project.pytester.runpytest_subprocess(*base, *dist, "--fluxloop-output-dir", "spread")
    spread.assert_outcomes(passed=12, failed=2)
    assert _rows(project, "spread") == _rows(project, "serial")
    summary = project.summary(project.only_experiment("spread"))
    assert (summary["total_traces"], summary["failed"], summary["status"]) == (14, 2, "complete")
