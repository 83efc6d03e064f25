"""pytest-xdist: workers run cases, the controller alone writes one experiment directory."""

from __future__ import annotations

import pytest
from support.plugin_helpers import Project

pytest.importorskip("xdist")

# xdist inside pytester: 3-6 s each.
pytestmark = pytest.mark.slow

INPUTS = "generated_inputs:\n" + "".join(
    f"  - input: 'question {i}'\n    persona: {'crash' if i == 3 else 'p'}{i % 2}\n"
    for i in range(6)
)
AGENT = """\
import os
import fluxloop

@fluxloop.agent()
def run(input_text, persona=None):
    if persona.startswith("crash"):
        raise ValueError("boom")
    return {"answer": input_text, "pid": os.getpid()}
"""


def _case_ids(project: Project, output: str) -> list[str]:
    exp = project.only_experiment(output)
    return sorted(t["case_id"] for t in project.jsonl(exp / "traces.jsonl"))


@pytest.mark.parametrize("seed", ["42", "null"])
def test_n2_writes_the_same_cases_as_n0(project: Project, seed: str) -> None:
    project.setup(inputs=INPUTS, agent=AGENT, iterations=2, extra="")
    cfg = project.root / "configs" / "simulation.yaml"
    cfg.write_text(cfg.read_text().replace("seed: 42", f"seed: {seed}"))
    base = ("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    serial = project.pytester.runpytest_subprocess(*base, "--fluxloop-output-dir", "serial")
    serial.assert_outcomes(passed=10, failed=2)
    parallel = project.pytester.runpytest_subprocess(
        *base, "-n", "2", "--fluxloop-output-dir", "parallel"
    )
    parallel.assert_outcomes(passed=10, failed=2)
    assert _case_ids(project, "serial") == _case_ids(project, "parallel")
    exp = project.only_experiment("parallel")
    traces = project.jsonl(exp / "traces.jsonl")
    assert {t["worker"] for t in traces} == {"gw0", "gw1"}
    summary = project.summary(exp)
    assert (summary["total_traces"], summary["failed"], summary["status"]) == (12, 2, "complete")
    # Workers never write artifacts: exactly one experiment folder per run.
    assert len(project.experiments("parallel")) == 1


def test_worksteal_distribution(project: Project) -> None:
    project.setup(inputs=INPUTS, agent=AGENT)
    result = project.pytester.runpytest_subprocess(
        "--fluxloop-config",
        project.config,
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--dist",
        "worksteal",
    )
    result.assert_outcomes(passed=5, failed=1)
    assert len(project.jsonl(project.only_experiment() / "traces.jsonl")) == 6
