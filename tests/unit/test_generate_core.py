"""The generation core and deterministic mode of ``fluxloop generate inputs``: options,
the job plan, dedupe, batches, the written file and how ``run experiment`` reads it."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.config_helpers import INPUT, SIMULATION, write_project, yaml_text

from pytest_fluxloop.config import LoadedConfig, Overrides, load_config
from pytest_fluxloop.config.models import InputsFile, Persona
from pytest_fluxloop.errors import FluxloopError
from pytest_fluxloop.generate import (
    GenerationError,
    GenerationOptions,
    GenerationResult,
    OutputExistsError,
    generate_inputs,
    job_seed,
    plan_jobs,
    render_inputs_file,
    write_inputs_file,
)
from pytest_fluxloop.generate.core import normalized_text
from pytest_fluxloop.plan.cases import plan_experiment
from pytest_fluxloop.plan.inputs import load_inputs
from pytest_fluxloop.run import Experiment

PERSONAS = [
    {
        "name": "novice_user",
        "description": "First-time customer",
        "characteristics": ["impatient"],
        "expertise_level": "novice",
        "goals": ["get started"],
        "language": "en",
    },
    {"name": "expert_user", "description": "Knows the policies", "expertise_level": "expert"},
]
BASE_INPUTS = [
    {"input": "How do I start a new project?", "expected_intent": "onboarding"},
    {"input": "What are the advanced options for exporting my data?"},
    {"input": "Where is my order and when will it arrive?", "metadata": {"topic": "orders"}},
]
STRATEGIES = ["rephrase", "verbose", "concise"]


def _simulation(*, seed: int | str | None = "unset", iterations: int = 1) -> str:
    data: dict[str, Any] = {
        "name": "generate_test",
        "iterations": iterations,
        "runner": {"target": "my_agent:run"},
    }
    if seed != "unset":
        data["seed"] = seed
    return yaml_text(data)


def _project(
    root: Path,
    *,
    input_cfg: dict[str, Any] | None = None,
    seed: int | str | None = "unset",
    iterations: int = 1,
) -> LoadedConfig:
    config = {
        "base_inputs": BASE_INPUTS,
        "personas": PERSONAS,
        "variation_strategies": STRATEGIES,
        "variation_count": 2,
        **(input_cfg or {}),
    }
    config = {key: value for key, value in config.items() if value is not None}
    files = {SIMULATION: _simulation(seed=seed, iterations=iterations), INPUT: yaml_text(config)}
    return load_config(write_project(root, files))


def _generate(cfg: LoadedConfig, **options: Any) -> tuple[GenerationOptions, GenerationResult]:
    resolved = GenerationOptions.from_config(cfg, **options)
    return resolved, generate_inputs(cfg, resolved)


def _error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(FluxloopError) as info:
        call(*args, **kwargs)
    return str(info.value)


@dataclass(frozen=True)
class FakeVariation:
    text: str
    operator: str
    params: dict[str, Any] = field(default_factory=dict)


def scripted_operator(outputs: dict[str, list[str]]) -> Any:
    """A stand-in operator: strategy -> the texts it returns ({base} is the base input)."""

    def apply(strategy: str, text: str, **_: Any) -> list[FakeVariation]:
        return [
            FakeVariation(item.format(base=text), f"{strategy}.scripted", {"i": i})
            for i, item in enumerate(outputs.get(strategy, []))
        ]

    return apply


# --------------------------------------------------------------------------- reproducibility


def test_same_config_and_seed_give_byte_identical_files(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    first = write_inputs_file(_generate(cfg)[1], tmp_path / "a.yaml", overwrite=False)
    second = write_inputs_file(_generate(cfg)[1], tmp_path / "b.yaml", overwrite=False)
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text(encoding="utf-8")
    assert "generated_at" not in text  # no wall-clock time in the file
    assert text.startswith("# Inputs for `fluxloop run experiment`")


def test_files_are_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    _project(tmp_path)
    script = (
        "import sys\n"
        "from pytest_fluxloop.config import load_config\n"
        "from pytest_fluxloop.generate import GenerationOptions, generate_inputs, "
        "render_inputs_file\n"
        "cfg = load_config(sys.argv[1])\n"
        "result = generate_inputs(cfg, GenerationOptions.from_config(cfg))\n"
        "sys.stdout.buffer.write(render_inputs_file(result).encode())\n"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / SIMULATION)],
            capture_output=True,
            env=env,
            check=True,
            timeout=120,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    in_process = render_inputs_file(_generate(load_config(tmp_path / SIMULATION))[1])
    assert outputs[0] == in_process.encode()


def test_a_different_seed_gives_a_different_file(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    one = render_inputs_file(_generate(cfg, seed=1)[1])
    two = render_inputs_file(_generate(cfg, seed=2)[1])
    assert one != two
    assert yaml.safe_load(one)["generation_config"]["seed"] == 1


def test_the_global_random_generator_is_untouched(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    random.seed(1234)
    before = random.getstate()
    _generate(cfg)
    assert random.getstate() == before


def test_seed_source_is_recorded(tmp_path: Path) -> None:
    cfg = _project(tmp_path / "unset")
    options, result = _generate(cfg)
    assert (options.seed, result.generation_config["seed_source"]) == (42, "default")
    cfg = _project(tmp_path / "written", seed=7)
    options, result = _generate(cfg)
    assert (options.seed, result.generation_config["seed_source"]) == (7, "simulation.yaml seed")
    cfg = _project(tmp_path / "null", seed=None)
    assert GenerationOptions.from_config(cfg).seed == 42
    options, result = _generate(cfg, seed=99)
    assert (options.seed, result.generation_config["seed_source"]) == (99, "--seed")


# --------------------------------------------------------------------------- content


def test_entries_have_the_inputs_file_shape_and_provenance(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, result = _generate(cfg)
    first = result.entries[0]
    assert list(first) == [
        "input",
        "persona",
        "persona_description",
        "strategy",
        "base_index",
        "metadata",
    ]
    # Base input first (strategy "base"), carrying the base input's own metadata.
    assert first["input"] == BASE_INPUTS[0]["input"]
    assert (first["persona"], first["persona_description"]) == (
        "novice_user",
        "First-time customer",
    )
    assert first["strategy"] == "base"
    assert first["metadata"]["expected_intent"] == "onboarding"
    variations = [entry for entry in result.entries if entry["strategy"] != "base"]
    assert variations
    for entry in variations:
        meta = entry["metadata"]
        assert meta["source_input"] == BASE_INPUTS[entry["base_index"]]["input"]
        assert meta["strategy"] == entry["strategy"]
        assert meta["base_index"] == entry["base_index"]
        assert isinstance(meta["operator"], str) and meta["operator"]
        assert isinstance(meta["params"], dict)
        assert meta["seed"] == job_seed(
            42, entry["base_index"], entry["persona"], entry["strategy"]
        )
    orders = [e for e in result.entries if e["base_index"] == 2]
    assert all(e["metadata"]["topic"] == "orders" for e in orders)
    config = result.generation_config
    assert config["mode"] == "deterministic"
    assert config["strategies"] == STRATEGIES
    assert config["personas"] == ["novice_user", "expert_user"]
    assert config["config_file"] == "configs/input.yaml"
    assert config["generator"].startswith("pytest-fluxloop ")


def test_entries_follow_base_persona_strategy_order(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, result = _generate(cfg)
    persona_rank = {"novice_user": 0, "expert_user": 1}
    strategy_rank = {name: i for i, name in enumerate(["base", *STRATEGIES])}
    keys = [
        (e["base_index"], persona_rank[e["persona"]], strategy_rank[e["strategy"]])
        for e in result.entries
    ]
    assert keys == sorted(keys)


def test_variations_differ_from_base_and_each_other(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, result = _generate(cfg)
    base_texts = {normalized_text(b["input"]) for b in BASE_INPUTS}
    seen: set[tuple[str, str | None]] = set()
    for entry in result.entries:
        key = (normalized_text(entry["input"]), entry["persona"])
        assert key not in seen, entry
        seen.add(key)
        if entry["strategy"] != "base":
            assert key[0] not in base_texts, entry


def test_duplicates_and_base_copies_are_removed_and_reported(tmp_path: Path) -> None:
    cfg = _project(tmp_path, input_cfg={"personas": None, "variation_count": 3})
    operator = scripted_operator(
        {
            "rephrase": ["{base} please", "{BASE}".replace("BASE", "base"), "  {base}  PLEASE "],
            "verbose": ["{base} please", "Tell me: {base}"],
            "concise": [],
        }
    )
    options = GenerationOptions.from_config(cfg)
    result = generate_inputs(cfg, options, operator=operator)
    texts = [(e["strategy"], e["input"]) for e in result.entries if e["base_index"] == 0]
    base = BASE_INPUTS[0]["input"]
    assert texts == [
        ("base", base),
        ("rephrase", f"{base} please"),
        ("verbose", f"Tell me: {base}"),
    ]
    stats = result.stats
    assert stats["duplicates_removed"] == 3 * 2  # "  .. PLEASE " and verbose's copy, per base
    assert stats["equal_to_base_removed"] == 3
    short = [job for job in stats["short_jobs"] if job["base_index"] == 0]
    assert short[0] == {
        "base_index": 0,
        "persona": None,
        "strategy": "rephrase",
        "asked": 3,
        "made": 3,
        "kept": 1,
        "reason": "1 duplicate(s) removed; 1 equal to a base input removed",
    }
    assert short[1]["reason"] == "the verbose operator made 2 of 3; 1 duplicate(s) removed"
    assert short[2]["reason"] == "the concise operator made 0 of 3"
    assert stats["by_strategy"] == {"base": 3, "rephrase": 3, "verbose": 3, "concise": 0}
    assert "by_persona" not in stats
    assert all(e["persona"] is None for e in result.entries)


def test_without_base_entries(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, result = _generate(cfg, include_base=False)
    assert result.entries
    assert all(e["strategy"] != "base" for e in result.entries)
    assert "base" not in result.stats["by_strategy"]


def test_progress_is_reported_per_job(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    calls: list[tuple[int, int]] = []
    options = GenerationOptions.from_config(cfg)
    generate_inputs(cfg, options, progress=lambda done, total: calls.append((done, total)))
    jobs = len(BASE_INPUTS) * len(PERSONAS) * len(STRATEGIES)
    assert calls == [(n, jobs) for n in range(1, jobs + 1)]


# --------------------------------------------------------------------------- batches


def test_limit_and_offset_batches_partition_the_full_list(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, full = _generate(cfg)
    total = len(full.entries)
    assert total > 10
    batches: list[dict[str, Any]] = []
    offset = 0
    while offset is not None:
        _, batch = _generate(cfg, limit=7, offset=offset)
        assert batch.total_before_limit == total
        assert batch.generation_config["limit"] == 7
        assert batch.generation_config["offset"] == offset
        batches.extend(batch.entries)
        offset = batch.next_offset
    assert batches == full.entries
    assert full.next_offset is None
    assert full.stats["total_before_limit"] == total


def test_a_limit_says_where_the_next_batch_starts(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, batch = _generate(cfg, limit=5)
    assert len(batch.entries) == 5
    assert batch.next_offset == 5
    assert batch.stats["next_offset"] == 5
    assert any("--offset 5" in notice for notice in batch.notices)


def test_offset_past_the_end_is_an_error(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, full = _generate(cfg)
    message = _error(_generate, cfg, offset=len(full.entries))
    assert message.startswith("generation produced no inputs: --offset")
    assert "past the end" in message


def test_job_seeds_do_not_depend_on_the_plan(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    assert cfg.input is not None and cfg.input.base_inputs is not None
    personas = [Persona(name="a"), Persona(name="b")]
    jobs = plan_jobs(cfg.input.base_inputs, personas, ["rephrase", "typo"], 42)
    assert [(j.base_index, j.persona_name, j.strategy) for j in jobs[:4]] == [
        (0, "a", "rephrase"),
        (0, "a", "typo"),
        (0, "b", "rephrase"),
        (0, "b", "typo"),
    ]
    fewer = plan_jobs(cfg.input.base_inputs, personas[1:], ["typo"], 42)
    assert fewer[0].seed == jobs[3].seed
    none = plan_jobs(cfg.input.base_inputs, [], ["typo"], 42)
    assert none[0].persona is None and none[0].seed == job_seed(42, 0, None, "typo")
    assert len({job.seed for job in jobs}) == len(jobs)


# --------------------------------------------------------------------------- options


def test_personas_filter(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, result = _generate(cfg, personas=["expert_user"])
    assert {e["persona"] for e in result.entries} == {"expert_user"}
    assert result.generation_config["personas"] == ["expert_user"]
    assert result.stats["by_persona"]["expert_user"] == len(result.entries)


def test_unknown_persona_lists_the_known_ones(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    message = _error(GenerationOptions.from_config, cfg, personas=["ghost"])
    assert "unknown persona(s) ghost" in message
    assert "novice_user, expert_user" in message


def test_unknown_strategy_lists_the_known_ones(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    message = _error(GenerationOptions.from_config, cfg, strategies="rephrase,shout")
    assert "unknown strategy(ies) 'shout'" in message
    assert "rephrase, verbose, concise, typo" in message


def test_strategy_without_a_deterministic_operator_is_an_error(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    message = _error(_generate, cfg, strategies=["custom"])
    assert "'custom'" in message
    assert "--mode llm" in message


def test_no_strategies_names_both_keys(tmp_path: Path) -> None:
    cfg = _project(tmp_path, input_cfg={"variation_strategies": []})
    message = _error(GenerationOptions.from_config, cfg)
    assert "variation_strategies" in message
    assert "input_generation.strategies" in message
    assert "configs/input.yaml" in message


def test_input_generation_strategies_come_before_variation_strategies(tmp_path: Path) -> None:
    cfg = _project(tmp_path, input_cfg={"input_generation": {"strategies": ["typo"]}})
    assert GenerationOptions.from_config(cfg).strategies == ("typo",)
    assert GenerationOptions.from_config(cfg, strategies=["concise"]).strategies == ("concise",)


def test_no_base_inputs_is_an_error(tmp_path: Path) -> None:
    cfg = _project(tmp_path, input_cfg={"base_inputs": None})
    assert "no base_inputs in configs/input.yaml" in _error(GenerationOptions.from_config, cfg)


def test_out_of_range_values_are_errors(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    assert "--limit must be at least 1" in _error(GenerationOptions.from_config, cfg, limit=0)
    assert "--offset must be at least 0" in _error(GenerationOptions.from_config, cfg, offset=-1)
    assert "unknown generation mode 'fast'" in _error(
        GenerationOptions.from_config, cfg, mode="fast"
    )
    options = GenerationOptions.from_config(cfg, concurrency=50)
    assert options.concurrency == 16
    assert any("more than 16" in notice for notice in options.notices)


def test_llm_mode_disabled_in_the_config_is_an_error(tmp_path: Path) -> None:
    cfg = _project(tmp_path, input_cfg={"input_generation": {"llm": {"enabled": False}}})
    message = _error(GenerationOptions.from_config, cfg, mode="llm")
    assert "input_generation.llm.enabled is false" in message
    assert "--mode deterministic" in message


def test_output_defaults_to_the_file_run_experiment_reads(tmp_path: Path) -> None:
    cfg = _project(tmp_path / "default")
    options = GenerationOptions.from_config(cfg)
    assert options.output == cfg.project_root / "inputs" / "generated.yaml"
    assert not options.notices
    cfg = _project(tmp_path / "named", input_cfg={"inputs_file": "inputs/mine.yaml"})
    assert GenerationOptions.from_config(cfg).output == cfg.project_root / "inputs" / "mine.yaml"
    options = GenerationOptions.from_config(cfg, output="inputs/batch1.yaml")
    assert options.output == cfg.project_root / "inputs" / "batch1.yaml"
    assert options.notices == (
        "run experiment reads inputs/mine.yaml; run this file with --inputs inputs/batch1.yaml",
    )


# --------------------------------------------------------------------------- errors


def test_nothing_generated_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    options = GenerationOptions.from_config(cfg, output="inputs/out.yaml")
    for operator in (scripted_operator({}), scripted_operator({"rephrase": ["{base}"]})):
        with pytest.raises(GenerationError, match=r"^generation produced no inputs: ") as info:
            generate_inputs(cfg, options, operator=operator)
        assert "strategy(ies) made no variation" in str(info.value) or "removed" in str(info.value)
    assert not options.output.exists()


# --------------------------------------------------------------------------- the file


def test_an_existing_file_is_not_overwritten_without_overwrite(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    options, result = _generate(cfg)
    options.output.parent.mkdir(parents=True)
    options.output.write_text("precious: true\n")
    with pytest.raises(OutputExistsError) as info:
        write_inputs_file(result, options.output, overwrite=False, display="inputs/generated.yaml")
    assert str(info.value) == "inputs/generated.yaml exists; pass --overwrite to replace it"
    assert options.output.read_text() == "precious: true\n"
    write_inputs_file(result, options.output, overwrite=True)
    assert options.output.read_text(encoding="utf-8") == render_inputs_file(result)


def test_the_write_is_atomic_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _project(tmp_path)
    options, result = _generate(cfg)
    path = write_inputs_file(result, options.output, overwrite=False)
    assert sorted(p.name for p in path.parent.iterdir()) == ["generated.yaml"]
    assert path.stat().st_mode & 0o777 == 0o644
    before = path.read_bytes()

    def broken_replace(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    _, other = _generate(cfg, seed=5)
    message = _error(write_inputs_file, other, path, overwrite=True)
    assert "No space left on device" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["generated.yaml"]


def test_parent_folders_are_created(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    _, result = _generate(cfg)
    path = write_inputs_file(result, tmp_path / "deep" / "er" / "inputs.yaml", overwrite=False)
    assert path.is_file()


def test_the_file_is_what_run_experiment_reads(tmp_path: Path) -> None:
    cfg = _project(tmp_path, iterations=3)
    options, result = _generate(cfg)
    write_inputs_file(result, options.output, overwrite=False)
    parsed = InputsFile.model_validate(yaml.safe_load(options.output.read_text(encoding="utf-8")))
    assert len(parsed.entries) == len(result.entries)
    assert parsed.generation_config == result.generation_config
    reloaded = load_config(cfg.config_path)
    plan = plan_experiment(reloaded)
    assert plan.source == str(options.output)
    assert plan.total == len(result.entries) * 3
    first = load_inputs(reloaded).items[0]
    assert (first.input, first.persona) == (BASE_INPUTS[0]["input"], "novice_user")
    assert first.persona_description == "First-time customer"
    assert first.metadata["strategy"] == "base"
    experiment = Experiment.load(cfg.config_path)
    assert len(experiment.cases) == len(result.entries) * 3


def test_a_batch_file_runs_with_inputs(tmp_path: Path) -> None:
    cfg = _project(tmp_path)
    options, batch = _generate(cfg, limit=4, offset=4, output="inputs/batch2.yaml")
    write_inputs_file(batch, options.output, overwrite=False)
    overrides = Overrides(inputs_file="inputs/batch2.yaml")
    experiment = Experiment.load(cfg.config_path, overrides)
    cases = sorted(experiment.cases, key=lambda case: case.input_index)
    assert [case.input for case in cases] == [e["input"] for e in batch.entries]
    assert [case.persona for case in cases] == [e["persona"] for e in batch.entries]


def test_replacing_options_keeps_the_plan(tmp_path: Path) -> None:
    # GenerationOptions is a frozen dataclass: callers may adjust a resolved copy.
    cfg = _project(tmp_path)
    options = GenerationOptions.from_config(cfg)
    again = generate_inputs(cfg, replace(options, count=1))
    assert all(v <= len(BASE_INPUTS) * len(PERSONAS) for v in again.stats["by_strategy"].values())
