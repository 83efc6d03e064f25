"""Config errors name the file, the line and the key, and say how to fix the problem.

Covers fault cases 18 (``iterations`` <= 0), 19 (malformed YAML, ``!!python`` tags, alias
bombs, a size cap) and 20 (``NO``/``yes`` where a string belongs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.config_helpers import (
    EVALUATION,
    INPUT,
    MINIMAL_SIMULATION,
    PROJECT,
    SIMULATION,
    line_of,
    write_project,
)

from pytest_fluxloop.config import Overrides, load_config
from pytest_fluxloop.config.yaml_io import MAX_YAML_BYTES
from pytest_fluxloop.errors import ConfigError


def _error(path: Path, overrides: Overrides | None = None) -> str:
    """The ConfigError message load_config raises for ``path``."""
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def _sim(tmp_path: Path, text: str) -> Path:
    return write_project(tmp_path, {SIMULATION: text})


def _where(path: Path, text: str, needle: str) -> str:
    """``file:line`` of the line of ``text`` holding ``needle``."""
    return f"{path.resolve()}:{line_of(text, needle)}"


def _error_line(message: str, where: str) -> str:
    """The line of a (possibly multi-problem) message that starts at ``where``."""
    for line in message.splitlines():
        if line.strip().startswith(where + ":"):
            return line
    raise AssertionError(f"no problem reported at {where} in:\n{message}")


# --------------------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\niteratons: 3\nrunner:\n  target: a:b\n"
    path = _sim(tmp_path, text)
    message = _error(path)
    line = _error_line(message, _where(path, text, "iteratons"))
    assert "iteratons" in line
    assert "unknown key" in line
    assert "did you mean 'iterations'" in line


def test_unknown_nested_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\nrunner:\n  target: a:b\n  timeout_secs: 30\n"
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, "timeout_secs"))
    assert "runner.timeout_secs" in line
    assert "did you mean 'timeout_seconds'" in line


def test_unknown_key_deep_in_supervisor(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    runner: {target: "a:b"}
    multi_turn:
      supervisor:
        metadata:
          scripted_question: ["hi"]
    """
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, "scripted_question"))
    assert "multi_turn.supervisor.metadata.scripted_question" in line
    assert "did you mean 'scripted_questions'" in line


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\nrunner: {target: a:b}\nzzz_qqq: 1\n"
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, "zzz_qqq"))
    assert "did you mean" not in line
    for key in ("iterations", "runner", "multi_turn", "output_directory"):
        assert key in line


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    iteratons: 3
    parallel_runs: 0
    runner:
      target: a:b
      timeout_secs: 30
    """
    path = _sim(tmp_path, text)
    message = _error(path)
    assert "3 configuration errors" in message
    _error_line(message, _where(path, text, "iteratons"))
    _error_line(message, _where(path, text, "parallel_runs"))
    _error_line(message, _where(path, text, "timeout_secs"))


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("snippet", "key", "value", "range_text"),
    [
        ("iterations: 0", "iterations", "0", "1-1000"),
        ("iterations: 1001", "iterations", "1001", "1-1000"),
        ("iterations: -5", "iterations", "-5", "1-1000"),
        ("parallel_runs: 0", "parallel_runs", "0", "1-20"),
        ("parallel_runs: 21", "parallel_runs", "21", "1-20"),
        ("run_delay_seconds: 61", "run_delay_seconds", "61", "60"),
        ("run_delay_seconds: -0.5", "run_delay_seconds", "-0.5", "60"),
    ],
)
def test_out_of_range_top_level_values_name_the_range(
    tmp_path: Path, snippet: str, key: str, value: str, range_text: str
) -> None:
    text = f"name: t\ndescription: d\n{snippet}\nrunner:\n  target: a:b\n"
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, snippet))
    assert f"{key}:" in line
    assert value in line
    assert "out of range" in line
    assert range_text in line


@pytest.mark.parametrize(
    ("block", "needle", "key", "range_text"),
    [
        ("runner:\n  target: a:b\n  timeout_seconds: 5\n", "timeout_seconds", "runner", "10-3600"),
        ("runner:\n  target: a:b\n  timeout_seconds: 3601\n", "timeout_seconds", "runner", "3600"),
        ("runner:\n  target: a:b\n  max_retries: 11\n", "max_retries", "runner", "0-10"),
        ("runner:\n  target: a:b\n  max_retries: -1\n", "max_retries", "runner", "0-10"),
        (
            "runner: {target: a:b}\nmulti_turn:\n  max_turns: 1\n",
            "max_turns",
            "multi_turn",
            "2-50",
        ),
        (
            "runner: {target: a:b}\nmulti_turn:\n  max_turns: 51\n",
            "max_turns",
            "multi_turn",
            "2-50",
        ),
        (
            "runner: {target: a:b}\nmulti_turn:\n  supervisor:\n    temperature: 3\n",
            "temperature",
            "multi_turn.supervisor",
            "2",
        ),
    ],
)
def test_out_of_range_nested_values_name_the_range(
    tmp_path: Path, block: str, needle: str, key: str, range_text: str
) -> None:
    text = "name: t\ndescription: d\n" + block
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, needle + ":"))
    assert f"{key}.{needle}:" in line
    assert "out of range" in line
    assert range_text in line


# --------------------------------------------------------------------------- fault 20: NO / yes


@pytest.mark.parametrize(
    ("text", "needle", "key"),
    [
        ("name: NO\ndescription: d\nrunner: {target: a:b}\n", "name: NO", "name"),
        ("name: t\ndescription: yes\nrunner: {target: a:b}\n", "description: yes", "description"),
        ("name: t\ndescription: d\nrunner:\n  target: yes\n", "target: yes", "runner.target"),
        (
            "name: t\ndescription: d\nrunner: {target: a:b}\noutput_directory: off\n",
            "output_directory",
            "output_directory",
        ),
        (
            "name: t\ndescription: d\nrunner: {target: a:b}\nmulti_turn:\n  persona_override: NO\n",
            "persona_override",
            "multi_turn.persona_override",
        ),
        (
            "name: t\ndescription: d\nrunner: {target: a:b}\n"
            "multi_turn:\n  supervisor:\n    model: no\n",
            "model: no",
            "multi_turn.supervisor.model",
        ),
        (
            "name: t\ndescription: d\nrunner: {target: a:b}\n"
            "multi_turn:\n  supervisor:\n    metadata:\n      scripted_questions:\n"
            "        - Hello\n        - yes\n",
            "- yes",
            "multi_turn.supervisor.metadata.scripted_questions[1]",
        ),
        (
            "name: t\ndescription: d\nrunner:\n  target: a:b\n  python_path: [src, on]\n",
            "python_path",
            "runner.python_path[1]",
        ),
    ],
)
def test_yaml_booleans_where_a_string_belongs_ask_for_quotes(
    tmp_path: Path, text: str, needle: str, key: str
) -> None:
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, needle))
    assert f"{key}:" in line
    assert "quote" in line
    assert "boolean" in line


def test_quoted_no_is_a_string(tmp_path: Path) -> None:
    text = 'name: "NO"\ndescription: "yes"\nrunner: {target: a:b}\n'
    sim = load_config(_sim(tmp_path, text)).simulation
    assert (sim.name, sim.description) == ("NO", "yes")


@pytest.mark.parametrize(
    ("filename", "text", "needle", "key"),
    [
        (
            INPUT,
            "personas:\n  - name: ok\n  - name: NO\n    description: Norwegian speaker\n",
            "name: NO",
            "personas[1].name",
        ),
        (INPUT, "base_inputs:\n  - input: yes\n", "input: yes", "base_inputs[0].input"),
        (PROJECT, "name: p\nmetadata:\n  service_context: no\n", "service_context", "metadata."),
        (PROJECT, "tags: [a, off]\n", "tags", "tags[1]"),
    ],
)
def test_yaml_booleans_in_companions_ask_for_quotes(
    tmp_path: Path, filename: str, text: str, needle: str, key: str
) -> None:
    path = write_project(tmp_path, {filename: text})
    message = _error(path)
    companion = tmp_path / filename
    line = _error_line(message, f"{companion.resolve()}:{line_of(text, needle)}")
    assert key in line
    assert "quote" in line


# --------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("snippet", "key", "got"),
    [
        ("iterations: '3'", "iterations", "str"),
        ("iterations: 2.5", "iterations", "float"),
        ("iterations: true", "iterations", "bool"),
        ("iterations: null", "iterations", "None"),
        ("seed: '42'", "seed", "str"),
        ("seed: 4.2", "seed", "float"),
        ("save_traces: 'true'", "save_traces", "str"),
        ("save_aggregated_metrics: 1", "save_aggregated_metrics", "int"),
        ("run_delay_seconds: fast", "run_delay_seconds", "str"),
        ("replay_args: true", "replay_args", "bool"),
        ("multi_turn: [enabled]", "multi_turn", "list"),
    ],
)
def test_wrong_types_are_errors_not_coerced(
    tmp_path: Path, snippet: str, key: str, got: str
) -> None:
    text = f"name: t\ndescription: d\n{snippet}\nrunner:\n  target: a:b\n"
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, snippet))
    assert f"{key}:" in line
    assert got in line


@pytest.mark.parametrize(
    ("block", "needle", "key"),
    [
        ("runner: a:b\n", "runner", "runner"),
        ("runner:\n  target: a:b\n  python_path: src\n", "python_path", "runner.python_path"),
        ("runner:\n  target: a:b\n  timeout_seconds: '60'\n", "timeout_seconds", "runner"),
        (
            "runner: {target: a:b}\nmulti_turn:\n  enabled: 'true'\n",
            "enabled",
            "multi_turn.enabled",
        ),
        (
            "runner: {target: a:b}\nmulti_turn:\n  supervisor:\n    provider: bogus\n",
            "provider",
            "multi_turn.supervisor.provider",
        ),
        (
            "runner: {target: a:b}\nmulti_turn:\n  supervisor:\n    metadata:\n"
            "      mock_decision: maybe\n",
            "mock_decision",
            "multi_turn.supervisor.metadata.mock_decision",
        ),
    ],
)
def test_wrong_nested_types_are_errors(tmp_path: Path, block: str, needle: str, key: str) -> None:
    text = "name: t\ndescription: d\n" + block
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, needle))
    assert key in line


def test_unknown_provider_lists_the_choices(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\nrunner: {target: a:b}\nmulti_turn:\n  supervisor:\n"
    text += "    provider: gemini\n"
    line = _error_line(_error(_sim(tmp_path, text)), _where(tmp_path / SIMULATION, text, "gemini"))
    for choice in ("openai", "anthropic", "mock"):
        assert choice in line
    assert "gemini" in line


# --------------------------------------------------------------------------- required keys


def test_missing_name_is_an_error(tmp_path: Path) -> None:
    text = "description: d\nrunner:\n  target: a:b\n"
    path = _sim(tmp_path, text)
    message = _error(path)
    line = _error_line(message, f"{path.resolve()}:1")
    assert "name" in line
    assert "missing" in line


def test_missing_runner_is_an_error(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\n"
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), f"{path.resolve()}:1")
    assert "runner" in line
    assert "missing" in line


def test_empty_name_is_an_error(tmp_path: Path) -> None:
    text = "name: ''\ndescription: d\nrunner: {target: a:b}\n"
    path = _sim(tmp_path, text)
    line = _error_line(_error(path), _where(path, text, "name:"))
    assert "name" in line
    assert "empty" in line


def test_empty_runner_mapping_asks_for_a_target(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\nrunner: {}\n"
    path = _sim(tmp_path, text)
    message = _error(path)
    assert _where(path, text, "runner") in message
    assert "runner.target" in message


# --------------------------------------------------------------------------- fault 19: YAML


@pytest.mark.parametrize(
    ("text", "bad_line"),
    [
        ("name: t\ndescription: d\nrunner:\n  target: [a:b\n  timeout_seconds: 3\n", 5),
        ("name: t\n\tdescription: d\nrunner: {target: a:b}\n", 2),
        ("name: t\ndescription: d\nrunner:\n  target: a:b\n timeout_seconds: 30\n", 5),
        ('name: "unterminated\ndescription: d\n', 3),
        ("name: t\ndescription: d\nrunner: {target: a:b}\n---\nname: u\n", 4),
    ],
    ids=["unclosed-flow", "tab", "bad-indent", "unterminated-quote", "two-documents"],
)
def test_malformed_yaml_names_file_and_line(tmp_path: Path, text: str, bad_line: int) -> None:
    path = _sim(tmp_path, text)
    message = _error(path)
    match = re.search(re.escape(str(path.resolve())) + r":(\d+)", message)
    assert match, message
    assert abs(int(match.group(1)) - bad_line) <= 1, message
    assert "invalid YAML" in message


@pytest.mark.parametrize(
    "char",
    ["\x00", "\x07", "\x1b"],
    ids=["nul", "bell", "escape"],
)
def test_control_characters_are_a_config_error_with_line(tmp_path: Path, char: str) -> None:
    # A stray control character makes the file unreadable for YAML: that is malformed YAML
    # (fault 19), so it must be a ConfigError naming file and line, not a raw PyYAML crash.
    text = f"name: t\ndescription: d\nrunner:\n  target: a{char}b\n"
    path = _sim(tmp_path, text)
    message = _error(path)
    assert f"{path.resolve()}:4" in message


@pytest.mark.parametrize(
    "tagged",
    [
        "name: !!python/object:os.system {}\n",
        "name: !!python/object/apply:os.system ['echo pwned']\n",
        "name: !!python/name:os.system ''\n",
        "name: !!python/tuple [a, b]\n",
    ],
)
def test_python_tags_are_refused(tmp_path: Path, tagged: str) -> None:
    text = "description: d\n" + tagged + "runner: {target: a:b}\n"
    path = _sim(tmp_path, text)
    message = _error(path)
    assert f"{path.resolve()}:2" in message
    assert "python" in message
    assert "safe_load" in message


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        prev, cur = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"  # 9**9 ≈ 387 million values once expanded
    path = _sim(tmp_path, text)
    message = _error(path)
    assert str(path.resolve()) in message
    assert re.search(re.escape(str(path.resolve())) + r":\d+", message)
    assert "alias" in message


def test_shared_anchors_within_bounds_are_fine(tmp_path: Path) -> None:
    text = """\
    name: t
    description: d
    runner: &r {target: "a:b"}
    multi_turn:
      supervisor:
        metadata:
          scripted_questions: &q ["one", "two"]
    """
    sim = load_config(_sim(tmp_path, text)).simulation
    assert sim.multi_turn.supervisor.metadata.scripted_questions == ["one", "two"]


@pytest.mark.parametrize(
    ("text", "second", "first", "key"),
    [
        ("name: t\ndescription: d\nname: u\nrunner: {target: a:b}\n", 3, 1, "name"),
        ("name: t\ndescription: d\nrunner:\n  target: a:b\n  target: c:d\n", 5, 4, "runner.target"),
    ],
)
def test_duplicate_keys_are_refused(
    tmp_path: Path, text: str, second: int, first: int, key: str
) -> None:
    path = _sim(tmp_path, text)
    message = _error(path)
    assert f"{path.resolve()}:{second}" in message
    assert "duplicate key" in message
    assert f"'{key}'" in message
    assert f"line {first}" in message


def test_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    filler = "# " + "x" * 1000 + "\n"
    body = MINIMAL_SIMULATION + filler * (MAX_YAML_BYTES // len(filler) + 1)
    path = _sim(tmp_path, body)
    assert path.stat().st_size > MAX_YAML_BYTES
    message = _error(path)
    assert str(path.resolve()) in message
    assert str(MAX_YAML_BYTES) in message


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = write_project(tmp_path, {SIMULATION: b"name: \xff\xfe\ndescription: d\n"})
    message = _error(path)
    assert str(path.resolve()) in message
    assert "UTF-8" in message


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n"])
def test_empty_file_is_an_error(tmp_path: Path, text: str) -> None:
    path = _sim(tmp_path, text)
    message = _error(path)
    assert str(path.resolve()) in message
    assert "empty" in message


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- name: t\n- runner: {target: a:b}\n", "list"), ("just words\n", "str"), ("42\n", "int")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = _sim(tmp_path, text)
    message = _error(path)
    assert str(path.resolve()) in message
    assert "mapping" in message
    assert kind in message


def test_yaml_boolean_key_names_the_key_and_its_line(tmp_path: Path) -> None:
    # `on:` is read by YAML 1.1 as the boolean True: the message must still name the key
    # as written and its line, like every other unknown key.
    text = "name: t\ndescription: d\non: push\nrunner: {target: a:b}\n"
    path = _sim(tmp_path, text)
    message = _error(path)
    line = _error_line(message, f"{path.resolve()}:3")
    assert re.search(r"\bon\b", line), message


# --------------------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("overrides", "option", "key", "detail"),
    [
        (Overrides(iterations=0), "--iterations", "iterations", "1-1000"),
        (Overrides(iterations=1001), "--iterations", "iterations", "1-1000"),
        (
            Overrides(iterations=0, style="pytest"),
            "--fluxloop-iterations",
            "iterations",
            "1-1000",
        ),
        (Overrides(max_turns=1), "--max-turns", "multi_turn.max_turns", "2-50"),
        (
            Overrides(max_turns=51, style="pytest"),
            "--fluxloop-max-turns",
            "multi_turn.max_turns",
            "2-50",
        ),
        (
            Overrides(supervisor_provider="bogus"),
            "--supervisor-provider",
            "multi_turn.supervisor.provider",
            "'mock'",
        ),
        (
            Overrides(supervisor_temperature=3.0),
            "--supervisor-temperature",
            "multi_turn.supervisor.temperature",
            "out of range",
        ),
        (Overrides(experiment_name=""), "--experiment-name", "name", "empty"),
        (
            Overrides(supervisor_model=""),
            "--supervisor-model",
            "multi_turn.supervisor.model",
            "empty",
        ),
        (
            Overrides(persona_override="", style="pytest"),
            "--fluxloop-persona-override",
            "multi_turn.persona_override",
            "empty",
        ),
    ],
)
def test_overrides_get_the_same_validation_and_name_the_option(
    tmp_path: Path, overrides: Overrides, option: str, key: str, detail: str
) -> None:
    path = _sim(tmp_path, MINIMAL_SIMULATION)
    message = _error(path, overrides)
    line = _error_line(message, option)
    assert f"{key}:" in line
    assert detail in line
    # The option is blamed, not a line of the file the value never came from.
    assert not re.search(re.escape(str(path.resolve())) + r":\d", message), message


def test_override_fixes_a_bad_file_value(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\niterations: 0\nrunner: {target: a:b}\n"
    assert load_config(_sim(tmp_path, text), Overrides(iterations=3)).simulation.iterations == 3


def test_file_error_still_reported_next_to_an_override_error(tmp_path: Path) -> None:
    text = "name: t\ndescription: d\nparallel_runs: 99\nrunner: {target: a:b}\n"
    path = _sim(tmp_path, text)
    message = _error(path, Overrides(iterations=0))
    _error_line(message, "--iterations")
    _error_line(message, _where(path, text, "parallel_runs"))


# --------------------------------------------------------------------------- evaluation.yaml


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ("check: contains\n        target: output", "keywords"),
        ("check: not_contains", "keywords"),
        ("check: matches_regex", "pattern"),
        ("check: latency_under", "budget_ms"),
        ("check: token_usage_under", "max_tokens"),
        ("check: similarity\n        method: difflib", "expected_path"),
    ],
)
def test_evaluation_rule_missing_its_required_field(tmp_path: Path, rule: str, field: str) -> None:
    text = f"""\
evaluators:
  - name: checks
    type: rule_based
    rules:
      - check: output_not_empty
      - {rule}
"""
    path = write_project(tmp_path, {EVALUATION: text})
    message = _error(path)
    where = f"{(tmp_path / EVALUATION).resolve()}:{line_of(text, rule.splitlines()[0])}"
    line = _error_line(message, where)
    assert "evaluators[0].rules[1]" in line
    assert field in line


def test_evaluation_unknown_check_and_evaluator_type(tmp_path: Path) -> None:
    text = """\
evaluators:
  - name: checks
    type: rules
    rules:
      - check: contains_all
        keywords: [a]
"""
    path = write_project(tmp_path, {EVALUATION: text})
    message = _error(path)
    evaluation = (tmp_path / EVALUATION).resolve()
    assert "evaluators[0].type" in _error_line(message, f"{evaluation}:3")
    check_line = _error_line(message, f"{evaluation}:5")
    assert "evaluators[0].rules[0].check" in check_line
    assert "contains" in check_line


def test_evaluation_aggregate_threshold_range(tmp_path: Path) -> None:
    text = "aggregate:\n  method: weighted_sum\n  threshold: 1.5\n"
    path = write_project(tmp_path, {EVALUATION: text})
    line = _error_line(_error(path), f"{(tmp_path / EVALUATION).resolve()}:3")
    assert "aggregate.threshold" in line
    assert "out of range" in line


def test_companion_top_level_list_is_an_error(tmp_path: Path) -> None:
    path = write_project(tmp_path, {INPUT: "- input: hi\n"})
    message = _error(path)
    assert str((tmp_path / INPUT).resolve()) in message
    assert "mapping" in message
