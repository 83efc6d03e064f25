"""``--shard K/N``: a deterministic, balanced, group-preserving slice of the cases."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support.experiment_helpers import make_project

from pytest_fluxloop.config import Overrides
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.plan.cases import Case, expand_cases
from pytest_fluxloop.plan.inputs import InputItem, InputSet
from pytest_fluxloop.plan.shards import Shard, group_key, parse_shard, select_shard
from pytest_fluxloop.run import Experiment


def _cases(
    n_inputs: int = 7, personas: tuple[str, ...] = ("a", "b"), iterations: int = 3
) -> list[Case]:
    items = [
        InputItem(index, f"question {index}", persona, None, {})
        for index in range(n_inputs)
        for persona in personas
    ]
    inputs = InputSet(items, "test", n_inputs, len(personas), factored=True)
    return expand_cases(inputs, iterations, seed=1)


def _split(cases: list[Case], count: int) -> list[list[Case]]:
    return [select_shard(cases, Shard(k, count)) for k in range(1, count + 1)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 14])
def test_shards_are_disjoint_cover_every_case_and_keep_groups(count: int) -> None:
    cases = _cases()
    shards = _split(cases, count)
    ids = [c.case_id for shard in shards for c in shard]
    assert sorted(ids) == sorted(c.case_id for c in cases)  # disjoint and complete
    owner = {group_key(c): k for k, shard in enumerate(shards) for c in shard}
    for k, shard in enumerate(shards):
        assert all(owner[group_key(c)] == k for c in shard)  # a group is never split
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 3  # balanced within one group (3 iterations)


def test_group_is_input_times_persona_with_every_iteration() -> None:
    cases = _cases(n_inputs=2, personas=("a", "b"), iterations=4)
    groups: dict[str, set[int]] = {}
    for case in cases:
        groups.setdefault(group_key(case), set()).add(case.iteration)
    assert len(groups) == 4
    assert all(its == {0, 1, 2, 3} for its in groups.values())


def test_selection_does_not_depend_on_order_or_seed() -> None:
    cases = _cases()
    shuffled = list(cases)
    random.Random(99).shuffle(shuffled)
    reseeded = [
        c.model_copy(update={"seed": 5})
        for c in expand_cases(
            InputSet(
                [InputItem(i, f"question {i}", p, None, {}) for i in range(7) for p in ("a", "b")],
                "test",
                7,
                2,
                factored=True,
            ),
            3,
            seed=12345,
        )
    ]
    for k in (1, 2, 3):
        expected = {c.case_id for c in select_shard(cases, Shard(k, 3))}
        assert {c.case_id for c in select_shard(shuffled, Shard(k, 3))} == expected
        assert {c.case_id for c in select_shard(reseeded, Shard(k, 3))} == expected


def test_selection_keeps_the_given_order() -> None:
    cases = _cases()
    random.Random(3).shuffle(cases)
    kept = select_shard(cases, Shard(2, 3))
    positions = [cases.index(c) for c in kept]
    assert positions == sorted(positions)


@pytest.mark.parametrize(
    ("text", "expected"), [("1/3", Shard(1, 3)), (" 3 / 3 ", Shard(3, 3)), ("1/1", Shard(1, 1))]
)
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected
    assert str(expected) == f"{expected.index}/{expected.count}"


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "3", "a/b", "-1/3", "1/3/5", ""])
def test_bad_shard_is_an_error_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--fluxloop-shard: "):
        parse_shard(text, "--fluxloop-shard")


def test_more_shards_than_groups_is_a_clear_error() -> None:
    cases = _cases(n_inputs=1, personas=("a",), iterations=2)
    select_shard(cases, Shard(1, 2))  # one of the two shards gets the only group
    with pytest.raises(ConfigError, match=r"has no cases.*1 input × persona group"):
        _split(cases, 2)


def test_experiment_plans_its_shard(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    full = Experiment.load(config)
    ids: list[str] = []
    for k in (1, 2, 3):
        shard = Experiment.load(config, Overrides(shard=f"{k}/3"))
        assert shard.plan.shard == f"{k}/3"
        assert shard.plan.full_total == full.plan.total == 6
        assert shard.plan.run_metadata() == {"shard": f"{k}/3", "experiment_total_cases": 6}
        assert shard.plan.describe().endswith(f"= 6 runs; shard {k}/3: {shard.plan.total} runs")
        ids += [c.case_id for c in shard.cases]
    assert sorted(ids) == sorted(c.case_id for c in full.cases)
    assert full.plan.run_metadata() == {}


def test_experiment_shard_error_names_the_option(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path)
    with pytest.raises(ConfigError, match=r"^--shard: '4/3'"):
        Experiment.load(config, Overrides(shard="4/3"))
    with pytest.raises(ConfigError, match=r"^--fluxloop-shard: "):
        Experiment.load(config, Overrides(shard="x", style="pytest"))
