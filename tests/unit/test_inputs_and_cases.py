"""Inputs (three inputs-file shapes, precedence, fault 18) and cases (ids, counts, seeds,
faults 34 and 35)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _pytest.mark.expression import Expression
from support.config_helpers import GENERATED, INPUT, SIMULATION, write_project, yaml_text

from pytest_fluxloop.config import LoadedConfig, Overrides, load_config
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.plan.cases import Case, ExperimentPlan, plan_experiment
from pytest_fluxloop.plan.inputs import InputSet, load_inputs

PERSONAS = [
    {"name": "novice_user", "description": "First-time customer"},
    {"name": "expert_user", "description": "Knows the policies"},
]
BASE_INPUTS = [
    {"input": "How do I start?"},
    {"input": "What are advanced options?"},
    {"input": "Where is my order?"},
]
ID_CHARS = re.compile(r"[A-Za-z0-9_.-]+")


def _simulation(iterations: int = 1, seed: int | None = 42) -> str:
    return yaml_text(
        {
            "name": "inputs_test",
            "description": "d",
            "iterations": iterations,
            "seed": seed,
            "runner": {"target": "my_agent:run"},
        }
    )


def _load(
    root: Path,
    *,
    input_cfg: dict[str, Any] | None = None,
    generated: dict[str, Any] | str | None = None,
    iterations: int = 1,
    seed: int | None = 42,
    overrides: Overrides | None = None,
    extra: dict[str, str] | None = None,
) -> LoadedConfig:
    files: dict[str, str | bytes] = {SIMULATION: _simulation(iterations, seed)}
    if input_cfg is not None:
        files[INPUT] = yaml_text(input_cfg)
    if generated is not None:
        files[GENERATED] = generated if isinstance(generated, str) else yaml_text(generated)
    files.update(extra or {})
    return load_config(write_project(root, files), overrides)


def _config_error(call: Any, *args: Any) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args)
    return str(info.value)


def _pairs(inputs: InputSet) -> list[tuple[str, str | None]]:
    return [(item.input, item.persona) for item in inputs.items]


def _assert_describe_adds_up(plan: ExperimentPlan) -> None:
    """The plan's description must multiply out to its own total."""
    text = plan.describe()
    factored = re.fullmatch(
        r"(\d+) inputs? × (\d+) personas? × (\d+) iterations? = (\d+) runs?", text
    )
    pairs = re.fullmatch(r"(\d+) input/persona pairs? × (\d+) iterations? = (\d+) runs?", text)
    assert factored or pairs, text
    if factored:
        n, m, k, total = map(int, factored.groups())
        assert n * m * k == total == plan.total, text
    elif pairs:
        p, k, total = map(int, pairs.groups())
        assert p * k == total == plan.total, text


def _hand_case_seed(run_seed: int, case_id: str) -> int:
    digest = hashlib.sha256(f"{run_seed}:{case_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# --------------------------------------------------------------------------- three shapes


def test_shape1_generated_inputs_with_persona(tmp_path: Path) -> None:
    # seeds/001 and 002: `generated_inputs: [{input, persona}]`
    cfg = _load(
        tmp_path,
        input_cfg={"personas": PERSONAS},
        generated="""\
        generated_inputs:
          - input: "How do I start?"
            persona: novice_user
          - input: "What are advanced options?"
            persona: expert_user
        """,
    )
    inputs = load_inputs(cfg)
    assert _pairs(inputs) == [
        ("How do I start?", "novice_user"),
        ("What are advanced options?", "expert_user"),
    ]
    # Descriptions come from input.yaml's personas when the file has none.
    assert [i.persona_description for i in inputs.items] == [
        "First-time customer",
        "Knows the policies",
    ]
    assert inputs.source == str((tmp_path / GENERATED).resolve())
    assert inputs.factored is False
    assert (inputs.n_inputs, inputs.n_personas) == (2, 2)


def test_shape2_inputs_with_metadata_persona(tmp_path: Path) -> None:
    # seeds/004: `inputs: [{input, metadata: {persona, persona_description, ...}}]`
    cfg = _load(
        tmp_path,
        generated="""\
        inputs:
          - input: "Where is my order?"
            metadata:
              persona: novice_user
              persona_description: "First-time customer unfamiliar with the store"
              source: seed
          - input: "How do I return an item?"
            metadata:
              persona: expert_user
              persona_description: "Frequent customer"
        """,
    )
    inputs = load_inputs(cfg)
    assert _pairs(inputs) == [
        ("Where is my order?", "novice_user"),
        ("How do I return an item?", "expert_user"),
    ]
    assert [i.persona_description for i in inputs.items] == [
        "First-time customer unfamiliar with the store",
        "Frequent customer",
    ]
    assert inputs.items[0].metadata["source"] == "seed"


def test_shape3_generator_output_with_stats_and_generation_config(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={"personas": PERSONAS},
        generated="""\
        inputs:
          - input: "How do I get started?"
            persona: novice_user
            persona_description: "Brand new user"
            strategy: rephrase
            base_index: 0
            metadata: {variation: 1}
          - input: "Options, advanced, what are they???"
            persona: expert_user
            strategy: error_prone
            base_index: 1
            metadata: {}
        stats:
          total: 2
          by_strategy: {rephrase: 1, error_prone: 1}
        generation_config:
          mode: deterministic
          strategies: [rephrase, error_prone]
          variation_count: 1
        """,
    )
    inputs = load_inputs(cfg)
    assert _pairs(inputs) == [
        ("How do I get started?", "novice_user"),
        ("Options, advanced, what are they???", "expert_user"),
    ]
    # The entry's own description wins over input.yaml's; else input.yaml's is used.
    assert [i.persona_description for i in inputs.items] == ["Brand new user", "Knows the policies"]
    first, second = inputs.items
    assert first.metadata["strategy"] == "rephrase"
    assert first.metadata["base_index"] == 0
    assert first.metadata["variation"] == 1
    assert second.metadata["strategy"] == "error_prone"
    assert second.metadata["base_index"] == 1

    plan = plan_experiment(cfg)
    by_input = {case.input: case for case in plan.cases}
    assert by_input["How do I get started?"].metadata["strategy"] == "rephrase"
    assert by_input["How do I get started?"].persona_description == "Brand new user"


def test_shape_without_persona_runs_without_one(tmp_path: Path) -> None:
    cfg = _load(tmp_path, generated={"inputs": [{"input": "hi"}, {"input": "bye"}]})
    inputs = load_inputs(cfg)
    assert _pairs(inputs) == [("hi", None), ("bye", None)]
    plan = plan_experiment(cfg)
    assert plan.total == 2
    assert all(case.persona is None for case in plan.cases)


def test_both_inputs_and_generated_inputs_is_an_error(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        generated={"inputs": [{"input": "a"}], "generated_inputs": [{"input": "b"}]},
    )
    message = _config_error(load_inputs, cfg)
    assert str((tmp_path / GENERATED).resolve()) in message
    assert "inputs" in message
    assert "generated_inputs" in message


def test_unknown_key_in_an_inputs_entry_is_an_error(tmp_path: Path) -> None:
    cfg = _load(tmp_path, generated="inputs:\n  - input: hi\n    persona: a\n    persnoa: b\n")
    message = _config_error(load_inputs, cfg)
    assert f"{(tmp_path / GENERATED).resolve()}:4" in message
    assert "did you mean 'persona'" in message


def test_yaml_boolean_input_asks_for_quotes(tmp_path: Path) -> None:
    cfg = _load(tmp_path, generated="generated_inputs:\n  - input: 'yes'\n  - input: no\n")
    message = _config_error(load_inputs, cfg)
    assert f"{(tmp_path / GENERATED).resolve()}:3" in message
    assert "generated_inputs[1].input" in message
    assert "quote" in message


# --------------------------------------------------------------------------- precedence


def _precedence_project(tmp_path: Path, *, with_input_file: bool = True) -> Path:
    """All four sources present; returns the override file's path."""
    input_cfg: dict[str, Any] = {"personas": PERSONAS, "base_inputs": BASE_INPUTS}
    if with_input_file:
        input_cfg["inputs_file"] = "inputs/custom.yaml"
    override = tmp_path / "elsewhere" / "override.yaml"
    override.parent.mkdir(parents=True)
    override.write_text(yaml_text({"inputs": [{"input": "from override"}]}), encoding="utf-8")
    write_project(
        tmp_path / "proj",
        {
            SIMULATION: _simulation(),
            INPUT: yaml_text(input_cfg),
            "inputs/custom.yaml": yaml_text({"inputs": [{"input": "from input.yaml file"}]}),
            GENERATED: yaml_text({"generated_inputs": [{"input": "from generated"}]}),
        },
    )
    return override


def test_precedence_override_wins(tmp_path: Path) -> None:
    override = _precedence_project(tmp_path)
    cfg = load_config(tmp_path / "proj" / SIMULATION, Overrides(inputs_file=str(override)))
    inputs = load_inputs(cfg)
    assert [i.input for i in inputs.items] == ["from override"]
    assert inputs.source == str(override)


def test_precedence_input_yaml_inputs_file_beats_generated(tmp_path: Path) -> None:
    _precedence_project(tmp_path)
    inputs = load_inputs(load_config(tmp_path / "proj" / SIMULATION))
    assert [i.input for i in inputs.items] == ["from input.yaml file"]
    assert inputs.source.endswith("custom.yaml")


def test_precedence_generated_beats_base_inputs(tmp_path: Path) -> None:
    _precedence_project(tmp_path, with_input_file=False)
    inputs = load_inputs(load_config(tmp_path / "proj" / SIMULATION))
    assert [i.input for i in inputs.items] == ["from generated"]
    assert inputs.source == str((tmp_path / "proj" / GENERATED).resolve())


def test_precedence_base_inputs_times_personas_last(tmp_path: Path) -> None:
    _precedence_project(tmp_path, with_input_file=False)
    (tmp_path / "proj" / GENERATED).unlink()
    inputs = load_inputs(load_config(tmp_path / "proj" / SIMULATION))
    assert inputs.source == "base_inputs"
    assert inputs.factored is True
    assert sorted(_pairs(inputs)) == sorted(
        (b["input"], p["name"]) for b in BASE_INPUTS for p in PERSONAS
    )
    assert (inputs.n_inputs, inputs.n_personas) == (3, 2)
    described = {item.persona: item.persona_description for item in inputs.items}
    assert described == {"novice_user": "First-time customer", "expert_user": "Knows the policies"}


def test_base_inputs_expected_intent_and_metadata_reach_cases(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={
            "base_inputs": [
                {"input": "refund?", "expected_intent": "refund", "metadata": {"tier": "gold"}}
            ],
            "personas": PERSONAS,
        },
    )
    plan = plan_experiment(cfg)
    assert plan.total == 2
    for case in plan.cases:
        assert case.metadata["expected_intent"] == "refund"
        assert case.metadata["tier"] == "gold"


def test_input_yaml_inputs_file_not_generated_yet_falls_back_to_base_inputs(
    tmp_path: Path,
) -> None:
    # A fresh project (the templates' input.yaml names inputs/generated.yaml) runs from
    # base_inputs × personas until `generate inputs` has written the file.
    cfg = _load(
        tmp_path,
        input_cfg={
            "personas": PERSONAS,
            "base_inputs": BASE_INPUTS,
            "inputs_file": GENERATED,
        },
    )
    inputs = load_inputs(cfg)
    assert inputs.source == "base_inputs"
    assert len(inputs.items) == 6


@pytest.mark.parametrize("style", ["cli", "pytest"])
def test_missing_override_inputs_file_names_path_and_option(tmp_path: Path, style: str) -> None:
    _precedence_project(tmp_path)
    missing = tmp_path / "nope" / "inputs.yaml"
    overrides = Overrides(inputs_file=str(missing), style=style)  # type: ignore[arg-type]
    cfg = load_config(tmp_path / "proj" / SIMULATION, overrides)
    message = _config_error(load_inputs, cfg)
    assert str(missing) in message
    assert ("--fluxloop-inputs" if style == "pytest" else "--inputs") in message


def test_missing_input_yaml_inputs_file_names_the_path(tmp_path: Path) -> None:
    cfg = _load(tmp_path, input_cfg={"inputs_file": "inputs/missing.yaml", "personas": PERSONAS})
    message = _config_error(load_inputs, cfg)
    assert "inputs/missing.yaml" in message
    assert str((tmp_path / INPUT).resolve()) in message


def test_inputs_file_errors_name_its_own_file(tmp_path: Path) -> None:
    cfg = _load(tmp_path, generated="inputs:\n  - input: [unclosed\n")
    message = _config_error(load_inputs, cfg)
    assert str((tmp_path / GENERATED).resolve()) in message
    assert "invalid YAML" in message


def test_inputs_file_python_tag_is_refused(tmp_path: Path) -> None:
    cfg = _load(tmp_path, generated="inputs:\n  - input: !!python/object/apply:os.getcwd []\n")
    message = _config_error(load_inputs, cfg)
    assert f"{(tmp_path / GENERATED).resolve()}:2" in message
    assert "safe_load" in message


# --------------------------------------------------------------------------- fault 18


@pytest.mark.parametrize(
    "generated",
    ["inputs: []\n", "generated_inputs: []\n"],
)
def test_empty_inputs_list_is_an_error(tmp_path: Path, generated: str) -> None:
    cfg = _load(tmp_path, generated=generated)
    message = _config_error(plan_experiment, cfg)
    assert str((tmp_path / GENERATED).resolve()) in message
    assert "empty" in message


@pytest.mark.parametrize("generated", ["", "# nothing\n", "inputs: null\n", "stats: {}\n"])
def test_inputs_file_without_a_list_is_an_error(tmp_path: Path, generated: str) -> None:
    cfg = _load(tmp_path, generated=generated)
    message = _config_error(plan_experiment, cfg)
    assert str((tmp_path / GENERATED).resolve()) in message
    assert "inputs" in message


def test_empty_personas_is_an_error(tmp_path: Path) -> None:
    cfg = _load(tmp_path, input_cfg={"personas": [], "base_inputs": BASE_INPUTS})
    message = _config_error(plan_experiment, cfg)
    assert str((tmp_path / INPUT).resolve()) in message
    assert "personas" in message
    assert "empty" in message


def test_empty_personas_is_an_error_even_with_an_inputs_file(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={"personas": []},
        generated={"inputs": [{"input": "hi", "persona": "x"}]},
    )
    assert "personas" in _config_error(plan_experiment, cfg)


def test_no_inputs_at_all_is_an_error(tmp_path: Path) -> None:
    cfg = _load(tmp_path)
    message = _config_error(plan_experiment, cfg)
    assert "no inputs" in message
    assert "inputs_test" in message  # the experiment's name
    assert GENERATED in message  # says how to fix it


@pytest.mark.parametrize(
    "input_cfg",
    [{"personas": PERSONAS}, {"personas": PERSONAS, "base_inputs": []}, {}],
    ids=["personas-only", "empty-base-inputs", "empty-input-yaml"],
)
def test_personas_without_inputs_is_an_error(tmp_path: Path, input_cfg: dict[str, Any]) -> None:
    cfg = _load(tmp_path, input_cfg=input_cfg)
    assert "no inputs" in _config_error(plan_experiment, cfg)


def test_persona_filter_naming_an_unknown_persona(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={"personas": PERSONAS, "base_inputs": BASE_INPUTS},
        overrides=Overrides(personas=["novice_user", "ghost"]),
    )
    message = _config_error(plan_experiment, cfg)
    assert "--personas" in message
    assert "ghost" in message
    assert "novice_user" in message and "expert_user" in message  # lists the known ones


def test_persona_filter_without_any_personas(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={"base_inputs": BASE_INPUTS},
        overrides=Overrides(personas=["novice_user"], style="pytest"),
    )
    message = _config_error(plan_experiment, cfg)
    assert "--fluxloop-personas" in message
    assert "novice_user" in message


def test_persona_filter_that_matches_no_input(tmp_path: Path) -> None:
    # expert_user is a known persona, but no generated input uses it.
    cfg = _load(
        tmp_path,
        input_cfg={"personas": PERSONAS},
        generated={"inputs": [{"input": "hi", "persona": "novice_user"}]},
        overrides=Overrides(personas=["expert_user"]),
    )
    message = _config_error(plan_experiment, cfg)
    assert "--personas" in message
    assert "expert_user" in message


def test_persona_filter_keeps_only_the_named_personas(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={"personas": PERSONAS, "base_inputs": BASE_INPUTS},
        iterations=2,
        overrides=Overrides(personas=["expert_user"]),
    )
    plan = plan_experiment(cfg)
    assert plan.total == 3 * 2
    assert {case.persona for case in plan.cases} == {"expert_user"}
    assert plan.describe() == "3 inputs × 1 persona × 2 iterations = 6 runs"


def test_iterations_zero_is_rejected_before_planning(tmp_path: Path) -> None:
    files = {
        SIMULATION: "name: t\ndescription: d\niterations: 0\nrunner: {target: a:b}\n",
        INPUT: yaml_text({"base_inputs": BASE_INPUTS}),
    }
    message = _config_error(load_config, write_project(tmp_path, files))
    assert "iterations" in message
    assert "1-1000" in message


# --------------------------------------------------------------------------- counts and describe


@pytest.mark.parametrize("iterations", [1, 2, 5])
def test_counts_are_inputs_times_personas_times_iterations(tmp_path: Path, iterations: int) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={"personas": PERSONAS, "base_inputs": BASE_INPUTS},
        iterations=iterations,
    )
    plan = plan_experiment(cfg)
    assert plan.total == 3 * 2 * iterations
    combos = Counter((c.input, c.persona, c.iteration) for c in plan.cases)
    assert set(combos.values()) == {1}
    assert {c.iteration for c in plan.cases} == set(range(iterations))
    assert (plan.n_inputs, plan.n_personas, plan.iterations) == (3, 2, iterations)
    s = "s" if iterations != 1 else ""
    assert plan.describe() == (
        f"3 inputs × 2 personas × {iterations} iteration{s} = {6 * iterations} runs"
    )


def test_describe_singular(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={"personas": PERSONAS[:1], "base_inputs": BASE_INPUTS[:1]},
    )
    assert plan_experiment(cfg).describe() == "1 input × 1 persona × 1 iteration = 1 run"


def test_describe_without_personas(tmp_path: Path) -> None:
    cfg = _load(tmp_path, input_cfg={"base_inputs": BASE_INPUTS[:2]}, iterations=3)
    plan = plan_experiment(cfg)
    assert plan.total == 6
    assert plan.describe().startswith("2 inputs × ")
    assert plan.describe().endswith("× 3 iterations = 6 runs")
    _assert_describe_adds_up(plan)


def test_describe_for_pair_shaped_inputs(tmp_path: Path) -> None:
    generated = {
        "generated_inputs": [
            {"input": "a", "persona": "novice_user"},
            {"input": "b", "persona": "novice_user"},
            {"input": "a", "persona": "expert_user"},
            {"input": "c", "persona": "expert_user"},
            {"input": "d"},
        ]
    }
    cfg = _load(tmp_path, generated=generated, iterations=2)
    plan = plan_experiment(cfg)
    assert plan.total == 10
    assert plan.factored is False
    assert plan.describe() == "5 input/persona pairs × 2 iterations = 10 runs"
    single = _load(tmp_path / "one", generated={"inputs": [{"input": "x"}]})
    assert plan_experiment(single).describe() == "1 input/persona pair × 1 iteration = 1 run"


@pytest.mark.parametrize(
    ("base_inputs", "personas", "wanted"),
    [
        (["a", "a", "b"], ["p", "q"], ["p"]),
        (["a", "b"], ["p", "p", "q"], ["p"]),
        (["a", "b", "c"], ["p", "q", "r"], ["p", "r"]),
    ],
    ids=["duplicate-inputs", "duplicate-personas", "two-of-three"],
)
def test_describe_adds_up_after_a_persona_filter(
    tmp_path: Path, base_inputs: list[str], personas: list[str], wanted: list[str]
) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={
            "base_inputs": [{"input": text} for text in base_inputs],
            "personas": [{"name": name} for name in personas],
        },
        iterations=2,
        overrides=Overrides(personas=wanted),
    )
    plan = plan_experiment(cfg)
    kept = sum(1 for name in personas if name in wanted)
    assert plan.total == len(base_inputs) * kept * 2
    _assert_describe_adds_up(plan)


# --------------------------------------------------------------------------- case ids


def _standard(tmp_path: Path, seed: int | None = 42, iterations: int = 2) -> LoadedConfig:
    return _load(
        tmp_path,
        input_cfg={"personas": PERSONAS, "base_inputs": BASE_INPUTS},
        iterations=iterations,
        seed=seed,
    )


def test_case_ids_are_unique_ascii_and_readable(tmp_path: Path) -> None:
    plan = plan_experiment(_standard(tmp_path))
    ids = [case.case_id for case in plan.cases]
    assert len(set(ids)) == len(ids) == 12
    for case in plan.cases:
        assert ID_CHARS.fullmatch(case.case_id), case.case_id
        assert case.persona is not None
        assert case.persona in case.case_id
        assert re.search(rf"(^|[-_.])it{case.iteration}($|[-_.])", case.case_id), case.case_id
    start = next(c for c in plan.cases if c.input == "How do I start?")
    assert "how_do_i_start" in start.case_id
    where = next(c for c in plan.cases if c.input == "Where is my order?")
    assert "where_is_my_order" in where.case_id


def test_case_ids_select_exactly_one_case_with_pytest_k(tmp_path: Path) -> None:
    plan = plan_experiment(_standard(tmp_path))
    ids = [case.case_id for case in plan.cases]
    for case_id in ids:
        expression = Expression.compile(case_id)
        # -k matches a case-insensitive substring of the test id.
        selected = [
            other
            for other in ids
            if expression.evaluate(lambda sub, other=other, **_: sub.lower() in other.lower())
        ]
        assert selected == [case_id]


def test_case_ids_are_stable_across_loads_and_independent_of_seed(tmp_path: Path) -> None:
    first = plan_experiment(_standard(tmp_path / "a", seed=42))
    again = plan_experiment(_standard(tmp_path / "b", seed=42))
    other_seed = plan_experiment(_standard(tmp_path / "c", seed=7))
    null_seed = plan_experiment(_standard(tmp_path / "d", seed=None), run_seed=99)
    assert [c.case_id for c in first.cases] == [c.case_id for c in again.cases]
    ids = {c.case_id for c in first.cases}
    assert {c.case_id for c in other_seed.cases} == ids
    assert {c.case_id for c in null_seed.cases} == ids
    # An id always names the same (input, persona, iteration).
    meaning = {c.case_id: (c.input, c.persona, c.iteration) for c in first.cases}
    assert {c.case_id: (c.input, c.persona, c.iteration) for c in other_seed.cases} == meaning


def test_long_inputs_give_short_ids(tmp_path: Path) -> None:
    long_text = "Please " + "explain the refund policy in great detail " * 20
    cfg = _load(tmp_path, input_cfg={"base_inputs": [{"input": long_text}], "personas": PERSONAS})
    for case in plan_experiment(cfg).cases:
        assert len(case.case_id) <= 100
        assert ID_CHARS.fullmatch(case.case_id)
        assert "please_explain" in case.case_id
        assert case.input == long_text


# --------------------------------------------------------------------------- fault 35


def test_duplicate_inputs_and_personas_keep_every_case(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={
            "base_inputs": [{"input": "Same?"}, {"input": "Same?"}, {"input": "same"}],
            "personas": [
                {"name": "novice_user"},
                {"name": "novice_user"},
                {"name": "Novice User"},
                {"name": "novice-user"},
            ],
        },
        iterations=2,
    )
    plan = plan_experiment(cfg)
    ids = [case.case_id for case in plan.cases]
    assert len(ids) == 3 * 4 * 2
    assert len(set(ids)) == len(ids)
    assert all(ID_CHARS.fullmatch(case_id) for case_id in ids)


def test_duplicate_entries_in_an_inputs_file_keep_every_case(tmp_path: Path) -> None:
    entry = {"id": "dup", "input": "Hello", "persona": "novice_user"}
    cfg = _load(tmp_path, generated={"inputs": [entry, entry, entry, {**entry, "input": "hello"}]})
    plan = plan_experiment(cfg)
    ids = [case.case_id for case in plan.cases]
    assert len(ids) == 4
    assert len(set(ids)) == 4
    assert Counter(case.input for case in plan.cases) == {"Hello": 3, "hello": 1}


def test_ids_stay_unique_for_many_colliding_names(tmp_path: Path) -> None:
    texts = ["Hi!", "hi", "HI?", "hi ", "¡hi!", "👋", "你好", "", "hi_"]
    texts = [t for t in texts if t]  # inputs must not be empty
    names = ["p", "P", "p!", "p ", "p_", "-p-", "π", "👤", "ü"]
    cfg = _load(
        tmp_path,
        input_cfg={
            "base_inputs": [{"input": t} for t in texts * 2],
            "personas": [{"name": n} for n in names],
        },
        iterations=3,
    )
    plan = plan_experiment(cfg)
    ids = [case.case_id for case in plan.cases]
    assert len(ids) == len(texts) * 2 * len(names) * 3
    assert len(set(ids)) == len(ids)
    assert all(ID_CHARS.fullmatch(case_id) for case_id in ids)


# --------------------------------------------------------------------------- fault 34


UNICODE_INPUTS = [
    "Où est ma commande ? 📦",
    "line one\nline two\n\nline four",
    "tabs\tand\r\nwindows line end",
    "family 👨\u200d👩\u200d👧 and flag 🇰🇷",
    "e\u0301 (decomposed) vs \u00e9 (composed)",
    "  leading and trailing spaces  ",
    "line\u2028separator and paragraph\u2029separator",
    "日本語の質問ですか？",
    "quotes \" and ' and \\ backslash",
]


def test_unicode_inputs_keep_their_exact_text_from_an_inputs_file(tmp_path: Path) -> None:
    entries = [{"input": text, "persona": "novice_user"} for text in UNICODE_INPUTS]
    cfg = _load(tmp_path, generated={"inputs": entries}, iterations=2)
    plan = plan_experiment(cfg)
    assert Counter(case.input for case in plan.cases) == Counter(UNICODE_INPUTS * 2)
    for case in plan.cases:
        assert ID_CHARS.fullmatch(case.case_id), case.case_id
        assert "\n" not in case.case_id


def test_unicode_inputs_keep_their_exact_text_from_base_inputs(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        input_cfg={
            "base_inputs": [{"input": text} for text in UNICODE_INPUTS],
            "personas": [{"name": "usuário_ñ"}],
        },
    )
    plan = plan_experiment(cfg)
    assert sorted(case.input for case in plan.cases) == sorted(UNICODE_INPUTS)
    assert {case.persona for case in plan.cases} == {"usuário_ñ"}
    for case in plan.cases:
        assert ID_CHARS.fullmatch(case.case_id), case.case_id
        assert "usuario_n" in case.case_id


def test_block_scalar_input_keeps_its_newlines(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        generated="""\
        inputs:
          - input: |
              First line 🚀
                indented second line
              third line
        """,
    )
    (case,) = plan_experiment(cfg).cases
    assert case.input == "First line 🚀\n  indented second line\nthird line\n"


def test_case_input_round_trips_through_json_lines(tmp_path: Path) -> None:
    entries = [{"input": text} for text in UNICODE_INPUTS]
    plan = plan_experiment(_load(tmp_path, generated={"inputs": entries}))
    lines = [case.model_dump_json() for case in plan.cases]
    assert all("\n" not in line for line in lines)
    back = [Case.model_validate_json(line) for line in lines]
    assert back == plan.cases


# --------------------------------------------------------------------------- seeds and order


def _order(plan: ExperimentPlan) -> list[str]:
    return [case.case_id for case in plan.cases]


def test_same_seed_same_order_and_case_seeds(tmp_path: Path) -> None:
    a = plan_experiment(_standard(tmp_path / "a", seed=123, iterations=3))
    b = plan_experiment(_standard(tmp_path / "b", seed=123, iterations=3))
    assert a.seed == b.seed == 123
    assert _order(a) == _order(b)
    assert [c.seed for c in a.cases] == [c.seed for c in b.cases]


def test_different_seeds_give_different_orders(tmp_path: Path) -> None:
    orders = {
        tuple(_order(plan_experiment(_standard(tmp_path / str(seed), seed=seed, iterations=3))))
        for seed in (1, 2, 3)
    }
    assert len(orders) == 3
    # Same cases, only reordered.
    assert len({frozenset(order) for order in orders}) == 1


def test_different_seeds_give_different_case_seeds(tmp_path: Path) -> None:
    one = plan_experiment(_standard(tmp_path / "a", seed=1))
    two = plan_experiment(_standard(tmp_path / "b", seed=2))
    seeds_one = {c.case_id: c.seed for c in one.cases}
    seeds_two = {c.case_id: c.seed for c in two.cases}
    assert all(seeds_one[key] != seeds_two[key] for key in seeds_one)
    # Within a run, cases get distinct seeds.
    assert len(set(seeds_one.values())) == len(seeds_one)


def test_config_seed_wins_over_run_seed(tmp_path: Path) -> None:
    plain = plan_experiment(_standard(tmp_path / "a", seed=42))
    with_run_seed = plan_experiment(_standard(tmp_path / "b", seed=42), run_seed=999)
    assert with_run_seed.seed == 42
    assert _order(with_run_seed) == _order(plain)


def test_null_seed_with_the_same_run_seed_gives_the_same_order(tmp_path: Path) -> None:
    a = plan_experiment(_standard(tmp_path / "a", seed=None, iterations=3), run_seed=2024)
    b = plan_experiment(_standard(tmp_path / "b", seed=None, iterations=3), run_seed=2024)
    c = plan_experiment(_standard(tmp_path / "c", seed=None, iterations=3), run_seed=2025)
    assert a.seed == b.seed == 2024
    assert _order(a) == _order(b)
    assert [x.seed for x in a.cases] == [x.seed for x in b.cases]
    assert _order(a) != _order(c)


def test_null_seed_without_run_seed_draws_and_reports_a_seed(tmp_path: Path) -> None:
    cfg = _standard(tmp_path, seed=None)
    plan = plan_experiment(cfg)
    assert isinstance(plan.seed, int)
    # The reported seed reproduces the run.
    replay = plan_experiment(cfg, run_seed=plan.seed)
    assert _order(replay) == _order(plan)
    assert [c.seed for c in replay.cases] == [c.seed for c in plan.cases]


def test_case_seed_is_sha256_of_run_seed_and_case_id(tmp_path: Path) -> None:
    for seed, run_seed in ((42, None), (None, 2024), (0, None)):
        plan = plan_experiment(_standard(tmp_path / f"{seed}-{run_seed}", seed=seed), run_seed)
        for case in plan.cases:
            assert case.seed == _hand_case_seed(plan.seed, case.case_id)


_PLAN_SCRIPT = """
import json, sys
from pytest_fluxloop.plan.cases import plan_experiment
from pytest_fluxloop.config import load_config
plan = plan_experiment(load_config(sys.argv[1]), run_seed=77)
print(json.dumps([[c.case_id, c.seed] for c in plan.cases]))
"""


def test_order_and_case_seeds_do_not_depend_on_python_hash_seed(tmp_path: Path) -> None:
    cfg = _standard(tmp_path, seed=None)
    results = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-c", _PLAN_SCRIPT, str(cfg.config_path)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads(proc.stdout))
    local = plan_experiment(cfg, run_seed=77)
    assert results[0] == results[1] == [[c.case_id, c.seed] for c in local.cases]
