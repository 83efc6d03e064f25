"""Config files in the shapes the earlier FluxLoop releases (fluxloop-cli 0.2.0-0.2.36) wrote.

Real projects must load unchanged: every key those releases wrote is accepted, modelled
strictly (typos are still errors), and a key that is accepted but not acted on produces a
notice naming the file and key. The trees under ``tests/fixtures/legacy_configs`` carry the
generated shapes (keys, nesting, YAML quirks) with our own values.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.config_helpers import (
    EVALUATION,
    GENERATED,
    INPUT,
    MINIMAL_SIMULATION,
    PROJECT,
    SIMULATION,
    line_of,
    write_tree,
)

from pytest_fluxloop.config import load_config
from pytest_fluxloop.config import loader as config_loader
from pytest_fluxloop.config.errors import suggest_key
from pytest_fluxloop.config.loader import LoadedConfig, fluxloop_root_for
from pytest_fluxloop.config.models import InputsFile
from pytest_fluxloop.config.schema import config_json_schema
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.plan.inputs import load_inputs

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "legacy_configs"


@pytest.fixture(autouse=True)
def _undo_dotenv() -> Iterator[None]:
    """Take out whatever a ``.env`` read during the test put into the environment."""
    before = dict(config_loader.DOTENV_SET)
    yield
    for key, value in list(config_loader.DOTENV_SET.items()):
        if key not in before and os.environ.get(key) == value:
            del os.environ[key]
    config_loader.DOTENV_SET.clear()
    config_loader.DOTENV_SET.update(before)


def _copy_tree(name: str, tmp_path: Path) -> Path:
    """Copy fixture tree ``name`` to ``<tmp>/fluxloop/demo``; return its simulation.yaml."""
    project = tmp_path / "fluxloop" / "demo"
    shutil.copytree(FIXTURES / name, project)
    return project / SIMULATION


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (with the minimal simulation.yaml unless given) under a project."""
    root = tmp_path / "fluxloop" / "demo"
    write_tree(root, {SIMULATION: MINIMAL_SIMULATION, **files})
    return root / SIMULATION


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def _line(message: str, where: str) -> str:
    """The line of ``message`` that starts at ``where`` (``file:line``)."""
    for line in message.splitlines():
        if line.strip().startswith(where + ":"):
            return line
    raise AssertionError(f"nothing reported at {where} in:\n{message}")


def _where(path: Path, text: str, needle: str) -> str:
    return f"{path.resolve()}:{line_of(text, needle)}"


def _sim_with_runner(runner: str) -> str:
    """simulation.yaml text whose runner block is ``runner`` (indented by two spaces)."""
    return "name: t\nrunner:\n" + "".join(f"  {line}\n" for line in runner.splitlines())


# --------------------------------------------------------------------------- whole trees


def test_0_2_0_tree_loads_with_strategy_mappings(tmp_path: Path) -> None:
    loaded = load_config(_copy_tree("v0_2_0", tmp_path))
    assert loaded.input is not None
    assert loaded.input.variation_strategies == ["rephrase", "concise", "error_prone"]
    assert loaded.simulation.runner.target_spec == "agents.echo:run"
    # Evaluated now (pytest_fluxloop.evaluation compiles it): no "read, not run" notice.
    assert loaded.notices == []


def test_0_2_21_indented_evaluation_document_loads(tmp_path: Path) -> None:
    loaded = load_config(_copy_tree("v0_2_21", tmp_path))
    ev = loaded.evaluation
    assert ev is not None
    assert ev.evaluation_goal is not None
    assert ev.evaluation_goal.text.startswith("Answers should be short")
    judge = ev.evaluators[4]
    # A double-quoted scalar continued on a column-0 line folds into one line.
    assert judge.metadata == {"sample_response": "Score: 8/10 Reason: Direct and polite."}
    budget = ev.evaluators[1].rules
    assert budget is not None
    assert budget[0].max_total_tokens == 2500
    assert (budget[1].max_prompt_tokens, budget[1].max_completion_tokens) == (1500, 900)
    wording = ev.evaluators[2].rules
    assert wording is not None
    assert wording[0].case_sensitive is True
    assert wording[1].flags == "IGNORECASE"
    assert wording[2].flags == ["multiline", "DOTALL"]
    similarity = ev.evaluators[3].rules
    assert similarity is not None
    assert similarity[0].min_score == 0.6
    analysis = ev.additional_analysis
    assert analysis is not None and analysis.persona is not None
    assert analysis.persona.focus_personas == ["newcomer"]
    assert analysis.comparison is not None and analysis.comparison.baseline_path == ""
    assert ev.report is not None
    assert (ev.report.style, ev.report.tone, ev.report.output) == ("detailed", "technical", "md")
    assert ev.report.sections is not None and ev.report.sections.success_examples is True
    advanced = ev.advanced
    assert advanced is not None and advanced.alerts is not None
    assert advanced.alerts.conditions[0].operator == ">="
    assert advanced.outliers is not None and advanced.outliers.handling == "remove"
    assert loaded.simulation.runner.python_path is None
    assert loaded.notices == []  # evaluated now: no "read, not run" notice


def test_0_2_36_tree_loads_with_new_evaluation_layout_and_runner_keys(tmp_path: Path) -> None:
    loaded = load_config(_copy_tree("v0_2_36", tmp_path))
    sim = loaded.simulation
    assert sim.description == ""  # absent in the file: optional
    runner = sim.runner
    assert runner.args == {"part": "intro", "provider": "openai", "overwrite_db": False}
    assert runner.factory == "agents.echo:build"
    assert runner.factory_kwargs == {"mode": "fast"}
    assert runner.stream_output_path == "message.delta"
    assert runner.environment_vars == {
        "APP_MODE": "test",
        "APP_WORKERS": "2",
        "APP_VERBOSE": "true",
    }
    assert runner.retry_delay == 2.0
    ev = loaded.evaluation
    assert ev is not None and ev.metrics is not None
    assert ev.metrics.task_completion is not None
    assert ev.metrics.task_completion.thresholds is not None
    assert ev.metrics.task_completion.thresholds.good == 75
    assert ev.metrics.relevance is not None and ev.metrics.relevance.enabled is False
    assert ev.efficiency is not None and ev.efficiency.conversation_depth is not None
    assert ev.efficiency.conversation_depth.outlier_mode == "absolute"
    assert ev.efficiency.conversation_depth.absolute_threshold == 8
    assert ev.efficiency.persona_gap is not None and ev.efficiency.persona_gap.enabled
    assert ev.output is not None and ev.output.templates is not None
    assert ev.output.templates.deep_analysis == "analysis_template.txt"
    advanced = ev.advanced
    assert advanced is not None and advanced.llm_judge is not None
    assert (advanced.llm_judge.model, advanced.llm_judge.temperature) == ("gpt-5.1", 0.0)
    assert (advanced.llm_concurrency, advanced.llm_retries) == (2, 1)
    assert advanced.filters is not None
    assert advanced.filters.exclude_trace_ids == ["trace-to-skip"]
    assert advanced.overall_success is not None and advanced.overall_success.use_default_rules
    assert loaded.notices == []  # the 0.2.36 blocks are evaluated (evaluation/spec.py)
    assert loaded.service_context == "A help desk for a small online shop."


def test_single_file_config_splits_companion_keys(tmp_path: Path) -> None:
    path = _copy_tree("single_file", tmp_path)
    loaded = load_config(path)
    config = path.resolve()
    assert loaded.sources == {
        "simulation": config,
        "project": config,
        "input": config,
        "evaluation": config,
    }
    assert loaded.simulation.name == "all_in_one"
    assert loaded.simulation.output is None  # the report-file block is evaluation's
    assert loaded.project is not None
    assert (loaded.project.name, loaded.project.version) == (None, "3.1.0")
    assert loaded.project.tags == ["single"]
    assert loaded.service_context == "Answers billing questions."
    assert loaded.input is not None
    assert loaded.input.inputs_file == "inputs/single.yaml"
    assert loaded.input.variation_strategies == ["verbose"]
    assert loaded.source_of("input", "inputs_file") == config
    assert loaded.evaluation is not None and loaded.evaluation.output is not None
    assert loaded.evaluation.output.summary_file == "billing_summary.md"
    assert loaded.evaluation.aggregate.method == "average"
    assert loaded.notices == []
    snap = loaded.snapshot()
    assert snap["input"]["inputs_file"] == "inputs/single.yaml"
    assert "personas" not in snap["simulation"]


def test_single_file_inputs_file_is_used_by_the_plan(tmp_path: Path) -> None:
    path = _copy_tree("single_file", tmp_path)
    inputs = path.parent.parent / "inputs" / "single.yaml"
    inputs.parent.mkdir()
    shutil.copy(FIXTURES / "inputs" / "generated_early.yaml", inputs)
    found = load_inputs(load_config(path))
    assert found.source == str(inputs.resolve())
    assert [item.persona for item in found.items] == ["newcomer", "veteran"]


# --------------------------------------------------------------------------- inputs files


@pytest.mark.parametrize("name", ["generated_early.yaml", "generated_0_2_36.yaml"])
def test_generated_inputs_files_load_with_personas(tmp_path: Path, name: str) -> None:
    path = _copy_tree("v0_2_0", tmp_path)
    target = path.parent.parent / GENERATED
    target.parent.mkdir()
    shutil.copy(FIXTURES / "inputs" / name, target)
    items = load_inputs(load_config(path)).items
    assert [(item.persona, item.persona_description) for item in items] == [
        ("newcomer", "Someone trying the service for the first time"),
        ("veteran", "Has used the service for years"),
    ]
    assert items[0].metadata["strategy"] == "rephrase"
    assert items[0].metadata["base_index"] == 0


def test_inputs_file_provenance_blocks_are_accepted() -> None:
    import yaml

    data = yaml.safe_load((FIXTURES / "inputs" / "generated_early.yaml").read_text())
    parsed = InputsFile.model_validate(data)
    assert isinstance(parsed.generated_at, dt.datetime)  # YAML reads the unquoted time
    assert parsed.metadata is not None and parsed.metadata["llm_model"] == "gpt-4o-mini"
    assert parsed.entries[0].metadata["prompt_hash"] == "0f3a9c"
    quoted = InputsFile.model_validate({**data, "generated_at": "2025-03-04T05:06:07Z"})
    assert quoted.generated_at == "2025-03-04T05:06:07Z"


def test_0_2_36_persona_summaries_are_kept_apart() -> None:
    import yaml

    data = yaml.safe_load((FIXTURES / "inputs" / "generated_0_2_36.yaml").read_text())
    parsed = InputsFile.model_validate(data)
    assert set(parsed.persona_summaries) == {"newcomer", "veteran"}
    assert parsed.entries[1].prompt_hash == "9d41aa"
    assert parsed.stats is not None and parsed.generation_config is not None


def test_unknown_top_level_keys_of_an_inputs_file_are_still_errors(tmp_path: Path) -> None:
    # Without the generator's blocks a persona-like list is a typo, not a summary; and a
    # list of mappings is never a summary.
    path = _project(tmp_path, {})
    cfg = load_config(path)
    for text, key in [
        ("inputs:\n  - input: hi\nnewcomer: [hi]\n", "newcomer"),
        ("stats: {}\ninputs:\n  - input: hi\ninptus:\n  - input: hi\n", "inptus"),
    ]:
        write_tree(path.parent.parent, {GENERATED: text})
        with pytest.raises(ConfigError) as info:
            load_inputs(cfg)
        line = _line(str(info.value), _where(path.parent.parent / GENERATED, text, key))
        assert "unknown key" in line


def test_generated_at_is_not_suggested_for_a_shared_prefix() -> None:
    assert suggest_key("generated_at", ["generated_inputs", "inputs", "stats"]) is None
    # Real typos and abbreviations still get a suggestion.
    assert suggest_key("genrated_inputs", ["generated_inputs", "inputs"]) == "generated_inputs"
    assert suggest_key("persnoa", ["persona", "persona_description"]) == "persona"
    assert suggest_key("output_dir", ["output", "output_directory"]) == "output_directory"
    assert suggest_key("zzz", ["iterations", "runner"]) is None


def test_unknown_key_sharing_a_prefix_gets_no_suggestion(tmp_path: Path) -> None:
    text = "name: t\nrunner:\n  target: a:b\nmulti_turn:\n  max_time: 3\n"
    path = _project(tmp_path, {SIMULATION: text})
    line = _line(_error(path), _where(path, text, "max_time"))
    assert "unknown key" in line
    assert "did you mean" not in line


# --------------------------------------------------------------------------- strategies


@pytest.mark.parametrize("key", ["type", "name", "strategy", "value"])
def test_strategy_mappings_become_names(tmp_path: Path, key: str) -> None:
    text = f"variation_strategies:\n  - {key}: typo\n  - concise\n"
    text += f"input_generation:\n  strategies:\n    - {key}: adversarial\n"
    loaded = load_config(_project(tmp_path, {INPUT: text}))
    assert loaded.input is not None
    assert loaded.input.variation_strategies == ["typo", "concise"]
    assert loaded.input.input_generation is not None
    assert loaded.input.input_generation.strategies == ["adversarial"]


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("{type: rephrase, count: 2}", ["keys type, count", "exactly one of"]),
        ("{}", ["no keys"]),
        ("{kind: rephrase}", ["keys kind"]),
        ("{type: rephrse}", ["rephrse", "did you mean 'rephrase'"]),
        ("rephrse", ["rephrse", "did you mean 'rephrase'"]),
    ],
)
def test_bad_strategy_entries_name_the_entry(tmp_path: Path, entry: str, words: list[str]) -> None:
    text = f"variation_strategies:\n  - verbose\n  - {entry}\n"
    path = _project(tmp_path, {INPUT: text})
    line = _line(_error(path), f"{(path.parent / 'input.yaml').resolve()}:3")
    assert "variation_strategies[1]" in line
    for word in words:
        assert word in line


# --------------------------------------------------------------------------- runner fields


def test_runner_new_fields_default_to_empty(tmp_path: Path) -> None:
    runner = load_config(_project(tmp_path, {})).simulation.runner
    assert (runner.args, runner.factory_kwargs, runner.environment_vars) == ({}, {}, {})
    assert (runner.factory, runner.stream_output_path, runner.retry_delay) == (None, None, None)


@pytest.mark.parametrize(
    ("snippet", "key", "words"),
    [
        ("factory: make_agent", "factory", ["module:callable"]),
        ("factory: 'a:'", "factory", ["module:callable"]),
        ("factory: 'my mod:make'", "factory", ["module:callable"]),
        ("stream_output_path: 'a..b'", "stream_output_path", ["dotted path"]),
        ("retry_delay: 301", "retry_delay", ["out of range", "300"]),
        ("retry_delay: -1", "retry_delay", ["out of range"]),
        ("environment_vars: {1ST: x}", "environment_vars", ["'1ST'", "variable name"]),
        ("environment_vars: {A-B: x}", "environment_vars", ["'A-B'", "variable name"]),
        ("environment_vars: {EMPTY: null}", "environment_vars", ["EMPTY", "null"]),
        ("environment_vars: {LIST: [1]}", "environment_vars", ["LIST", "list"]),
        ("args: [1, 2]", "args", ["dict"]),
        ("use_docker: 'no'", "use_docker", ["bool"]),
    ],
)
def test_runner_field_errors(tmp_path: Path, snippet: str, key: str, words: list[str]) -> None:
    text = _sim_with_runner(f"target: a:b\n{snippet}")
    path = _project(tmp_path, {SIMULATION: text})
    line = _line(_error(path), _where(path, text, snippet.split(":")[0] + ":"))
    assert f"runner.{key}" in line
    for word in words:
        assert word in line


def test_factory_accepts_dotted_callables(tmp_path: Path) -> None:
    text = _sim_with_runner("target: pkg.mod:Agent.run\nfactory: pkg.mod:Agent.create")
    runner = load_config(_project(tmp_path, {SIMULATION: text})).simulation.runner
    assert runner.factory == "pkg.mod:Agent.create"


def _notices_for(tmp_path: Path, runner: str) -> tuple[Path, str, list[str]]:
    text = _sim_with_runner("target: a:b\n" + runner)
    path = _project(tmp_path, {SIMULATION: text})
    return path, text, load_config(path).notices


@pytest.mark.parametrize(
    ("runner", "key", "words"),
    [
        ("use_docker: false", "use_docker", ["ignored", "pytest process"]),
        ("docker_image: my/image:1", "docker_image", ["ignored", "Docker"]),
        ("docker_build_context: .", "docker_build_context", ["ignored"]),
        ("docker_volumes: ['/data:/data']", "docker_volumes", ["ignored"]),
        ("setup_commands: []", "setup_commands", ["empty", "ignored"]),
        (
            "requirements_file: requirements.txt",
            "requirements_file",
            ["pip install -r requirements.txt"],
        ),
        ("guards: {max_calls: 3}", "guards", ["not supported"]),
    ],
)
def test_out_of_process_runner_keys_are_notices(
    tmp_path: Path, runner: str, key: str, words: list[str]
) -> None:
    path, text, notices = _notices_for(tmp_path, runner)
    (notice,) = notices
    assert notice.startswith(_where(path, text, key + ":") + ": ")
    assert f"runner.{key}" in notice
    assert "remove" in notice
    for word in words:
        assert word in notice


def test_use_docker_true_is_an_error_naming_the_docker_keys(tmp_path: Path) -> None:
    text = _sim_with_runner("target: a:b\nuse_docker: true\ndocker_image: img\ndocker_volumes: []")
    path = _project(tmp_path, {SIMULATION: text})
    line = _line(_error(path), _where(path, text, "use_docker"))
    assert "runner.use_docker" in line
    assert "inside your container" in line
    assert "runner.docker_image" in line
    assert "runner.docker_volumes" in line


def test_setup_commands_with_commands_is_an_error(tmp_path: Path) -> None:
    text = _sim_with_runner("target: a:b\nsetup_commands:\n  - make deps")
    path = _project(tmp_path, {SIMULATION: text})
    line = _line(_error(path), _where(path, text, "setup_commands"))
    assert "runner.setup_commands" in line
    assert "before the experiment" in line
    assert "CI" in line
    assert "remove the key" in line


# --------------------------------------------------------------------------- target


def test_target_wins_over_disagreeing_parts_with_a_notice(tmp_path: Path) -> None:
    path, text, notices = _notices_for(tmp_path, "module_path: other\nfunction_name: go")
    loaded = load_config(path)
    assert loaded.simulation.runner.target_spec == "a:b"
    (notice,) = notices
    assert notice.startswith(_where(path, text, "target:"))
    assert "takes precedence" in notice
    assert "'other'" in notice and "'go'" in notice


def test_target_with_only_a_module_path_is_accepted_with_a_notice(tmp_path: Path) -> None:
    _, _, notices = _notices_for(tmp_path, "module_path: other")
    (notice,) = notices
    assert "runner.module_path ('other') is ignored" in notice


def test_agreeing_target_and_parts_give_no_notice(tmp_path: Path) -> None:
    _, _, notices = _notices_for(tmp_path, "module_path: a\nfunction_name: b")
    assert notices == []


def test_parts_alone_still_work(tmp_path: Path) -> None:
    text = "name: t\nrunner:\n  module_path: pkg.agent\n  function_name: run\n"
    loaded = load_config(_project(tmp_path, {SIMULATION: text}))
    assert loaded.simulation.runner.target_spec == "pkg.agent:run"
    assert loaded.notices == []


def test_description_is_optional(tmp_path: Path) -> None:
    text = "name: t\nrunner:\n  target: a:b\n"
    assert load_config(_project(tmp_path, {SIMULATION: text})).simulation.description == ""


# --------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("text", "needle", "words"),
    [
        ("advanced:\n  llm_judge:\n    modle: x\n", "modle", ["did you mean 'model'"]),
        ("metrics:\n  task_completon: {enabled: true}\n", "task_completon", ["task_completion"]),
        ("efficiency:\n  latency:\n    outlier_mode: median\n", "outlier_mode", ["statistical"]),
        ("report:\n  style: fancy\n", "style", ["quick", "standard", "detailed"]),
        ("output:\n  sumary_file: s.md\n", "sumary_file", ["did you mean 'summary_file'"]),
        ("advanced:\n  llm_concurrency: 40\n", "llm_concurrency", ["out of range", "16"]),
        ("advanced:\n  overall_success:\n    use_default: true\n", "use_default", ["unknown"]),
        (
            "additional_analysis:\n  persona:\n    focus_persona: []\n",
            "focus_persona",
            ["did you mean 'focus_personas'"],
        ),
        (
            "evaluators:\n  - name: e\n    type: rule_based\n    rules:\n"
            "      - check: token_usage_under\n",
            "check",
            ["max_tokens", "max_total_tokens"],
        ),
        (
            "evaluators:\n  - name: e\n    type: rule_based\n    rules:\n"
            "      - check: matches_regex\n        pattern: x\n        flags: [IGNORCASE]\n",
            "flags",
            ["IGNORCASE", "IGNORECASE, MULTILINE, DOTALL"],
        ),
        (
            "evaluators:\n  - name: e\n    type: rule_based\n    rules:\n"
            "      - check: contains\n        keywords: [a]\n        case_sensitive: 'yes'\n",
            "case_sensitive",
            ["bool"],
        ),
    ],
)
def test_evaluation_typos_are_still_errors(
    tmp_path: Path, text: str, needle: str, words: list[str]
) -> None:
    path = _project(tmp_path, {EVALUATION: text})
    message = _error(path)
    line = _line(message, _where(path.parent / "evaluation.yaml", text, needle))
    for word in words:
        assert word in line


def test_evaluation_settings_load_without_notices(tmp_path: Path) -> None:
    # evaluation.yaml is evaluated now (pytest_fluxloop.evaluation): no "read, not run" notice.
    assert load_config(_project(tmp_path / "none", {})).notices == []
    empty = load_config(_project(tmp_path / "empty", {EVALUATION: "# later\n"}))
    assert empty.evaluation is not None
    assert empty.notices == []
    goal = load_config(_project(tmp_path / "goal", {EVALUATION: "evaluation_goal: Be kind\n"}))
    assert goal.evaluation is not None and goal.evaluation.evaluation_goal is not None
    assert goal.evaluation.evaluation_goal.text == "Be kind"  # the bare-string form
    assert goal.notices == []


# --------------------------------------------------------------------------- single file


def test_same_value_in_both_files_is_fine(tmp_path: Path) -> None:
    sim = MINIMAL_SIMULATION + "tags: [a, b]\nvariation_count: 2\n"
    loaded = load_config(
        _project(
            tmp_path,
            {SIMULATION: sim, PROJECT: "tags: [a, b]\n", INPUT: "variation_count: 2\n"},
        )
    )
    assert loaded.project is not None and loaded.project.tags == ["a", "b"]
    assert loaded.input is not None and loaded.input.variation_count == 2
    assert loaded.source_of("input", "variation_count") == loaded.sources["input"]


def test_different_values_in_both_files_name_both_places(tmp_path: Path) -> None:
    sim = MINIMAL_SIMULATION + "inputs_file: inputs/a.yaml\n"
    inp = "personas:\n  - name: p\ninputs_file: inputs/b.yaml\n"
    path = _project(tmp_path, {SIMULATION: sim, INPUT: inp})
    message = _error(path)
    line = _line(message, _where(path, sim, "inputs_file"))
    assert _where(path.parent / "input.yaml", inp, "inputs_file") in line
    assert "different value" in line


def test_single_file_errors_point_at_simulation_yaml(tmp_path: Path) -> None:
    sim = MINIMAL_SIMULATION + "personas:\n  - name: p\n    goal: [x]\n"
    path = _project(tmp_path, {SIMULATION: sim, INPUT: "variation_count: 2\n"})
    line = _line(_error(path), _where(path, sim, "goal:"))
    assert "personas[0].goal" in line
    assert "did you mean 'goals'" in line


def test_simulation_output_block_keeps_its_older_meaning(tmp_path: Path) -> None:
    sim = MINIMAL_SIMULATION + "output:\n  directory: runs\n  format: jsonl\n"
    loaded = load_config(_project(tmp_path, {SIMULATION: sim}))
    assert loaded.simulation.output_directory == "runs"
    assert loaded.evaluation is None
    mixed = MINIMAL_SIMULATION + "output:\n  directory: runs\n  summary_file: s.md\n"
    path = _project(tmp_path / "mixed", {SIMULATION: mixed})
    line = _line(_error(path), _where(path, mixed, "summary_file"))
    assert "output.summary_file: unknown key" in line


def test_evaluation_output_in_both_files_must_agree(tmp_path: Path) -> None:
    sim = MINIMAL_SIMULATION + "output:\n  summary_file: a.md\n"
    ev = "output:\n  summary_file: b.md\n"
    path = _project(tmp_path, {SIMULATION: sim, EVALUATION: ev})
    line = _line(_error(path), _where(path, sim, "output:"))
    assert "evaluation.yaml" in line


# --------------------------------------------------------------------------- .env


def test_dotenv_reads_project_then_fluxloop_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("FLX_LEGACY_BOTH", "FLX_LEGACY_ROOT_ONLY", "FLX_LEGACY_EMPTY", "FLX_LEGACY_SET")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLX_LEGACY_SET", "from-environment")
    path = _project(
        tmp_path,
        {
            ".env": "FLX_LEGACY_BOTH=project\nFLX_LEGACY_EMPTY=\n",
            "../.env": (
                "FLX_LEGACY_BOTH=root\nFLX_LEGACY_ROOT_ONLY=root\n"
                "FLX_LEGACY_EMPTY=\nFLX_LEGACY_SET=root\n"
            ),
        },
    )
    loaded = load_config(path)
    assert os.environ["FLX_LEGACY_BOTH"] == "project"
    assert os.environ["FLX_LEGACY_ROOT_ONLY"] == "root"
    assert os.environ["FLX_LEGACY_SET"] == "from-environment"
    assert "FLX_LEGACY_EMPTY" not in os.environ  # an empty value would look like a set key
    assert config_loader.DOTENV_SET["FLX_LEGACY_BOTH"] == "project"
    assert config_loader.DOTENV_SET["FLX_LEGACY_ROOT_ONLY"] == "root"
    assert "FLX_LEGACY_SET" not in config_loader.DOTENV_SET
    root = tmp_path / "fluxloop"
    assert loaded.env_files == [root / "demo" / ".env", root / ".env"]


def test_unrelated_parent_dotenv_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLX_LEGACY_HOME", raising=False)
    project = tmp_path / "home" / "my-agent"
    write_tree(
        tmp_path / "home",
        {".env": "FLX_LEGACY_HOME=home\n", f"my-agent/{SIMULATION}": MINIMAL_SIMULATION},
    )
    loaded = load_config(project / SIMULATION)
    assert "FLX_LEGACY_HOME" not in os.environ
    assert loaded.env_files == []


def test_fluxloop_root_rule() -> None:
    assert fluxloop_root_for(Path("/w/fluxloop/demo")) == Path("/w/fluxloop")
    assert fluxloop_root_for(Path("/home/me/demo")) is None
    assert fluxloop_root_for(Path("/")) is None


# --------------------------------------------------------------------------- schema


def test_json_schema_lists_the_earlier_keys() -> None:
    runner = config_json_schema("simulation")["$defs"]["RunnerConfig"]["properties"]
    for key in ("args", "factory", "factory_kwargs", "stream_output_path", "environment_vars"):
        assert key in runner
    evaluation = config_json_schema("evaluation")["properties"]
    for key in ("additional_analysis", "report", "advanced", "metrics", "efficiency", "output"):
        assert key in evaluation
    inputs = config_json_schema("inputs")["properties"]
    assert "generated_at" in inputs
    strategies = config_json_schema("input")["properties"]["variation_strategies"]
    assert "anyOf" in strategies["items"]  # a name, or the {type: name} mapping


def test_loaded_config_contract() -> None:
    # Attribute names other layers use.
    fields = LoadedConfig.__dataclass_fields__
    for name in ("notices", "sources", "env_files", "inline_keys"):
        assert name in fields
