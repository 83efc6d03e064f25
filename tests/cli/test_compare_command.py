"""``fluxloop compare``, as CI runs it: two real runs of one project, compared in a subprocess.

The project's agent answers the refund question well unless ``COMPARE_AGENT_BROKEN=1`` is
set, and its evaluation.yaml fails an answer containing "do not know": the second run
(broken) fails the refund input for both personas and all 3 iterations, an evaluation
failure, while the other input keeps passing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.cli_helpers import describe, run_cli

pytestmark = pytest.mark.slow

REFUND = "How do I get a refund?"
HOURS = "When are you open?"
PERSONAS = ("novice", "expert")
ITERATIONS = 3

AGENT = '''\
"""A deterministic support agent whose refund answer breaks with COMPARE_AGENT_BROKEN=1."""

import os


def run(input_text, persona, iteration):
    if "refund" in input_text:
        if os.environ.get("COMPARE_AGENT_BROKEN") == "1":
            return "Sorry, I do not know."
        return "You can get a refund within 30 days."
    return "We are open from 9 to 5."
'''


def write_project(root: Path) -> None:
    (root / "compare_agent.py").write_text(AGENT, encoding="utf-8")
    configs = root / "configs"
    configs.mkdir(parents=True)
    files = {
        "simulation.yaml": {
            "name": "compare_demo",
            "iterations": ITERATIONS,
            "runner": {"target": "compare_agent:run", "timeout_seconds": 30, "max_retries": 0},
            "output_directory": "experiments",
        },
        "input.yaml": {
            "personas": [{"name": p, "description": f"a {p} customer"} for p in PERSONAS],
            "base_inputs": [{"input": REFUND}, {"input": HOURS}],
        },
        "evaluation.yaml": {
            "evaluators": [
                {
                    "name": "knows_the_answer",
                    "type": "rule_based",
                    "rules": [{"check": "not_contains", "keywords": ["do not know"]}],
                }
            ],
            "aggregate": {"method": "weighted_sum", "threshold": 0.7},
        },
    }
    for name, data in files.items():
        (configs / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def run_once(root: Path, *, broken: bool) -> Path:
    before = set((root / "experiments").glob("exp_*"))
    env = {"COMPARE_AGENT_BROKEN": "1" if broken else "0"}
    proc = run_cli("run", "experiment", "--yes", cwd=root, env=env)
    # The broken run's items fail their evaluation: pytest's exit 1.
    assert proc.returncode == (1 if broken else 0), describe(proc)
    (created,) = set((root / "experiments").glob("exp_*")) - before
    return created


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(project root, good run, broken run)."""
    root = tmp_path_factory.mktemp("compare_project")
    write_project(root)
    good = run_once(root, broken=False)
    broken = run_once(root, broken=True)
    return root, good, broken


def test_a_worse_run_exits_1_with_a_markdown_comment(runs: tuple[Path, Path, Path]) -> None:
    root, good, broken = runs
    proc = run_cli("compare", good, broken, "--format", "md", cwd=root)
    assert proc.returncode == 1, describe(proc)
    md = proc.stdout
    assert md.startswith("## ❌ FluxLoop compare: "), md
    assert f"base `{good.name} (12 cases)` → new `{broken.name} (12 cases)`" in md
    assert "- ❌ pass rate fell from 100.0% to 50.0% (-50.0 pts; allowed drop 0.0 pts)" in md
    assert "| pass rate | 100.0% | 50.0% | -50.0 pts | ❌ |" in md
    assert "| pass^3 | 100.0% | 50.0% | -50.0 pts | ❌ |" in md
    assert "### Newly failing cases (6)" in md
    for persona in PERSONAS:
        for iteration in range(ITERATIONS):
            assert f"`in00-how_do_i_get_a_refund-{persona}-it{iteration}`" in md
    assert "how_do_i_get_a_refund" in md and "when_are_you_open-" not in md
    assert f"| {persona} | How do I get a refund? | 100.0% → 0.0% (-100.0 pts) |" in md
    assert "6 case(s) passed in the base run and fail in the new one (allowed 0)" in md


def test_json_names_every_regression(runs: tuple[Path, Path, Path]) -> None:
    root, good, broken = runs
    proc = run_cli("compare", good, broken, "--format", "json", cwd=root)
    assert proc.returncode == 1, describe(proc)
    data = json.loads(proc.stdout)
    assert data["regressed"] is True
    assert {"pass_rate", "pass_hat_k", "new_failures"} <= {r["check"] for r in data["regressions"]}
    assert data["k"] == ITERATIONS
    assert data["base"]["experiment"] == data["new"]["experiment"] == "compare_demo"
    assert data["warnings"] == []
    failing = data["cases"]["newly_failing"]
    assert {(c["input"], c["persona"], c["iteration"]) for c in failing} == {
        (REFUND, p, i) for p in PERSONAS for i in range(ITERATIONS)
    }
    refund = [g for g in data["groups"] if g["input"] == REFUND]
    assert [g["changes"]["pass_rate"]["delta"] for g in refund] == [-1.0, -1.0]
    hours = [g for g in data["groups"] if g["input"] == HOURS]
    assert [g["changes"]["pass_rate"]["delta"] for g in hours] == [0.0, 0.0]
    # The agent reports no token counts: unknown, never 0, and not checked.
    assert data["overall"]["tokens_mean"]["new"] is None
    assert any(item.startswith("tokens:") for item in data["unchecked"])


def test_output_file_and_tolerance(runs: tuple[Path, Path, Path]) -> None:
    root, good, broken = runs
    proc = run_cli("compare", good, broken, "-f", "md", "--output", "out/comment.md", cwd=root)
    assert proc.returncode == 1, describe(proc)
    comment = (root / "out" / "comment.md").read_text(encoding="utf-8")
    assert comment.startswith("## ❌ FluxLoop compare")
    assert "[FAIL] pass rate fell from 100.0% to 50.0%" in proc.stdout
    assert "[INFO] regression beyond tolerance; comparison written to out/comment.md" in proc.stdout
    # Tolerant enough: a 50-point drop and 6 new failures are allowed.
    proc = run_cli(
        "compare",
        good,
        broken,
        "--tolerance",
        "pass_rate=0.5,pass_hat_k=50%",
        "--tolerance",
        "new_failures=6,latency=off",
        cwd=root,
    )
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.startswith("FluxLoop compare: OK, no regression beyond tolerance")
    assert "tolerance: pass_rate=0.5, pass_hat_k=0.5, latency=off" in proc.stdout


def test_a_run_against_itself_and_a_better_run_exit_0(runs: tuple[Path, Path, Path]) -> None:
    root, good, broken = runs
    proc = run_cli("compare", good, good, cwd=root)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.startswith("FluxLoop compare: OK, no regression beyond tolerance")
    assert "newly failing: none" in proc.stdout
    # The fix: the broken run as base, the good one as new (latency off: wall-clock noise).
    proc = run_cli("compare", broken, good, "-t", "latency=off", "-f", "md", cwd=root)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.startswith("## ✅ FluxLoop compare: no regression beyond tolerance")
    assert "<details><summary>Newly passing cases (6)</summary>" in proc.stdout


def test_usage_errors_exit_4(runs: tuple[Path, Path, Path]) -> None:
    root, good, broken = runs
    proc = run_cli("compare", good, broken, "--tolerance", "latncy=0.5", cwd=root)
    assert proc.returncode == 4, describe(proc)
    assert "Error: tolerance: unknown key 'latncy' (did you mean 'latency'?)" in proc.stderr
    assert "valid keys: pass_rate, pass_hat_k, latency, latency_floor_ms, tokens" in proc.stderr
    # The folder that holds the runs is not a run: the message names one inside it.
    proc = run_cli("compare", "experiments", broken, cwd=root)
    assert proc.returncode == 4, describe(proc)
    assert "not a FluxLoop experiment folder" in proc.stderr
    assert "it holds experiment folders, e.g." in proc.stderr
    proc = run_cli("compare", good, broken, "--format", "html", cwd=root)
    assert proc.returncode == 4, describe(proc)
    assert "Traceback" not in proc.stderr
