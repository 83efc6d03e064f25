"""Loading ``configs/simulation.yaml`` and its companions: seed 000's examples, defaults,
legacy spellings (seed 001), runner target forms and the ``.env`` rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.config_helpers import (
    COMPLETE_EXAMPLE,
    EVALUATION,
    INPUT,
    MINIMAL_SIMULATION,
    PROJECT,
    SIMULATION,
    line_of,
    write_project,
    write_tree,
)

from pytest_fluxloop.config import LoadedConfig, Overrides, load_config, project_root_for
from pytest_fluxloop.errors import ConfigError

# seeds/000 "Complete Example", verbatim apart from the indentation the page lost.

STANDARD = """\
name: agent_test
description: Standard agent testing
iterations: 10
seed: 42
runner:
  target: "examples.simple_agent:run"
  timeout_seconds: 120
  max_retries: 3
output_directory: experiments
save_traces: true
"""

MULTI_TURN_LLM = """\
name: conversation_test
description: Multi-turn conversation testing
iterations: 5
runner:
  target: "my_agent:run"
  timeout_seconds: 300
multi_turn:
  enabled: true
  max_turns: 12
  auto_approve_tools: true
  supervisor:
    provider: openai
    model: gpt-4o-mini
    system_prompt: |
      You supervise an AI assistant for a travel booking platform.
      Continue if customer needs more help with flights, hotels, or bookings.
      Terminate when reservation is complete or all questions answered.
"""

MULTI_TURN_SCRIPTED = """\
name: scripted_conversation
description: Deterministic multi-turn testing
iterations: 1
seed: 42
runner:
  target: "my_agent:run"
multi_turn:
  enabled: true
  max_turns: 5
  supervisor:
    provider: mock
    metadata:
      scripted_questions:
        - "What are your business hours?"
        - "Do you have weekend availability?"
        - "Great, thanks for the info!"
      mock_decision: terminate
      mock_reason: script_complete
"""

RECORDING_REPLAY = """\
name: replay_test
description: Test with recorded arguments
iterations: 3
runner:
  target: "my_handler:handle_request"
  timeout_seconds: 60
replay_args:
  enabled: true
  recording_file: recordings/production_args.jsonl
  override_param_path: request.body.message
output_directory: experiments
"""

PRODUCTION_STRESS = """\
name: production_stress_test
description: High-volume production simulation
iterations: 100
parallel_runs: 5
run_delay_seconds: 0.1
seed: null # Random for diversity
runner:
  target: "my_agent:run"
  timeout_seconds: 180
  max_retries: 5
multi_turn:
  enabled: true
  max_turns: 15
  supervisor:
    provider: openai
    model: gpt-4o
output_directory: stress_tests
save_traces: true
save_aggregated_metrics: true
"""

# reference-configs.md shapes, every documented field.
PROJECT_YAML = """\
name: support-agent
description: Customer support agent
version: "1.2.0"
source_root: src
collector_url: http://localhost:8000
collector_api_key: local-dev-key
tags: [support, beta]
metadata:
  team: platform
  environment: staging
  service_context: Online store support; handles orders and refunds.
  owner: alice
  ticket_queue: 7
"""

INPUT_YAML = """\
base_inputs:
  - input: "Where is my order?"
    expected_intent: order_status
    metadata: {priority: high}
  - input: "How do I return an item?"
variation_strategies: [rephrase, verbose, concise, typo, error_prone, persona_based,
                       adversarial, multilingual, custom]
variation_count: 2
variation_temperature: 0.9
personas:
  - name: novice_user
    description: First-time customer
    characteristics: [polite, unsure]
    language: en
    expertise_level: beginner
    goals: [get a clear answer]
  - name: expert_user
    description: Knows the policies
inputs_file: inputs/generated.yaml
input_generation:
  mode: llm
  strategies: [rephrase, concise]
  llm:
    enabled: true
    provider: openai
    model: gpt-4o-mini
    api_key: sk-test-not-real
"""

EVALUATION_YAML = """\
evaluation_goal:
  text: Answer every question politely.
evaluators:
  - name: basic_checks
    type: rule_based
    enabled: true
    weight: 0.6
    rules:
      - check: output_not_empty
      - check: contains
        target: output
        keywords: [order, refund]
      - check: not_contains
        target: output
        keywords: [password]
      - check: matches_regex
        pattern: "^[A-Z]"
      - check: latency_under
        budget_ms: 1500
      - check: token_usage_under
        max_tokens: 800
      - check: similarity
        expected_path: metadata.expected
        method: difflib
        threshold: 0.7
      - check: success
  - name: judge
    type: llm_judge
    enabled: false
    weight: 0.4
    model: gpt-4o-mini
    prompt_template: "Score {output} from 1 to 5"
    max_score: 5
    parser: first_number
    model_parameters: {temperature: 0}
aggregate:
  method: average
  threshold: 0.8
  by_persona: true
limits:
  sample_rate: 0.5
  max_llm_calls: 20
  timeout_seconds: 30
  cache: evaluations/cache.jsonl
success_criteria:
  performance:
    all_traces_successful: true
    avg_response_time: {enabled: true, threshold_ms: 2000}
    max_response_time: {enabled: false, threshold_ms: 5000}
    error_rate: {enabled: true, threshold_percent: 5}
  quality:
    basic_checks: true
    judge: false
  functionality:
    tool_calling: {enabled: true, required_tools: [lookup_order]}
"""


def _project(tmp_path: Path, simulation: str, **files: str) -> Path:
    """seed 000's layout: ``fluxloop/my-agent/configs/simulation.yaml``."""
    root = tmp_path / "fluxloop" / "my-agent"
    return write_project(root, {SIMULATION: simulation, **files})


# --------------------------------------------------------------------------- seed 000 examples


def test_complete_example_loads_every_documented_value(tmp_path: Path) -> None:
    path = _project(tmp_path, COMPLETE_EXAMPLE)
    loaded = load_config(path)
    sim = loaded.simulation

    assert isinstance(loaded, LoadedConfig)
    assert loaded.config_path == path.resolve()
    assert loaded.project_root == (tmp_path / "fluxloop" / "my-agent").resolve()
    assert sim.name == "my_agent_experiment"
    assert sim.description == "AI agent simulation experiment"
    assert sim.iterations == 1
    assert sim.parallel_runs == 1
    assert sim.run_delay_seconds == 0
    assert sim.seed == 42

    runner = sim.runner
    assert runner.module_path == "examples.simple_agent"
    assert runner.function_name == "run"
    assert runner.target == "examples.simple_agent:run"
    assert runner.target_spec == "examples.simple_agent:run"
    assert runner.working_directory == "."
    assert runner.python_path is None
    assert runner.timeout_seconds == 120
    assert runner.max_retries == 3

    assert sim.replay_args.enabled is False
    assert sim.replay_args.recording_file == "recordings/args_recording.jsonl"
    assert sim.replay_args.override_param_path == "data.content"

    mt = sim.multi_turn
    assert mt.enabled is False
    assert mt.max_turns == 8
    assert mt.auto_approve_tools is True
    assert mt.persona_override is None
    assert mt.supervisor.provider == "openai"
    assert mt.supervisor.model == "gpt-4o-mini"
    assert mt.supervisor.system_prompt == (
        "You supervise an AI assistant supporting customers.\n"
        "Review the entire transcript and decide whether to continue.\n"
        "When continuing, craft the next user message consistent with the persona.\n"
        "When terminating, explain the reason and provide any closing notes.\n"
    )
    meta = mt.supervisor.metadata
    assert meta.scripted_questions == []
    assert meta.mock_decision == "terminate"
    assert meta.mock_reason == "script_complete"
    assert meta.mock_closing == "Thanks for the help. I have no further questions."

    assert sim.output_directory == "experiments"
    assert sim.save_traces is True
    assert sim.save_aggregated_metrics is True
    # No companions in this project.
    assert loaded.project is None
    assert loaded.input is None
    assert loaded.evaluation is None
    assert loaded.sources == {"simulation": path.resolve()}


def test_project_root_is_parent_of_configs_folder(tmp_path: Path) -> None:
    path = _project(tmp_path, COMPLETE_EXAMPLE)
    assert project_root_for(path) == tmp_path / "fluxloop" / "my-agent"
    loose = tmp_path / "elsewhere" / "sim.yaml"
    assert project_root_for(loose) == tmp_path / "elsewhere"


def test_resolve_is_relative_to_project_root(tmp_path: Path) -> None:
    loaded = load_config(_project(tmp_path, COMPLETE_EXAMPLE))
    root = (tmp_path / "fluxloop" / "my-agent").resolve()
    assert loaded.resolve("recordings/a.jsonl") == root / "recordings" / "a.jsonl"
    assert loaded.resolve(tmp_path / "abs.yaml") == tmp_path / "abs.yaml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            MINIMAL_SIMULATION,
            {"name": "quick_test", "iterations": 1, "target": "my_agent:run"},
            id="minimal",
        ),
        pytest.param(
            STANDARD,
            {"name": "agent_test", "iterations": 10, "seed": 42, "max_retries": 3},
            id="standard",
        ),
        pytest.param(
            MULTI_TURN_LLM,
            {"iterations": 5, "timeout_seconds": 300, "enabled": True, "max_turns": 12},
            id="multi-turn-llm",
        ),
        pytest.param(
            MULTI_TURN_SCRIPTED,
            {"provider": "mock", "max_turns": 5, "n_questions": 3},
            id="multi-turn-scripted",
        ),
        pytest.param(
            RECORDING_REPLAY,
            {"replay": True, "recording_file": "recordings/production_args.jsonl"},
            id="recording-replay",
        ),
        pytest.param(
            PRODUCTION_STRESS,
            {
                "iterations": 100,
                "parallel_runs": 5,
                "run_delay_seconds": 0.1,
                "seed": None,
                "max_retries": 5,
                "max_turns": 15,
                "model": "gpt-4o",
                "output_directory": "stress_tests",
            },
            id="production-stress",
        ),
    ],
)
def test_seed_complete_examples_validate(
    tmp_path: Path, text: str, expected: dict[str, object]
) -> None:
    sim = load_config(_project(tmp_path, text)).simulation
    actual: dict[str, object] = {
        "name": sim.name,
        "iterations": sim.iterations,
        "seed": sim.seed,
        "target": sim.runner.target_spec,
        "max_retries": sim.runner.max_retries,
        "timeout_seconds": sim.runner.timeout_seconds,
        "enabled": sim.multi_turn.enabled,
        "max_turns": sim.multi_turn.max_turns,
        "provider": sim.multi_turn.supervisor.provider,
        "model": sim.multi_turn.supervisor.model,
        "n_questions": len(sim.multi_turn.supervisor.metadata.scripted_questions),
        "replay": sim.replay_args.enabled,
        "recording_file": sim.replay_args.recording_file,
        "parallel_runs": sim.parallel_runs,
        "run_delay_seconds": sim.run_delay_seconds,
        "output_directory": sim.output_directory,
    }
    assert {key: actual[key] for key in expected} == expected


def test_recording_replay_example_keeps_override_path(tmp_path: Path) -> None:
    sim = load_config(_project(tmp_path, RECORDING_REPLAY)).simulation
    assert sim.replay_args.override_param_path == "request.body.message"
    assert sim.runner.target_spec == "my_handler:handle_request"
    assert sim.runner.timeout_seconds == 60


def test_minimal_example_gets_documented_defaults(tmp_path: Path) -> None:
    sim = load_config(_project(tmp_path, MINIMAL_SIMULATION)).simulation
    assert sim.iterations == 1
    assert sim.parallel_runs == 1
    assert sim.run_delay_seconds == 0
    assert sim.seed == 42
    assert sim.runner.timeout_seconds == 120
    assert sim.runner.max_retries == 3
    assert sim.runner.working_directory == "."
    assert sim.runner.python_path is None
    assert sim.runner.module_path is None
    assert sim.runner.function_name is None
    assert sim.multi_turn.enabled is False
    assert sim.multi_turn.max_turns == 8
    assert sim.multi_turn.auto_approve_tools is True
    assert sim.multi_turn.persona_override is None
    assert sim.multi_turn.supervisor.provider == "openai"
    assert sim.multi_turn.supervisor.model == "gpt-4o-mini"
    assert sim.multi_turn.supervisor.system_prompt is None
    assert sim.multi_turn.supervisor.metadata.scripted_questions == []
    assert sim.multi_turn.supervisor.metadata.mock_decision == "terminate"
    assert sim.multi_turn.supervisor.metadata.mock_reason == "script_complete"
    assert sim.replay_args.enabled is False
    assert sim.replay_args.recording_file == "recordings/args_recording.jsonl"
    assert sim.replay_args.override_param_path == "data.content"
    assert sim.output_directory == "experiments"
    assert sim.save_traces is True
    assert sim.save_aggregated_metrics is True


def test_explicit_null_seed_is_kept_not_defaulted(tmp_path: Path) -> None:
    text = MINIMAL_SIMULATION + "seed: null\n"
    assert load_config(_project(tmp_path, text)).simulation.seed is None


def test_python_path_list_and_fractional_delay(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    run_delay_seconds: 0.5
    runner:
      target: "my_agent:Agent.process"
      working_directory: src/
      python_path:
        - src
        - ../shared-libs
    """
    sim = load_config(_project(tmp_path, text)).simulation
    assert sim.run_delay_seconds == 0.5
    assert sim.runner.python_path == ["src", "../shared-libs"]
    assert sim.runner.working_directory == "src/"
    assert sim.runner.target_spec == "my_agent:Agent.process"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("iterations", "1000"),
        ("parallel_runs", "20"),
        ("run_delay_seconds", "60"),
    ],
)
def test_range_upper_bounds_are_inclusive(tmp_path: Path, key: str, value: str) -> None:
    text = f"name: t\ndescription: d\n{key}: {value}\nrunner:\n  target: a:b\n"
    sim = load_config(_project(tmp_path, text)).simulation
    assert float(getattr(sim, key)) == float(value)


def test_runner_and_multi_turn_bounds_are_inclusive(tmp_path: Path) -> None:
    low = """\
    name: t
    description: d
    runner: {target: "a:b", timeout_seconds: 10, max_retries: 0}
    multi_turn: {max_turns: 2, supervisor: {temperature: 0}}
    """
    high = """\
    name: t
    description: d
    runner: {target: "a:b", timeout_seconds: 3600, max_retries: 10}
    multi_turn: {max_turns: 50, supervisor: {temperature: 2}}
    """
    sim_low = load_config(_project(tmp_path / "low", low)).simulation
    sim_high = load_config(_project(tmp_path / "high", high)).simulation
    assert (sim_low.runner.timeout_seconds, sim_low.runner.max_retries) == (10, 0)
    assert (sim_high.runner.timeout_seconds, sim_high.runner.max_retries) == (3600, 10)
    assert (sim_low.multi_turn.max_turns, sim_high.multi_turn.max_turns) == (2, 50)
    assert sim_low.multi_turn.supervisor.temperature == 0
    assert sim_high.multi_turn.supervisor.temperature == 2


# --------------------------------------------------------------------------- companions


def test_companions_are_loaded_and_merged(tmp_path: Path) -> None:
    path = _project(
        tmp_path,
        COMPLETE_EXAMPLE,
        **{PROJECT: PROJECT_YAML, INPUT: INPUT_YAML, EVALUATION: EVALUATION_YAML},
    )
    loaded = load_config(path)
    configs = path.resolve().parent
    assert loaded.sources == {
        "simulation": path.resolve(),
        "project": configs / "project.yaml",
        "input": configs / "input.yaml",
        "evaluation": configs / "evaluation.yaml",
    }

    project = loaded.project
    assert project is not None
    assert project.name == "support-agent"
    assert project.description == "Customer support agent"
    assert project.version == "1.2.0"
    assert project.source_root == "src"
    assert project.collector_url == "http://localhost:8000"
    assert project.collector_api_key == "local-dev-key"
    assert project.tags == ["support", "beta"]
    assert project.metadata.team == "platform"
    assert project.metadata.environment == "staging"
    assert loaded.service_context == "Online store support; handles orders and refunds."
    extra = project.metadata.model_extra or {}
    assert extra == {"owner": "alice", "ticket_queue": 7}


def test_input_companion_all_fields(tmp_path: Path) -> None:
    loaded = load_config(_project(tmp_path, MINIMAL_SIMULATION, **{INPUT: INPUT_YAML}))
    cfg = loaded.input
    assert cfg is not None
    assert cfg.base_inputs is not None
    assert [b.input for b in cfg.base_inputs] == ["Where is my order?", "How do I return an item?"]
    assert cfg.base_inputs[0].expected_intent == "order_status"
    assert cfg.base_inputs[0].metadata == {"priority": "high"}
    assert cfg.base_inputs[1].expected_intent is None
    assert cfg.variation_strategies == [
        "rephrase",
        "verbose",
        "concise",
        "typo",
        "error_prone",
        "persona_based",
        "adversarial",
        "multilingual",
        "custom",
    ]
    assert cfg.variation_count == 2
    assert cfg.variation_temperature == 0.9
    assert cfg.personas is not None
    novice, expert = cfg.personas
    assert novice.name == "novice_user"
    assert novice.description == "First-time customer"
    assert novice.characteristics == ["polite", "unsure"]
    assert novice.language == "en"
    assert novice.expertise_level == "beginner"
    assert novice.goals == ["get a clear answer"]
    assert expert.characteristics == []
    assert expert.goals == []
    assert cfg.inputs_file == "inputs/generated.yaml"
    gen = cfg.input_generation
    assert gen is not None
    assert gen.mode == "llm"
    assert gen.strategies == ["rephrase", "concise"]
    assert gen.llm is not None
    assert (gen.llm.enabled, gen.llm.provider, gen.llm.model) == (True, "openai", "gpt-4o-mini")
    assert gen.llm.api_key == "sk-test-not-real"


def test_evaluation_companion_all_fields(tmp_path: Path) -> None:
    loaded = load_config(_project(tmp_path, MINIMAL_SIMULATION, **{EVALUATION: EVALUATION_YAML}))
    ev = loaded.evaluation
    assert ev is not None
    assert ev.evaluation_goal is not None
    assert ev.evaluation_goal.text == "Answer every question politely."
    rules_ev, judge = ev.evaluators
    assert (rules_ev.name, rules_ev.type, rules_ev.enabled, rules_ev.weight) == (
        "basic_checks",
        "rule_based",
        True,
        0.6,
    )
    assert rules_ev.rules is not None
    assert [r.check for r in rules_ev.rules] == [
        "output_not_empty",
        "contains",
        "not_contains",
        "matches_regex",
        "latency_under",
        "token_usage_under",
        "similarity",
        "success",
    ]
    contains = rules_ev.rules[1]
    assert (contains.target, contains.keywords) == ("output", ["order", "refund"])
    assert rules_ev.rules[3].pattern == "^[A-Z]"
    assert rules_ev.rules[4].budget_ms == 1500
    assert rules_ev.rules[5].max_tokens == 800
    sim_rule = rules_ev.rules[6]
    assert (sim_rule.expected_path, sim_rule.method, sim_rule.threshold) == (
        "metadata.expected",
        "difflib",
        0.7,
    )
    assert (judge.type, judge.enabled, judge.weight, judge.model) == (
        "llm_judge",
        False,
        0.4,
        "gpt-4o-mini",
    )
    assert judge.prompt_template == "Score {output} from 1 to 5"
    assert (judge.max_score, judge.parser) == (5, "first_number")
    assert judge.model_parameters == {"temperature": 0}
    assert (ev.aggregate.method, ev.aggregate.threshold, ev.aggregate.by_persona) == (
        "average",
        0.8,
        True,
    )
    assert (ev.limits.sample_rate, ev.limits.max_llm_calls, ev.limits.timeout_seconds) == (
        0.5,
        20,
        30,
    )
    assert ev.limits.cache == "evaluations/cache.jsonl"
    crit = ev.success_criteria
    assert crit is not None
    assert crit.performance is not None
    assert crit.performance.all_traces_successful is True
    assert crit.performance.avg_response_time is not None
    assert crit.performance.avg_response_time.enabled is True
    assert crit.performance.avg_response_time.threshold_ms == 2000
    assert crit.performance.max_response_time is not None
    assert crit.performance.max_response_time.enabled is False
    assert crit.performance.error_rate is not None
    assert crit.performance.error_rate.threshold_percent == 5
    assert crit.quality == {"basic_checks": True, "judge": False}
    assert crit.functionality == {
        "tool_calling": {"enabled": True, "required_tools": ["lookup_order"]}
    }


def test_snapshot_contains_simulation_and_companions(tmp_path: Path) -> None:
    path = _project(
        tmp_path,
        COMPLETE_EXAMPLE,
        **{PROJECT: PROJECT_YAML, INPUT: INPUT_YAML, EVALUATION: EVALUATION_YAML},
    )
    snap = load_config(path).snapshot()
    assert set(snap) == {"simulation", "project", "input", "evaluation"}
    assert snap["simulation"]["name"] == "my_agent_experiment"
    assert snap["simulation"]["runner"]["target"] == "examples.simple_agent:run"
    assert snap["project"]["metadata"]["service_context"].startswith("Online store")
    assert snap["input"]["personas"][0]["name"] == "novice_user"
    assert snap["evaluation"]["aggregate"]["method"] == "average"


def test_empty_companion_is_treated_as_all_defaults(tmp_path: Path) -> None:
    loaded = load_config(_project(tmp_path, MINIMAL_SIMULATION, **{PROJECT: "# nothing yet\n"}))
    assert loaded.project is not None
    assert loaded.project.name is None
    assert loaded.project.tags == []
    assert loaded.service_context is None


def test_companion_errors_name_the_companion_file(tmp_path: Path) -> None:
    path = _project(tmp_path, MINIMAL_SIMULATION, **{PROJECT: "name: p\ntagz: [a]\n"})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path.resolve().parent / 'project.yaml'}:2" in message
    assert "tagz" in message
    assert "did you mean 'tags'" in message


def test_companions_are_read_from_the_config_folder_only(tmp_path: Path) -> None:
    # A project.yaml elsewhere in the project is not a companion.
    path = _project(tmp_path, MINIMAL_SIMULATION, **{"project.yaml": "name: stray\n"})
    assert load_config(path).project is None


# --------------------------------------------------------------------------- legacy spellings


def test_legacy_runner_iterations_is_accepted(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    runner:
      target: "examples.my_agent:run"
      iterations: 10
    """
    assert load_config(_project(tmp_path, text)).simulation.iterations == 10


def test_legacy_runner_iterations_agreeing_with_top_level(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    iterations: 4
    runner:
      target: "a:b"
      iterations: 4
    """
    assert load_config(_project(tmp_path, text)).simulation.iterations == 4


def test_legacy_runner_iterations_disagreeing_is_an_error(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    iterations: 3
    runner:
      target: "a:b"
      iterations: 10
    """
    path = _project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path.resolve()}:{line_of(text, 'iterations: 10')}" in message
    assert "runner.iterations" in message
    assert "10" in message
    assert "3" in message


def test_legacy_output_block_is_accepted(tmp_path: Path) -> None:
    # seeds/001 shows exactly this block.
    text = """\
    name: t
    description: d
    runner:
      target: "examples.my_agent:run"
      iterations: 10
    output:
      directory: "experiments"
      format: jsonl
    """
    sim = load_config(_project(tmp_path, text)).simulation
    assert sim.output_directory == "experiments"
    assert sim.iterations == 10

    other = text.replace('"experiments"', "results/runs")
    sim2 = load_config(_project(tmp_path / "other", other)).simulation
    assert sim2.output_directory == "results/runs"


def test_legacy_output_directory_disagreeing_is_an_error(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    output_directory: experiments
    runner:
      target: "a:b"
    output:
      directory: results
    """
    path = _project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path.resolve()}:{line_of(text, 'directory: results')}" in message
    assert "output.directory" in message
    assert "results" in message
    assert "experiments" in message


def test_legacy_output_unknown_format_is_rejected(tmp_path: Path) -> None:
    text = MINIMAL_SIMULATION + "output:\n  directory: x\n  format: csv\n"
    with pytest.raises(ConfigError, match=r"output\.format"):
        load_config(_project(tmp_path, text))


def test_override_wins_over_legacy_runner_iterations(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\nrunner:\n  target: a:b\n  iterations: 10\n"
    loaded = load_config(_project(tmp_path, text), Overrides(iterations=2))
    assert loaded.simulation.iterations == 2


# --------------------------------------------------------------------------- runner target


def test_target_alone(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\nrunner:\n  target: my_agent:agent.handle\n"
    runner = load_config(_project(tmp_path, text)).simulation.runner
    assert runner.target_spec == "my_agent:agent.handle"


def test_module_path_and_function_name_alone(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    runner:
      module_path: src.agents.customer_support
      function_name: handle_request
    """
    runner = load_config(_project(tmp_path, text)).simulation.runner
    assert runner.target is None
    assert runner.target_spec == "src.agents.customer_support:handle_request"


def test_target_and_parts_that_agree(tmp_path: Path) -> None:
    # The complete example sets all three; they agree, so nothing is worth a notice.
    loaded = load_config(_project(tmp_path, COMPLETE_EXAMPLE))
    assert loaded.simulation.runner.target_spec == "examples.simple_agent:run"
    assert loaded.notices == []


@pytest.mark.parametrize(
    ("module_path", "function_name"),
    [("examples.other_agent", "run"), ("examples.simple_agent", "handle")],
)
def test_target_and_parts_that_disagree(
    tmp_path: Path, module_path: str, function_name: str
) -> None:
    # The earlier FluxLoop let target win; so does this loader, and says so in a notice.
    text = f"""\
    name: t
    description: d
    runner:
      module_path: {module_path}
      function_name: {function_name}
      target: "examples.simple_agent:run"
    """
    path = _project(tmp_path, text)
    loaded = load_config(path)
    assert loaded.simulation.runner.target_spec == "examples.simple_agent:run"
    (notice,) = loaded.notices
    assert f"{path.resolve()}:{line_of(text, 'target:')}" in notice
    assert "runner.target" in notice
    assert "takes precedence" in notice
    assert "examples.simple_agent:run" in notice
    assert repr(module_path) in notice
    assert repr(function_name) in notice


@pytest.mark.parametrize(
    ("runner_yaml", "needle"),
    [
        ("  function_name: run\n", "module_path"),
        ("  module_path: my_agent\n", "function_name"),
        ("  working_directory: .\n", "runner.target"),
    ],
    ids=["function-without-module", "module-without-function", "no-target"],
)
def test_incomplete_runner_target_is_an_error(
    tmp_path: Path, runner_yaml: str, needle: str
) -> None:
    text = "name: t\ndescription: d\nrunner:\n" + runner_yaml
    path = _project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path.resolve()) in message
    assert needle in message


# --------------------------------------------------------------------------- .env


def _unset(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``names`` absent, and have monkeypatch remove whatever the loader sets later."""
    for name in names:
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def test_dotenv_sets_missing_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("FLUXLOOP_RECORD_ARGS", "FLUXLOOP_RECORDING_FILE", "FLUXLOOP_TEST_DOTENV_X")
    _unset(monkeypatch, *names)
    root = tmp_path / "fluxloop" / "my-agent"
    write_tree(
        root,
        {
            ".env": """\
            # comment
            FLUXLOOP_RECORD_ARGS=true
            FLUXLOOP_RECORDING_FILE=recordings/args_recording.jsonl
            export FLUXLOOP_TEST_DOTENV_X="quoted value"
            """,
        },
    )
    load_config(_project(tmp_path, MINIMAL_SIMULATION))
    assert os.environ["FLUXLOOP_RECORD_ARGS"] == "true"
    assert os.environ["FLUXLOOP_RECORDING_FILE"] == "recordings/args_recording.jsonl"
    assert os.environ["FLUXLOOP_TEST_DOTENV_X"] == "quoted value"


def test_dotenv_never_overrides_existing_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unset(monkeypatch, "FLUXLOOP_TEST_DOTENV_NEW")
    monkeypatch.setenv("OPENAI_API_KEY", "from-environment")
    monkeypatch.setenv("FLUXLOOP_TEST_DOTENV_EMPTY", "")
    write_tree(
        tmp_path / "fluxloop" / "my-agent",
        {
            ".env": (
                "OPENAI_API_KEY=from-dotenv\n"
                "FLUXLOOP_TEST_DOTENV_EMPTY=from-dotenv\n"
                "FLUXLOOP_TEST_DOTENV_NEW=new\n"
            )
        },
    )
    load_config(_project(tmp_path, MINIMAL_SIMULATION))
    assert os.environ["OPENAI_API_KEY"] == "from-environment"
    # Set-but-empty is still "already set".
    assert os.environ["FLUXLOOP_TEST_DOTENV_EMPTY"] == ""
    assert os.environ["FLUXLOOP_TEST_DOTENV_NEW"] == "new"


def test_dotenv_is_read_from_project_root_not_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unset(monkeypatch, "FLUXLOOP_TEST_DOTENV_ROOT", "FLUXLOOP_TEST_DOTENV_CONFIGS")
    root = tmp_path / "fluxloop" / "my-agent"
    write_tree(
        root,
        {
            ".env": "FLUXLOOP_TEST_DOTENV_ROOT=yes\n",
            "configs/.env": "FLUXLOOP_TEST_DOTENV_CONFIGS=yes\n",
        },
    )
    load_config(_project(tmp_path, MINIMAL_SIMULATION))
    assert os.environ.get("FLUXLOOP_TEST_DOTENV_ROOT") == "yes"
    assert "FLUXLOOP_TEST_DOTENV_CONFIGS" not in os.environ


def test_no_dotenv_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _unset(monkeypatch, "FLUXLOOP_RECORD_ARGS")
    load_config(_project(tmp_path, MINIMAL_SIMULATION))
    assert "FLUXLOOP_RECORD_ARGS" not in os.environ


# --------------------------------------------------------------------------- overrides


def test_overrides_apply_to_every_mapped_setting(tmp_path: Path) -> None:
    overrides = Overrides(
        iterations=7,
        output_directory="out",
        experiment_name="renamed",
        multi_turn=True,
        max_turns=20,
        auto_approve_tools=False,
        persona_override="expert_user",
        supervisor_provider="mock",
        supervisor_model="gpt-4o",
        supervisor_temperature=0.3,
        supervisor_api_key="sk-override",
    )
    loaded = load_config(_project(tmp_path, COMPLETE_EXAMPLE), overrides)
    sim = loaded.simulation
    assert sim.iterations == 7
    assert sim.output_directory == "out"
    assert sim.name == "renamed"
    assert loaded.experiment_name == "renamed"
    mt = sim.multi_turn
    assert (mt.enabled, mt.max_turns, mt.auto_approve_tools) == (True, 20, False)
    assert mt.persona_override == "expert_user"
    sup = mt.supervisor
    assert (sup.provider, sup.model, sup.temperature, sup.api_key) == (
        "mock",
        "gpt-4o",
        0.3,
        "sk-override",
    )
    # Untouched settings keep their file values.
    assert sim.runner.target_spec == "examples.simple_agent:run"
    assert sup.system_prompt is not None
    assert loaded.overrides is overrides


def test_overrides_do_not_mutate_between_loads(tmp_path: Path) -> None:
    path = _project(tmp_path, MINIMAL_SIMULATION)
    assert load_config(path, Overrides(max_turns=30)).simulation.multi_turn.max_turns == 30
    assert load_config(path).simulation.multi_turn.max_turns == 8


def test_supervisor_api_key_is_not_in_overrides_repr() -> None:
    assert "sk-secret" not in repr(Overrides(supervisor_api_key="sk-secret"))


def test_missing_config_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "configs" / "simulation.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    assert "not found" in str(info.value)
