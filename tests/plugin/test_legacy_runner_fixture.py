"""The earlier FluxLoop fixtures (``fluxloop_runner``, ``fluxloop_runner_multi_turn``) run a
project's experiment from one test, as the earlier tool's pytest template does.

The project below uses the earlier template's keys and layout (``configs/``, ``examples/``,
``tests/test_fluxloop_smoke.py``); the prose and the agent are ours.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.plugin_helpers import Project

SIMULATION = """\
name: bridge_demo
description: Bridge fixture experiment
iterations: {iterations}
parallel_runs: 1
run_delay_seconds: 0
seed: 42
runner:
  module_path: "examples.simple_agent"
  function_name: "run"
  target: "examples.simple_agent:run"
  working_directory: .
  python_path:
  timeout_seconds: 30
  max_retries: 0
replay_args:
  enabled: false
  recording_file: recordings/args_recording.jsonl
  override_param_path: data.content
multi_turn:
  enabled: false
  max_turns: 8
  auto_approve_tools: true
  persona_override: null
  supervisor:
    provider: openai
    model: gpt-5-mini
    system_prompt: |
      Play the customer described by the persona.
    metadata:
      scripted_questions:
        - "Is there a shortcut for that?"
        - "Does it work offline?"
      mock_decision: terminate
      mock_reason: questions_answered
      mock_closing: "Great, that covers it. Bye!"
output_directory: experiments
save_traces: true
save_aggregated_metrics: true
"""

INPUT = """\
base_inputs:
  - input: "How do I get started?"
    expected_intent: help
  - input: "What can you do?"
    expected_intent: capabilities
variation_strategies:
  - rephrase
variation_count: 1
variation_temperature: 0.7
personas:
  - name: novice_user
    description: Someone opening the product for the first time
    characteristics:
      - Short questions
    language: en
    expertise_level: novice
    goals:
      - Get going quickly
inputs_file: inputs/generated.yaml
input_generation:
  mode: llm
  llm:
    enabled: true
    provider: openai
    model: gpt-5-mini
    api_key: null
"""

PROJECT = """\
name: bridge_demo
description: Bridge fixture project
version: 1.0.0
source_root: ""
collector_url: null
collector_api_key: null
tags:
  - simulation
metadata:
  team: qa
  environment: local
  service_context: "A note-taking app"
"""

AGENT = """\
import os
import time

import fluxloop


@fluxloop.agent(name="SimpleAgent")
def run(input_text: str) -> str:
    if "crash" in input_text:
        raise ValueError("asked to crash\\nsecond line of the error")
    time.sleep(float(os.environ.get("BRIDGE_AGENT_SLEEP", "0")))
    flag = os.environ.get("BRIDGE_FLAG", "-")
    return f"[{flag}] here is how: {input_text}"
"""

SMOKE_TEST = """\
from pathlib import Path


PROJECT_ROOT = Path(__file__).resolve().parents[1]
SIMULATION_CONFIG = PROJECT_ROOT / "configs/simulation.yaml"


def test_fluxloop_smoke(fluxloop_runner):
    result = fluxloop_runner(
        project_root=PROJECT_ROOT,
        simulation_config=SIMULATION_CONFIG,
        env={"PYTHONPATH": str(PROJECT_ROOT)},
    )
    result.require_success(label="fluxloop smoke")
"""


def make_project(
    project: Project,
    *,
    iterations: int = 1,
    inputs: str = INPUT,
    folder: str = "",
    agent: str = AGENT,
) -> Path:
    """The project in ``folder`` (default: the pytester directory itself)."""
    base = f"{folder}/" if folder else ""
    project.write(f"{base}configs/simulation.yaml", SIMULATION.format(iterations=iterations))
    project.write(f"{base}configs/input.yaml", inputs)
    project.write(f"{base}configs/project.yaml", PROJECT)
    project.write(f"{base}.env", "BRIDGE_DOTENV=from-dotenv\n")
    project.write(f"{base}examples/__init__.py", "")
    project.write(f"{base}examples/simple_agent.py", agent)
    if not folder:
        project.write("tests/test_fluxloop_smoke.py", SMOKE_TEST)
    return project.root / folder


def run_tests(project: Project, *args: str) -> pytest.RunResult:
    return project.pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore", *args)


def inner_test(project: Project, body: str, name: str = "test_bridge.py") -> None:
    """A test file in the project's tests/ folder; ``ROOT`` is the project root."""
    header = "import json, os, sys\nfrom pathlib import Path\n\n"
    header += "ROOT = Path(__file__).resolve().parents[1]\n\n\n"
    project.write(f"tests/{name}", header + body)


def summary_lines(exp_dir: Path) -> list[dict[str, Any]]:
    text = (exp_dir / "trace_summary.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


# --------------------------------------------------------------------------- the template


def test_template_smoke_test_passes_and_leaves_the_project_clean(project: Project) -> None:
    root = make_project(project)
    result = run_tests(project, "tests/test_fluxloop_smoke.py")
    result.assert_outcomes(passed=1)
    # Results went to the test's tmp_path (pytester's basetemp), not into the project.
    assert not (root / "experiments").exists()
    assert not (root / ".fluxloop_pytest").exists()
    (exp_dir,) = (root.parent / "basetemp").rglob("exp_*")
    lines = summary_lines(exp_dir)
    assert len(lines) == 2 and all(line["success"] for line in lines)


def test_result_carries_the_summary_and_the_paths(project: Project) -> None:
    make_project(project)
    inner_test(
        project,
        """\
def test_result(fluxloop_runner, tmp_path):
    result = fluxloop_runner(project_root=ROOT)
    assert (result.total_runs, result.successful_runs, result.failed_runs) == (2, 2, 0)
    assert result.success_rate == 1.0 and result.succeeded
    assert result.status == "complete" and result.errors == ()
    assert result.avg_duration_ms >= 0
    assert result.output_dir.is_relative_to(tmp_path)
    assert result.experiment_dir == result.output_dir
    assert result.summary_path == result.output_dir / "summary.json"
    assert result.summary["total_traces"] == 2
    assert result.trace_summary_path.is_file() and result.per_trace_path is None
    assert json.loads(json.dumps(result.to_dict()))["total_runs"] == 2
    result.require_success()
    result.require_min_runs(2)
    result.require_max_duration(60_000)
""",
    )
    run_tests(project, "tests/test_bridge.py").assert_outcomes(passed=1)


# --------------------------------------------------------------------------- failures


def test_failing_agent_fails_the_test_listing_the_failed_cases(project: Project) -> None:
    inputs = INPUT.replace('"What can you do?"', '"please crash now"')
    make_project(project, inputs=inputs)
    result = run_tests(project, "tests/test_fluxloop_smoke.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*fluxloop smoke: 1 of 2 cases failed (success rate 50.0%, required 100.0%)*",
            "*- in01-please_crash_now-novice_user-it0 [[]error[]]: asked to crash",
            "*results: */exp_*",
        ]
    )
    assert "second line of the error" not in result.stdout.str()


def test_min_success_rate_and_the_earlier_threshold_name(project: Project) -> None:
    inputs = INPUT.replace('"What can you do?"', '"please crash now"')
    make_project(project, inputs=inputs)
    inner_test(
        project,
        """\
import pytest


def test_rates(fluxloop_runner):
    result = fluxloop_runner(project_root=ROOT)
    assert (result.total_runs, result.failed_runs, result.success_rate) == (2, 1, 0.5)
    assert not result.succeeded
    (error,) = result.errors
    assert error.case_id.startswith("in01-") and error.status == "error"
    assert error.kind == "agent" and error.input_text == "please crash now"
    assert error.first_line == "asked to crash"
    result.require_success(min_success_rate=0.5)
    result.require_success(threshold=0.4)
    with pytest.raises(AssertionError, match="required 60.0%"):
        result.require_success(threshold=0.6, message="custom")
    with pytest.raises(AssertionError, match="fewer than the required 3"):
        result.require_min_runs(3)
""",
    )
    run_tests(project, "tests/test_bridge.py").assert_outcomes(passed=1)


def test_config_error_fails_the_test_with_the_config_message(project: Project) -> None:
    make_project(project)
    simulation = project.root / "configs" / "simulation.yaml"
    text = simulation.read_text(encoding="utf-8").replace("iterations: 1", "iterations: 0")
    simulation.write_text(text, encoding="utf-8")
    result = run_tests(project, "tests/test_fluxloop_smoke.py")
    result.assert_outcomes(failed=1)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*pytest-fluxloop: fluxloop_runner: */simulation.yaml: invalid configuration:",
            "*simulation.yaml:3: iterations: 0 is out of range 1-1000",
        ]
    )
    assert "During handling" not in result.stdout.str()


def test_missing_config_names_the_path(project: Project) -> None:
    make_project(project)
    inner_test(
        project,
        """\
def test_missing(fluxloop_runner):
    fluxloop_runner(project_root=ROOT, simulation_config="configs/nope.yaml")
""",
    )
    result = run_tests(project, "tests/test_bridge.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*simulation_config 'configs/nope.yaml': no such file*"])


# --------------------------------------------------------------------------- overrides


def test_overrides_are_applied(project: Project) -> None:
    make_project(project)
    inner_test(
        project,
        """\
def test_overrides(fluxloop_runner):
    result = fluxloop_runner(
        project_root=ROOT,
        overrides={"iterations": 2, "name": "renamed", "output_directory": "experiments"},
    )
    assert result.total_runs == 4
    assert result.summary["experiment_name"] == "renamed"
    # output_directory given: the results stay in the project, as the CLI writes them.
    assert result.output_dir.parent == ROOT / "experiments"
    nested = fluxloop_runner(
        project_root=ROOT, overrides={"runner": {"iterations": 3}, "personas": "novice_user"}
    )
    assert nested.total_runs == 6
""",
    )
    run_tests(project, "tests/test_bridge.py").assert_outcomes(passed=1)


def test_bad_override_keys_fail_with_a_clear_message(project: Project) -> None:
    make_project(project)
    inner_test(
        project,
        """\
def test_bad_keys(fluxloop_runner):
    fluxloop_runner(
        project_root=ROOT,
        overrides={"runner.timeout_seconds": 5, "itrations": 2, "multi_turn": {"max_turns": 3}},
    )


def test_bad_value(fluxloop_runner):
    fluxloop_runner(project_root=ROOT, overrides={"iterations": "many"})
""",
    )
    result = run_tests(project, "tests/test_bridge.py")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*pytest-fluxloop: fluxloop_runner: overrides cannot be applied:",
            "*- 'runner.timeout_seconds' is not a setting the fixture can override",
            "*- 'itrations' is not a setting the fixture can override",
            "*accepted keys: *iterations*multi_turn.max_turns*",
        ]
    )
    result.stdout.fnmatch_lines(["*invalid overrides:", "*- 'iterations': *integer*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()


# --------------------------------------------------------------------------- process state


def test_env_is_set_for_the_run_and_restored(project: Project) -> None:
    make_project(project)
    inner_test(
        project,
        """\
def test_env(fluxloop_runner):
    cwd, path = os.getcwd(), list(sys.path)
    os.environ.pop("BRIDGE_FLAG", None)
    result = fluxloop_runner(project_root=ROOT, env={"BRIDGE_FLAG": 7, "PYTHONPATH": str(ROOT)})
    lines = [json.loads(x) for x in result.trace_summary_path.read_text().splitlines()]
    assert {line["output"][:3] for line in lines} == {"[7]"}
    assert "BRIDGE_FLAG" not in os.environ
    assert "BRIDGE_DOTENV" not in os.environ  # the project's .env is undone too
    assert (os.getcwd(), sys.path) == (cwd, path)
""",
    )
    run_tests(project, "tests/test_bridge.py").assert_outcomes(passed=1)


def test_two_projects_with_the_same_module_names_run_their_own_agents(
    project: Project,
) -> None:
    # Every project made from the earlier template names its agent examples.simple_agent.
    for name in ("alpha", "beta"):
        make_project(project, folder=name, agent=f"def run(input_text):\n    return {name!r}\n")
    project.write(
        "test_two.py",
        """\
import json
from pathlib import Path


def test_two(fluxloop_runner):
    for name in ("alpha", "beta"):
        result = fluxloop_runner(project_root=Path(__file__).parent / name)
        lines = result.trace_summary_path.read_text().splitlines()
        assert {json.loads(line)["output"] for line in lines} == {name}
""",
    )
    run_tests(project, "test_two.py").assert_outcomes(passed=1)


def test_timeout_fails_the_test_naming_it(project: Project) -> None:
    make_project(project, iterations=3)
    inner_test(
        project,
        """\
def test_slow(fluxloop_runner):
    fluxloop_runner(project_root=ROOT, timeout=0.3, env={"BRIDGE_AGENT_SLEEP": "0.2"})
""",
    )
    result = run_tests(project, "tests/test_bridge.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: fluxloop_runner: the FluxLoop experiment exceeded its timeout "
            "of 0.3s (? of 6 cases finished); results so far: */exp_*"
        ]
    )
    (exp_dir,) = (project.root.parent / "basetemp").rglob("exp_*")
    summary = json.loads((exp_dir / "summary.json").read_text(encoding="utf-8"))
    # No case started after the deadline (each takes 0.2 s); the summary says the run was
    # cut short.
    assert summary["status"] == "interrupted"
    assert 1 <= summary["total_traces"] <= 2


# --------------------------------------------------------------------------- multi-turn


def test_multi_turn_with_the_mock_supervisor(project: Project) -> None:
    make_project(project)
    inner_test(
        project,
        """\
def test_conversation(fluxloop_runner_multi_turn):
    result = fluxloop_runner_multi_turn(
        project_root=ROOT, overrides={"supervisor_provider": "mock"}, max_turns=5
    )
    result.require_success(label="multi-turn")
    lines = [json.loads(x) for x in result.trace_summary_path.read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert line["termination_reason"] == "questions_answered"
        roles = [turn["role"] for turn in line["conversation"]]
        assert roles == ["user", "assistant"] * 3 + ["user"]
        closing = line["conversation"][-1]
        assert closing["content"] == "Great, that covers it. Bye!"
        assert closing["closing"] is True and closing["metadata"]["closing"] is True
        assert not any(turn.get("closing") for turn in line["conversation"][:-1])
        assert [turn["turn_index"] for turn in line["conversation"]] == [1, 1, 2, 2, 3, 3, 4]
    snapshot = result.summary["config_snapshot"]["simulation"]["multi_turn"]
    assert (snapshot["enabled"], snapshot["max_turns"]) == (True, 5)


def test_max_turns_cap(fluxloop_runner_multi_turn):
    result = fluxloop_runner_multi_turn(
        project_root=ROOT, overrides={"multi_turn": {"supervisor": {"provider": "mock"}}},
        max_turns=2,
    )
    lines = [json.loads(x) for x in result.trace_summary_path.read_text().splitlines()]
    assert {line["termination_reason"] for line in lines} == {"max_turns_reached"}
    assert all(len(line["conversation"]) == 4 for line in lines)


def test_contradiction(fluxloop_runner_multi_turn):
    fluxloop_runner_multi_turn(project_root=ROOT, overrides={"multi_turn": False})
""",
    )
    result = run_tests(project, "tests/test_bridge.py")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*'multi_turn' contradicts fluxloop_runner_multi_turn*"])


def test_multi_turn_supervisor_config_error_fails_the_test(project: Project) -> None:
    make_project(project)
    inner_test(
        project,
        """\
def test_no_key(fluxloop_runner_multi_turn, monkeypatch):
    for name in ("OPENAI_API_KEY", "FLUXLOOP_SUPERVISOR_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    fluxloop_runner_multi_turn(project_root=ROOT)
""",
    )
    result = run_tests(project, "tests/test_bridge.py")
    result.assert_outcomes(failed=1)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*pytest-fluxloop: fluxloop_runner_multi_turn: *"])


# --------------------------------------------------------------------------- the CLI mode


@pytest.mark.slow
def test_cli_mode_runs_the_command_in_a_subprocess(project: Project) -> None:
    inputs = INPUT.replace('"What can you do?"', '"please crash now"')
    root = make_project(project, inputs=inputs)
    inner_test(
        project,
        """\
import pytest


def test_cli(fluxloop_cli, tmp_path):
    result = fluxloop_cli(
        project_root=ROOT, overrides={"iterations": 2}, env={"BRIDGE_FLAG": "cli"}
    )
    assert result.mode == "cli" and "run experiment --yes" in result.cli_command
    assert "--iterations 2" in result.cli_command
    assert result.output_dir.is_relative_to(tmp_path)
    assert (result.total_runs, result.failed_runs) == (4, 2)
    assert result.stdout_path.read_text()
    ok = [json.loads(x) for x in result.trace_summary_path.read_text().splitlines()]
    assert {x["output"][:5] for x in ok if x["success"]} == {"[cli]"}
    with pytest.raises(AssertionError, match="in01-please_crash_now"):
        result.require_success()
""",
    )
    run_tests(project, "tests/test_bridge.py").assert_outcomes(passed=1)
    assert not (root / ".pytest_cache").exists()
    assert not (root / "experiments").exists()


@pytest.mark.slow
def test_cli_mode_timeout_stops_the_command(project: Project) -> None:
    make_project(project)
    inner_test(
        project,
        """\
def test_slow(fluxloop_cli):
    fluxloop_cli(project_root=ROOT, timeout=1, env={"BRIDGE_AGENT_SLEEP": "20"})
""",
    )
    started = time.monotonic()
    result = run_tests(project, "tests/test_bridge.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: fluxloop_cli: the FluxLoop experiment exceeded its timeout of 1s*"]
    )
    assert time.monotonic() - started < 15  # killed, not waited for
    assert "During handling" not in result.stdout.str()
