"""``fluxloop init project`` scaffolding, plus ``config schema`` and ``--version``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli_helpers import clean_env, describe, run_cli

from pytest_fluxloop.cli.scaffold import ScaffoldError, render_project, scaffold_project
from pytest_fluxloop.config import EvaluationConfig, InputConfig, ProjectConfig, load_config
from pytest_fluxloop.config.models import InputsFile
from pytest_fluxloop.plan.cases import plan_experiment

EXPECTED_FILES = {
    "configs/simulation.yaml",
    "configs/project.yaml",
    "configs/input.yaml",
    "configs/evaluation.yaml",
    "inputs/generated.yaml",
    "agent.py",
    ".gitignore",
    "README.md",
}

# Every key of seeds/000's "Complete Example", as dotted paths.
SEED_000_KEYS = [
    "name",
    "description",
    "iterations",
    "parallel_runs",
    "run_delay_seconds",
    "seed",
    "runner.module_path",
    "runner.function_name",
    "runner.target",
    "runner.working_directory",
    "runner.python_path",
    "runner.timeout_seconds",
    "runner.max_retries",
    "replay_args.enabled",
    "replay_args.recording_file",
    "replay_args.override_param_path",
    "multi_turn.enabled",
    "multi_turn.max_turns",
    "multi_turn.auto_approve_tools",
    "multi_turn.persona_override",
    "multi_turn.supervisor.provider",
    "multi_turn.supervisor.model",
    "multi_turn.supervisor.system_prompt",
    "multi_turn.supervisor.metadata.scripted_questions",
    "multi_turn.supervisor.metadata.mock_decision",
    "multi_turn.supervisor.metadata.mock_reason",
    "multi_turn.supervisor.metadata.mock_closing",
    "output_directory",
    "save_traces",
    "save_aggregated_metrics",
]


def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"missing key {dotted}"
        node = node[part]
    return node


def _files(project: Path) -> set[str]:
    return {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    proc = run_cli("init", "project", "demo", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    return tmp_path / "fluxloop" / "demo"


# --------------------------------------------------------------------------- init via the CLI


def test_init_creates_the_project_and_prints_next_steps(tmp_path: Path) -> None:
    proc = run_cli("init", "project", "demo", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    project = tmp_path / "fluxloop" / "demo"
    assert _files(project) == EXPECTED_FILES
    assert "cd fluxloop/demo" in proc.stdout
    assert "fluxloop run experiment --yes" in proc.stdout


def test_init_custom_root(tmp_path: Path) -> None:
    proc = run_cli("init", "project", "my-agent", "--root", "sims", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert _files(tmp_path / "sims" / "my-agent") == EXPECTED_FILES
    assert "--root sims" in proc.stdout


def test_simulation_yaml_has_every_seed_field(demo: Path) -> None:
    text = (demo / "configs" / "simulation.yaml").read_text()
    data = yaml.safe_load(text)
    for key in SEED_000_KEYS:
        _get(data, key)
    assert data["runner"]["target"] == "agent:run"
    assert data["runner"]["working_directory"] == "."
    assert data["runner"]["timeout_seconds"] == 30
    assert data["runner"]["max_retries"] == 1
    assert data["multi_turn"]["enabled"] is False
    supervisor = data["multi_turn"]["supervisor"]
    assert supervisor["provider"] == "mock"
    assert len(supervisor["metadata"]["scripted_questions"]) >= 2
    assert text.count("#") >= 10, "the template should be commented like seeds/000"


def test_scaffolded_configs_load_and_plan(demo: Path) -> None:
    loaded = load_config(demo / "configs" / "simulation.yaml")
    assert loaded.project_root == demo.resolve()
    assert loaded.project is not None and loaded.project.name == "demo"
    assert loaded.project.metadata.service_context
    assert loaded.input is not None and loaded.evaluation is not None
    plan = plan_experiment(loaded)
    assert plan.total == 3
    assert {case.persona for case in plan.cases} == {"novice_user", "expert_user"}


def test_companion_files_have_the_documented_shapes(demo: Path) -> None:
    project = yaml.safe_load((demo / "configs" / "project.yaml").read_text())
    ProjectConfig.model_validate(project)
    assert {"name", "description", "version", "tags", "metadata"} <= set(project)
    assert {"team", "environment", "service_context"} <= set(project["metadata"])

    inputs_cfg = yaml.safe_load((demo / "configs" / "input.yaml").read_text())
    InputConfig.model_validate(inputs_cfg)
    assert inputs_cfg["inputs_file"] == "inputs/generated.yaml"
    assert inputs_cfg["input_generation"]["mode"] == "deterministic"
    assert inputs_cfg["base_inputs"] and inputs_cfg["variation_strategies"]
    for persona in inputs_cfg["personas"]:
        assert {
            "name",
            "description",
            "characteristics",
            "language",
            "expertise_level",
            "goals",
        } <= set(persona)

    evaluation = yaml.safe_load((demo / "configs" / "evaluation.yaml").read_text())
    EvaluationConfig.model_validate(evaluation)
    assert evaluation["evaluation_goal"]["text"]
    [evaluator] = evaluation["evaluators"]
    assert evaluator["type"] == "rule_based"
    assert {rule["check"] for rule in evaluator["rules"]} == {"output_not_empty", "latency_under"}
    assert "aggregate" in evaluation

    generated = yaml.safe_load((demo / "inputs" / "generated.yaml").read_text())
    InputsFile.model_validate(generated)
    assert len(generated["inputs"]) == 3
    for entry in generated["inputs"]:
        assert entry["input"] and entry["metadata"]["persona"]
        assert entry["metadata"]["persona_description"]

    assert "experiments/" in (demo / ".gitignore").read_text().splitlines()
    assert "fluxloop run experiment" in (demo / "README.md").read_text()


def test_agent_is_deterministic_and_uses_the_facade(demo: Path) -> None:
    source = (demo / "agent.py").read_text()
    assert "import fluxloop" in source and "@fluxloop.agent()" in source
    assert "def run(input_text: str, persona: str | None = None) -> str:" in source
    code = (
        "import agent\n"
        "a = agent.run('Where is my order?')\n"
        "b = agent.run('Where is my order?', persona='expert_user')\n"
        "assert a == agent.run('Where is my order?')\n"
        "assert isinstance(a, str) and a and isinstance(b, str) and b\n"
        "print(a)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=demo,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "order" in proc.stdout.lower()


def test_hyphenated_name_gives_valid_configs(tmp_path: Path) -> None:
    scaffold_project(tmp_path, "my-agent")
    loaded = load_config(tmp_path / "my-agent" / "configs" / "simulation.yaml")
    assert loaded.experiment_name == "my_agent_experiment"


def test_yaml_keyword_names_stay_strings(tmp_path: Path) -> None:
    # `name: yes` would be a bool in YAML; the template quotes it.
    scaffold_project(tmp_path, "yes")
    loaded = load_config(tmp_path / "yes" / "configs" / "simulation.yaml")
    assert loaded.project is not None and loaded.project.name == "yes"


def test_init_refuses_to_overwrite(demo: Path) -> None:
    sim = demo / "configs" / "simulation.yaml"
    sim.write_text("# my edits\n")
    proc = run_cli("init", "project", "demo", cwd=demo.parent.parent)
    # Our errors cross the CLI's one boundary: a message and exit 4, never a traceback.
    assert proc.returncode == 4, describe(proc)
    assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
    assert "refusing to overwrite" in proc.stderr
    assert "configs/simulation.yaml" in proc.stderr and "--force" in proc.stderr
    assert sim.read_text() == "# my edits\n"


def test_init_refusal_writes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "fluxloop" / "demo"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "project.yaml").write_text("name: mine\n")
    proc = run_cli("init", "project", "demo", cwd=tmp_path)
    assert proc.returncode != 0, describe(proc)
    assert _files(project) == {"configs/project.yaml"}


def test_init_force_overwrites_scaffold_files_only(demo: Path) -> None:
    sim = demo / "configs" / "simulation.yaml"
    sim.write_text("# my edits\n")
    keep = demo / "notes.txt"
    keep.write_text("mine")
    proc = run_cli("init", "project", "demo", "--force", cwd=demo.parent.parent)
    assert proc.returncode == 0, describe(proc)
    assert 'target: "agent:run"' in sim.read_text()
    assert keep.read_text() == "mine"
    assert "(overwritten)" in proc.stdout


@pytest.mark.parametrize("name", ["bad name", "a/b", "../up", "_hidden", "ünï", "x" * 65, ""])
def test_init_rejects_bad_names(tmp_path: Path, name: str) -> None:
    proc = run_cli("init", "project", name, cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert "invalid project name" in proc.stderr
    assert not (tmp_path / "fluxloop").exists()


def test_render_project_fills_every_placeholder() -> None:
    files = render_project("demo")
    assert {p.as_posix() for p in files} == EXPECTED_FILES
    for path, text in files.items():
        assert "{{" not in text and "}}" not in text, path


def test_scaffold_rejects_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "demo").write_text("not a directory")
    with pytest.raises(ScaffoldError, match="not a directory"):
        scaffold_project(tmp_path, "demo")


# --------------------------------------------------------------------------- config schema, version


def test_config_schema_prints_json_schema(tmp_path: Path) -> None:
    proc = run_cli("config", "schema", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    schema = json.loads(proc.stdout)
    assert "iterations" in schema["properties"]
    assert "runner" in schema["properties"]


def test_config_schema_output_file(tmp_path: Path) -> None:
    proc = run_cli("config", "schema", "--output", "schemas/simulation.schema.json", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    schema = json.loads((tmp_path / "schemas" / "simulation.schema.json").read_text())
    assert "iterations" in schema["properties"]
    assert proc.stdout == ""


def test_scaffolded_simulation_yaml_validates_against_the_schema(
    tmp_path: Path, demo: Path
) -> None:
    import jsonschema

    proc = run_cli("config", "schema", cwd=tmp_path)
    schema = json.loads(proc.stdout)
    data = yaml.safe_load((demo / "configs" / "simulation.yaml").read_text())
    jsonschema.validate(data, schema)


def test_python_m_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_fluxloop.cli", "--version"],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("fluxloop, version ")


def test_version(tmp_path: Path) -> None:
    proc = run_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.startswith("fluxloop, version ")
