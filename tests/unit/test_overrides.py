"""The override table and everything generated from it agree.

One row of ``pytest_fluxloop.config.overrides.OVERRIDES`` must reach: the ``Overrides`` model,
the simulation.yaml key it sets, the pytest parser, the ``fluxloop run experiment`` click
command, the pytest command line the CLI builds (which must parse back into the same
``Overrides``), and the marker's keyword arguments. Every test here is parametrized over the
table, so a new row is checked without touching this file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import pytest

from pytest_fluxloop.cli import run as run_module
from pytest_fluxloop.cli.bridge import API_KEY_ENV
from pytest_fluxloop.cli.pytest_args import (
    BOOL_FLAGS,
    NOT_FORWARDED,
    VALUE_FLAGS,
    build_pytest_args,
    override_args,
)
from pytest_fluxloop.config import Overrides, load_config
from pytest_fluxloop.config import loader as loader_module
from pytest_fluxloop.config.models import SimulationConfig
from pytest_fluxloop.config.overrides import (
    MARKER_FIELDS,
    OVERRIDES,
    SIMULATION_PATHS,
    SUPERVISOR_KEY_ENV,
    OverrideSpec,
    option_name,
    spec_for,
)
from pytest_fluxloop.plugin import marker as marker_module
from pytest_fluxloop.plugin.options import overrides_from_options

ROWS = {spec.name: spec for spec in OVERRIDES}
BOOL_ROWS = [spec for spec in OVERRIDES if spec.kind == "bool"]
CONFIG = Path("/proj/configs/simulation.yaml")


def _id(spec: OverrideSpec) -> str:
    return spec.name


def sample(spec: OverrideSpec, base: Path, flag_value: bool = True) -> Any:
    """A valid value of ``spec``'s kind (valid for every current row's config range)."""
    if spec.kind == "int":
        return 3  # inside iterations 1-1000 and max_turns 2-50
    if spec.kind == "float":
        return 0.5
    if spec.kind == "str":
        return spec.choices[-1] if spec.choices else f"sample-{spec.name}"
    if spec.kind == "list":
        return ["novice_user", "expert_user"]
    if spec.kind == "bool":
        return flag_value
    assert spec.kind == "path"
    return str(base / spec.name)


def all_samples(base: Path, flag_value: bool = True) -> dict[str, Any]:
    return {spec.name: sample(spec, base, flag_value) for spec in OVERRIDES}


def cli_text(spec: OverrideSpec, value: Any) -> list[str]:
    """``value`` as a user types it for ``spec`` on the ``fluxloop run experiment`` line."""
    if spec.kind == "bool":
        on, off = spec.cli[0].split("/")
        return [on if value else off]
    text = ",".join(value) if isinstance(value, list) else str(value)
    return [spec.cli[0], text]


# --------------------------------------------------------------------------- the table


def test_rows_are_unique_and_spell_each_flag_once() -> None:
    assert len(ROWS) == len(OVERRIDES)
    flags: list[str] = []
    for spec in OVERRIDES:
        flags += [part for decl in spec.cli for part in decl.split("/")]
        flags += list(spec.pytest)
    duplicates = sorted({flag for flag in flags if flags.count(flag) > 1})
    assert not duplicates


def test_rows_do_not_shadow_the_overrides_base_class() -> None:
    taken = set(dir(loader_module.OverridesBase)) | {"style"}
    assert not taken & set(ROWS)


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "str"},  # bool row without --on/--off spelling
        {"pytest": ("--fluxloop-multi-turn",)},  # bool without its off flag
        {"pytest": (), "pytest_help": ()},  # forwarded but no pytest flag
        {"secret": True},  # a secret on the command line
        {"path": object()},  # path rule on a bool
    ],
)
def test_malformed_rows_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="override 'multi_turn'"):
        replace(ROWS["multi_turn"], **change)


def test_spec_for_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: iterations, personas"):
        spec_for("iteratons")


def test_api_key_env_is_the_one_the_bridge_and_supervisors_use() -> None:
    from pytest_fluxloop.supervisors.factory import SUPERVISOR_KEY_ENV as factory_env

    assert SUPERVISOR_KEY_ENV == API_KEY_ENV == factory_env
    assert ROWS["supervisor_api_key"].env == SUPERVISOR_KEY_ENV


# --------------------------------------------------------------------------- Overrides model


def test_overrides_model_has_one_field_per_row_in_table_order() -> None:
    assert list(Overrides.model_fields) == ["style", *ROWS]


@pytest.mark.parametrize("spec", OVERRIDES, ids=_id)
def test_overrides_field_type_default_and_repr(spec: OverrideSpec, tmp_path: Path) -> None:
    field = Overrides.model_fields[spec.name]
    assert field.annotation == (spec.value_type | None)
    assert field.default is None
    assert field.repr is not spec.secret
    value = sample(spec, tmp_path)
    overrides = Overrides(**{spec.name: value})
    assert overrides.get(spec.name) == value
    assert overrides.given() == {spec.name: value}
    assert (repr(value) in repr(overrides)) is not spec.secret


def test_overrides_get_refuses_unknown_names() -> None:
    with pytest.raises(KeyError, match="not a config override"):
        Overrides().get("iteratons")


@pytest.mark.parametrize("spec", OVERRIDES, ids=_id)
def test_option_names_come_from_the_table(spec: OverrideSpec) -> None:
    assert Overrides().option(spec.name) == spec.cli[0].split("/")[0]
    expected = spec.pytest[0] if spec.pytest else spec.env
    assert Overrides(style="pytest").option(spec.name) == expected
    assert option_name(spec.name, "cli") == spec.cli_flag


# --------------------------------------------------------------------------- simulation.yaml


def test_loader_applies_the_tables_yaml_paths() -> None:
    assert loader_module._SIMULATION_PATHS == SIMULATION_PATHS
    assert {s.name: s.yaml for s in OVERRIDES if s.yaml is not None} == SIMULATION_PATHS


@pytest.mark.parametrize("spec", [s for s in OVERRIDES if s.yaml], ids=_id)
def test_yaml_path_is_a_simulation_setting_and_the_override_lands_there(
    spec: OverrideSpec, tmp_path: Path
) -> None:
    assert spec.yaml is not None
    model: Any = SimulationConfig
    for key in spec.yaml:  # every step is a field of the (nested) model
        assert key in model.model_fields, f"{spec.name}: {'.'.join(spec.yaml)}"
        model = model.model_fields[key].annotation
    config = tmp_path / "configs" / "simulation.yaml"
    config.parent.mkdir()
    config.write_text("name: t\ndescription: d\nrunner: {target: 'a:b'}\n")
    value = sample(spec, tmp_path / "project-out")
    if spec.kind == "path":
        value = "out"  # inside the project (output_directory must stay inside)
    loaded = load_config(config, Overrides(**{spec.name: value}))
    node: Any = loaded.simulation
    for key in spec.yaml:
        node = getattr(node, key)
    assert node == value


# --------------------------------------------------------------------------- pytest parser


def _fluxloop_options(pytester: pytest.Pytester) -> dict[str, Any]:
    config = pytester.parseconfig()
    group = config._parser.getgroup("fluxloop")
    return {name: option for option in group.options for name in option.names()}


@pytest.mark.parametrize("spec", OVERRIDES, ids=_id)
def test_every_row_reaches_the_pytest_parser(spec: OverrideSpec, pytester: pytest.Pytester) -> None:
    options = _fluxloop_options(pytester)
    if not spec.pytest:
        assert spec.env and not spec.forwarded  # travels in the environment instead
        assert not any(spec.name.replace("_", "-") in name for name in options)
        return
    for flag, help_text in zip(spec.pytest, spec.pytest_help, strict=True):
        attrs = options[flag].attrs()
        assert attrs["dest"] == spec.pytest_dest
        assert attrs["help"] == help_text
    attrs = options[spec.pytest[0]].attrs()
    assert attrs["default"] is None  # not given = not overridden
    if spec.kind != "bool":
        assert attrs.get("metavar") == spec.metavar
        assert tuple(attrs.get("choices") or ()) == spec.choices
        assert attrs.get("type") == {"int": int, "float": float}.get(spec.kind)


def test_pytest_options_keep_their_order(pytester: pytest.Pytester) -> None:
    # After the table's rows: the options that are not config overrides.
    run_options = [
        "--fluxloop-progress",
        "--fluxloop-gate",
        "--fluxloop-report",
        "--fluxloop-strict-judges",
        "--fluxloop-no-evaluate",
    ]
    names = list(_fluxloop_options(pytester))
    expected = [flag for spec in OVERRIDES for flag in spec.pytest]
    assert names == ["--fluxloop-config", *expected, *run_options]


# --------------------------------------------------------------------------- argv round trip


def _parse_back(
    pytester: pytest.Pytester, args: list[str], monkeypatch: pytest.MonkeyPatch, key: str | None
) -> Overrides:
    """What the plugin makes of ``args``: the real pytest parser, then the plugin's reader."""
    if key is None:
        monkeypatch.delenv(SUPERVISOR_KEY_ENV, raising=False)
    else:  # how bridge.run_pytest hands the key over
        monkeypatch.setenv(SUPERVISOR_KEY_ENV, key)
    config = pytester.parseconfig(*args)
    return overrides_from_options(config)


@pytest.mark.parametrize("flag_value", [True, False])
def test_argv_round_trips_every_override(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, flag_value: bool
) -> None:
    values = all_samples(pytester.path.resolve(), flag_value)
    original = Overrides(**values)
    args = build_pytest_args(CONFIG, original, progress=False, quiet=False)
    assert args[:2] == [str(CONFIG), f"--fluxloop-config={CONFIG}"]
    parsed = _parse_back(pytester, args[2:], monkeypatch, original.text("supervisor_api_key"))
    assert parsed.style == "pytest"
    assert parsed.given() == original.given()


@pytest.mark.parametrize("spec", OVERRIDES, ids=_id)
def test_argv_round_trips_each_override_alone(
    spec: OverrideSpec, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = [True, False] if spec.kind == "bool" else [sample(spec, pytester.path.resolve())]
    for value in values:
        original = Overrides(**{spec.name: value})
        args = override_args(original)
        assert len(args) == (1 if spec.forwarded else 0)
        key = value if spec.env else None
        assert _parse_back(pytester, args, monkeypatch, key).given() == {spec.name: value}


def test_compat_flag_tables_match_the_table() -> None:
    assert set(VALUE_FLAGS) | set(BOOL_FLAGS) | (NOT_FORWARDED - {"style"}) == set(ROWS)
    assert {s.name for s in OVERRIDES if not s.forwarded} | {"style"} == NOT_FORWARDED


def test_pytest_path_options_resolve_against_the_invocation_dir(
    pytester: pytest.Pytester,
) -> None:
    rows = [s for s in OVERRIDES if s.kind == "path"]
    config = pytester.parseconfig(*(f"{s.pytest[0]}=rel/{s.name}" for s in rows))
    parsed = overrides_from_options(config)
    for spec in rows:
        assert parsed.get(spec.name) == str((pytester.path / "rel" / spec.name).resolve())


def test_empty_pytest_list_option_is_not_an_override(pytester: pytest.Pytester) -> None:
    rows = [s for s in OVERRIDES if s.kind == "list"]
    config = pytester.parseconfig(*(f"{s.pytest[0]}= , " for s in rows))
    assert overrides_from_options(config).given() == {}


# --------------------------------------------------------------------------- click command


def _click_params() -> dict[str, click.Parameter]:
    return {str(param.name): param for param in run_module.run_experiment.params}


@pytest.mark.parametrize("spec", OVERRIDES, ids=_id)
def test_every_row_reaches_the_click_command(spec: OverrideSpec) -> None:
    param = _click_params()[spec.name]
    assert isinstance(param, click.Option)
    declared = [part for decl in spec.cli for part in decl.split("/")]
    assert sorted([*param.opts, *param.secondary_opts]) == sorted(declared)
    assert param.help == spec.cli_help
    assert param.default is None
    if spec.kind == "bool":
        assert param.is_flag
    elif spec.choices:
        assert isinstance(param.type, click.Choice)
        assert tuple(param.type.choices) == spec.choices
    elif spec.kind == "path":
        assert isinstance(param.type, click.Path)
        assert spec.path is not None
        assert (param.type.dir_okay, param.type.file_okay) == (
            spec.path.is_dir,
            not spec.path.is_dir,
        )
    else:
        expected = {"int": click.INT, "float": click.FLOAT}.get(spec.kind, click.STRING)
        assert param.type == expected


def test_click_options_keep_table_order_between_root_and_yes() -> None:
    names = list(_click_params())
    assert names == [
        "config",
        "project",
        "root",
        *ROWS,
        "yes",
        "dry_run",
        "display",
        "gates",
        "strict_judges",
        "report",
        "no_evaluate",
        "pytest_args",
    ]


def _cli_parse(argv: list[str], cwd: Path, project_root: Path) -> Overrides:
    """The click command's parse of ``argv``, turned into Overrides as the command does."""
    command = run_module.run_experiment
    ctx = command.make_context("experiment", argv)
    values = {name: ctx.params[name] for name in ROWS}
    return run_module._cli_overrides(ctx, values, cwd, project_root)


@pytest.mark.parametrize("flag_value", [True, False])
def test_cli_options_to_pytest_argv_and_back(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, flag_value: bool
) -> None:
    """CLI line -> Overrides -> pytest line -> the plugin's Overrides: the same values."""
    base = pytester.path.resolve()
    values = all_samples(base, flag_value)
    argv = [word for spec in OVERRIDES for word in cli_text(spec, values[spec.name])]
    from_cli = _cli_parse(argv, base, base / "project")
    assert from_cli.given() == values
    args = build_pytest_args(CONFIG, from_cli, progress=False, quiet=False)[2:]
    parsed = _parse_back(pytester, args, monkeypatch, from_cli.text("supervisor_api_key"))
    assert parsed.given() == values


@pytest.mark.parametrize("spec", OVERRIDES, ids=_id)
def test_every_cli_alias_sets_the_same_field(spec: OverrideSpec, tmp_path: Path) -> None:
    value = sample(spec, tmp_path)
    for decl in spec.cli:
        words = cli_text(replace(spec, cli=(decl,)), value)
        assert _cli_parse(words, tmp_path, tmp_path).given() == {spec.name: value}
        if spec.kind == "bool":
            off = cli_text(replace(spec, cli=(decl,)), False)
            assert _cli_parse(off, tmp_path, tmp_path).given() == {spec.name: False}


@pytest.mark.parametrize("spec", [s for s in OVERRIDES if s.kind == "path"], ids=_id)
def test_cli_relative_paths(spec: OverrideSpec, tmp_path: Path) -> None:
    cwd, project = tmp_path / "cwd", tmp_path / "project"
    cwd.mkdir()
    only_in_project = project / "inputs" / "x"
    only_in_project.parent.mkdir(parents=True)
    if spec.path is not None and spec.path.is_dir:
        only_in_project.mkdir()
    else:
        only_in_project.write_text("")
    parsed = _cli_parse([spec.cli[0], "inputs/x"], cwd, project).get(spec.name)
    assert spec.path is not None
    if spec.path.cli_base == "cwd_or_project":
        assert parsed == "inputs/x"  # the loader resolves it against the project root
    else:
        assert parsed == str(cwd / "inputs" / "x")
    # Something at the cwd spelling: always taken from the cwd.
    (cwd / "inputs").mkdir()
    if spec.path.is_dir:
        (cwd / "inputs" / "x").mkdir()
    else:
        (cwd / "inputs" / "x").write_text("")
    assert _cli_parse([spec.cli[0], "inputs/x"], cwd, project).get(spec.name) == str(
        cwd / "inputs" / "x"
    )


@pytest.mark.parametrize("spec", [s for s in OVERRIDES if s.kind == "list"], ids=_id)
def test_cli_empty_list_is_a_usage_error(spec: OverrideSpec, tmp_path: Path) -> None:
    with pytest.raises(click.BadParameter, match="give at least one"):
        _cli_parse([spec.cli[0], " , "], tmp_path, tmp_path)


# --------------------------------------------------------------------------- marker


def test_marker_accepts_exactly_the_marker_rows() -> None:
    assert set(marker_module._MARKER_OVERRIDES) == {s.name for s in OVERRIDES if s.marker}
    assert tuple(s.name for s in OVERRIDES if s.marker) == MARKER_FIELDS
    assert marker_module.MARKER_HELP.endswith(f"overrides: {', '.join(MARKER_FIELDS)}.")


@pytest.mark.parametrize("name", MARKER_FIELDS)
def test_marker_kwargs_become_overrides(name: str, pytester: pytest.Pytester) -> None:
    value = sample(ROWS[name], pytester.path)
    parsed = overrides_from_options(pytester.parseconfig(), **{name: value})
    assert parsed.given() == {name: value}
