"""The seed documents' own example, run as a new user would: CLI and pytest, artifacts read back.

Config: seeds/000 "Complete Example" (verbatim values). Inputs: seeds/001 ``generated_inputs``.
Agent: seeds/001 ``@fluxloop.agent() def run(input_text)`` at ``examples/simple_agent.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli_helpers import clean_env, run_cli
from support.config_helpers import COMPLETE_EXAMPLE as SEED_000_COMPLETE_EXAMPLE

SEED_001_INPUTS = """\
generated_inputs:
  - input: "How do I start?"
    persona: novice_user
  - input: "What are advanced options?"
    persona: expert_user
"""

SEED_001_AGENT = """\
import fluxloop


def process(text):
    return f"Answer: {text}"


@fluxloop.agent()
def run(input_text: str) -> str:
    return process(input_text)
"""

# seeds/001 "How It Works" shows this older shape: runner.iterations and an output block.
SEED_001_CONFIG = """\
name: how_it_works
description: seeds/001 config shape
runner:
  target: "examples.my_agent:run"
  iterations: 3
output:
  directory: "experiments"
  format: jsonl
"""


def _project(root: Path, config: str, module: str) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "inputs").mkdir()
    (root / "examples").mkdir()
    (root / "configs" / "simulation.yaml").write_text(config, encoding="utf-8")
    (root / "inputs" / "generated.yaml").write_text(SEED_001_INPUTS, encoding="utf-8")
    (root / "examples" / f"{module}.py").write_text(SEED_001_AGENT, encoding="utf-8")
    return root


def _check_artifacts(exp: Path, expected_traces: int, name: str) -> None:
    summary = json.loads((exp / "summary.json").read_text(encoding="utf-8"))
    for key in (
        "experiment_name",
        "total_traces",
        "successful",
        "failed",
        "avg_duration_ms",
        "started_at",
        "completed_at",
        "config_snapshot",
    ):
        assert key in summary, key
    assert summary["experiment_name"] == name
    assert (summary["total_traces"], summary["successful"], summary["failed"]) == (
        expected_traces,
        expected_traces,
        0,
    )
    rows = [json.loads(x) for x in (exp / "trace_summary.jsonl").read_text().splitlines()]
    assert len(rows) == expected_traces
    for row in rows:
        for key in (
            "trace_id",
            "iteration",
            "persona",
            "input",
            "output",
            "duration_ms",
            "success",
        ):
            assert key in row, key
        assert row["output"] == f"Answer: {row['input']}"
    assert {r["persona"] for r in rows} == {"novice_user", "expert_user"}
    traces = [json.loads(x) for x in (exp / "traces.jsonl").read_text().splitlines()]
    observations = [json.loads(x) for x in (exp / "observations.jsonl").read_text().splitlines()]
    assert {o["trace_id"] for o in observations} == {t["trace_id"] for t in traces}
    assert {o["type"] for o in observations} >= {"span_start", "span_end"}
    assert (exp / "config.yaml").is_file()


@pytest.mark.slow
def test_seed_example_through_the_cli(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", SEED_000_COMPLETE_EXAMPLE, "simple_agent")
    proc = run_cli("run", "experiment", "--yes", cwd=root, env=clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 input/persona pairs × 1 iteration = 2 runs" in proc.stdout
    assert "Warning" not in proc.stdout + proc.stderr  # e.g. no assertion-rewrite warning
    exps = sorted((root / "experiments").glob("exp_*"))
    assert len(exps) == 1
    _check_artifacts(exps[0], 2, "my_agent_experiment")


def test_seed_example_through_pytest(pytester: pytest.Pytester) -> None:
    root = _project(pytester.path, SEED_000_COMPLETE_EXAMPLE, "simple_agent")
    result = pytester.runpytest(
        "--fluxloop-config", "configs/simulation.yaml", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    _check_artifacts(next((root / "experiments").glob("exp_*")), 2, "my_agent_experiment")


def test_seed_001_config_shape(pytester: pytest.Pytester) -> None:
    root = _project(pytester.path, SEED_001_CONFIG, "my_agent")
    result = pytester.runpytest(
        "--fluxloop-config", "configs/simulation.yaml", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=6)  # runner.iterations: 3 × 2 inputs
    _check_artifacts(next((root / "experiments").glob("exp_*")), 6, "how_it_works")
