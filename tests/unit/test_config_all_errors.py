"""All config problems at once: one ConfigError lists the problems of simulation.yaml, of
each companion file and of the runner checks, so a user fixing three files sees three errors
in one run. A single problem keeps the message it always had."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.config_helpers import (
    EVALUATION,
    INPUT,
    MINIMAL_SIMULATION,
    PROJECT,
    SIMULATION,
    line_of,
    write_tree,
)

from pytest_fluxloop.config import load_config
from pytest_fluxloop.errors import ConfigError


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "fluxloop" / "demo"
    write_tree(root, {SIMULATION: MINIMAL_SIMULATION, **files})
    return root / SIMULATION


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def _at(path: Path, text: str, needle: str) -> str:
    return f"{path.resolve()}:{line_of(text, needle)}"


def _has_line(message: str, where: str, *words: str) -> None:
    for line in message.splitlines():
        if line.strip().startswith(where + ":") and all(word in line for word in words):
            return
    raise AssertionError(f"no line at {where} with {words} in:\n{message}")


SIM_BAD = "name: t\niteratons: 3\nrunner:\n  target: a:b\n"
PROJECT_BAD = "name: p\ntagz: [a]\n"
INPUT_BAD = "personas:\n  - name: p\n    goal: [x]\n"
EVALUATION_BAD = "aggregate:\n  threshold: 2\n"


def test_errors_of_every_file_are_reported_together(tmp_path: Path) -> None:
    path = _project(
        tmp_path,
        {SIMULATION: SIM_BAD, PROJECT: PROJECT_BAD, INPUT: INPUT_BAD, EVALUATION: EVALUATION_BAD},
    )
    configs = path.parent
    message = _error(path)
    assert message.startswith("4 configuration problems")
    _has_line(message, _at(path, SIM_BAD, "iteratons"), "did you mean 'iterations'")
    _has_line(message, _at(configs / "project.yaml", PROJECT_BAD, "tagz"), "tags")
    _has_line(message, _at(configs / "input.yaml", INPUT_BAD, "goal:"), "goals")
    _has_line(message, _at(configs / "evaluation.yaml", EVALUATION_BAD, "threshold"), "range")


def test_a_single_problem_keeps_its_message(tmp_path: Path) -> None:
    path = _project(tmp_path, {PROJECT: PROJECT_BAD})
    message = _error(path)
    companion = (path.parent / "project.yaml").resolve()
    assert message.startswith(f"{companion}: invalid configuration:\n  {companion}:2: tagz:")
    assert "configuration problems" not in message


def test_invalid_yaml_in_one_file_does_not_hide_the_others(tmp_path: Path) -> None:
    path = _project(
        tmp_path,
        {SIMULATION: "name: [t\n", INPUT: INPUT_BAD, PROJECT: "- not\n- a mapping\n"},
    )
    configs = path.parent.resolve()
    message = _error(path)
    assert message.startswith("3 configuration problems")
    _has_line(message, f"{path.resolve()}:2", "invalid YAML")
    assert f"{configs / 'project.yaml'}: expected a project config mapping" in message
    _has_line(message, _at(configs / "input.yaml", INPUT_BAD, "goal:"), "goals")


def test_runner_checks_join_the_other_problems(tmp_path: Path) -> None:
    sim = "name: t\niteratons: 3\nrunner:\n  target: a:b\n  setup_commands: [make]\n"
    path = _project(tmp_path, {SIMULATION: sim, INPUT: INPUT_BAD})
    message = _error(path)
    assert message.startswith("3 configuration problems")
    _has_line(message, _at(path, sim, "iteratons"), "unknown key")
    _has_line(message, _at(path, sim, "setup_commands"), "runner.setup_commands")
    _has_line(message, _at(path.parent / "input.yaml", INPUT_BAD, "goal:"), "goals")


def test_missing_target_is_listed_with_companion_errors(tmp_path: Path) -> None:
    sim = "name: t\nrunner:\n  working_directory: .\n"
    path = _project(tmp_path, {SIMULATION: sim, EVALUATION: EVALUATION_BAD})
    message = _error(path)
    assert message.startswith("2 configuration problems")
    _has_line(message, _at(path, sim, "runner:"), "runner.target is required")
    _has_line(message, _at(path.parent / "evaluation.yaml", EVALUATION_BAD, "threshold"))


def test_conflicts_and_section_errors_are_listed_together(tmp_path: Path) -> None:
    sim = MINIMAL_SIMULATION + "tags: [x]\nevaluators:\n  - name: e\n    type: judge\n"
    path = _project(tmp_path, {SIMULATION: sim, PROJECT: "tags: [y]\n"})
    message = _error(path)
    assert message.startswith("2 configuration problems")
    _has_line(message, _at(path, sim, "tags:"), "also set in", "project.yaml:1")
    _has_line(message, _at(path, sim, "type: judge"), "evaluators[0].type", "llm_judge")


def test_legacy_alias_conflict_is_listed_with_validation_errors(tmp_path: Path) -> None:
    sim = "name: t\niterations: 3\nparallel_runs: 0\nrunner:\n  target: a:b\n  iterations: 5\n"
    path = _project(tmp_path, {SIMULATION: sim})
    message = _error(path)
    assert message.startswith("2 configuration problems")
    _has_line(message, _at(path, sim, "iterations: 5"), "runner.iterations")
    _has_line(message, _at(path, sim, "parallel_runs"), "out of range")
