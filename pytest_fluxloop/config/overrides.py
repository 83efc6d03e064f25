"""The one table of config overrides: each setting the CLI, pytest or a marker can override.

Every override is described once, here. Everything else is generated from ``OVERRIDES``:

* the ``Overrides`` pydantic model and the simulation.yaml key paths it sets
  (``config/loader.py``),
* the ``--fluxloop-*`` pytest options and ``overrides_from_options`` (``plugin/options.py``),
* the ``fluxloop run experiment`` click options and their conversion (``cli/run.py``),
* the pytest command line the CLI builds (``cli/pytest_args.py``),
* the keyword arguments ``@pytest.mark.fluxloop`` accepts (``plugin/marker.py``).

Adding an override means adding one ``OverrideSpec`` row. ``tests/unit/test_overrides.py``
checks that each artefact agrees with the table.

This module imports neither pydantic, click nor pytest: the CLI and the pytest plugin read it
at import time and both must stay cheap to import.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CASSETTE_MODES",
    "MARKER_FIELDS",
    "OVERRIDES",
    "SIMULATION_PATHS",
    "SUPERVISOR_KEY_ENV",
    "SUPERVISOR_PROVIDERS",
    "OverrideSpec",
    "PathRule",
    "Style",
    "option_name",
    "spec_for",
    "split_names",
]

Kind = Literal["int", "float", "str", "list", "bool", "path"]
"""Value kinds: ``list`` is comma-separated text on the command line (a list of str in the
model); ``bool`` is an on/off pair of flags; ``path`` is text resolved as ``PathRule`` says."""

Style = Literal["cli", "pytest"]
"""Which spelling messages use: ``fluxloop run experiment`` options or ``--fluxloop-*``."""

SUPERVISOR_PROVIDERS = ("openai", "anthropic", "mock")
CASSETTE_MODES = ("off", "record", "replay", "new", "rewrite")
SUPERVISOR_KEY_ENV = "FLUXLOOP_SUPERVISOR_API_KEY"


@dataclass(frozen=True)
class PathRule:
    """How a ``path`` override is checked and resolved.

    pytest options (``--fluxloop-inputs`` ...) always resolve against pytest's invocation
    directory, like pytest's own path arguments. The CLI resolves against its current
    directory; with ``cli_base="cwd_or_project"``, a relative path that exists only under
    the project root (the FluxLoop convention, e.g. ``--inputs inputs/x.yaml``) keeps its
    project-relative spelling for the loader instead.

    With ``stays_inside`` (the output directory), a relative value must stay inside the
    directory it is relative to once ``..`` and symlinks are followed, and it reaches the
    loader made absolute but *not* resolved, so the loader's check still sees its symlinks:
    one rule for the config and both command lines
    (:func:`pytest_fluxloop.artifacts.paths.resolve_output_root`).
    """

    is_dir: bool
    """True: a directory (click refuses a file); False: a file (click refuses a directory)."""
    cli_base: Literal["cwd", "cwd_or_project"] = "cwd"
    stays_inside: bool = False
    """Refuse a relative value that ``..`` or a symlink leads out of its base directory."""


@dataclass(frozen=True)
class OverrideSpec:
    """One override: its field, where it lands in simulation.yaml, and how users spell it."""

    name: str
    """Field of ``Overrides`` (and the marker keyword argument, when ``marker``)."""
    kind: Kind
    yaml: tuple[str, ...] | None
    """Key path set inside simulation.yaml; None when the value is not a simulation.yaml
    key (it is read from ``Overrides`` directly, e.g. ``personas``, ``resume``, ``shard``)."""
    cli: tuple[str, ...]
    """Click declarations of ``fluxloop run experiment``, aliases included, as click takes
    them: ``("--iterations", "-i")``; a bool as ``"--on/--off"`` pairs."""
    cli_help: str
    pytest: tuple[str, ...] = ()
    """The pytest option; for a bool the (on, off) pair. Empty: no pytest option."""
    pytest_help: tuple[str, ...] = ()
    """Help of each ``pytest`` flag, in the same order."""
    metavar: str | None = None
    """pytest metavar (click keeps its own type names, e.g. INTEGER, PATH)."""
    choices: tuple[str, ...] = ()
    marker: bool = False
    """Accepted as a ``@pytest.mark.fluxloop(...)`` keyword argument."""
    forwarded: bool = True
    """Put on the pytest command line the CLI builds; False: travels in ``env`` instead."""
    env: str | None = None
    """Environment variable the pytest plugin reads this value from (when not forwarded)."""
    secret: bool = False
    """Hidden from ``repr`` and never put on a command line."""
    path: PathRule | None = None
    item: str = "value"
    """``list`` only: what one item is called in the "give at least one" usage error."""
    example: str = ""
    """``list`` only: an example value for that error."""

    def __post_init__(self) -> None:
        # A malformed row would otherwise surface as a confusing click/pytest/pydantic error
        # far from here (or worse, an override that silently goes nowhere).
        problems = []
        if not self.cli or not self.cli_help:
            problems.append("needs cli flags and cli_help")
        if len(self.pytest_help) != len(self.pytest):
            problems.append("needs one pytest_help per pytest flag")
        if (self.kind == "bool") != all("/" in flag for flag in self.cli):
            problems.append("bool overrides (and only they) spell cli flags as --on/--off")
        if self.pytest and len(self.pytest) != (2 if self.kind == "bool" else 1):
            problems.append("pytest must be one flag, or the (on, off) pair for a bool")
        if (self.kind == "path") != (self.path is not None):
            problems.append("path overrides (and only they) need a PathRule")
        if self.forwarded and not self.pytest:
            problems.append("a forwarded override needs a pytest flag")
        if not self.forwarded and not self.env:
            problems.append("an override that is not forwarded must travel in an env variable")
        if self.secret and self.forwarded:
            problems.append("a secret must not be forwarded on the command line")
        if self.marker and not self.pytest:
            problems.append("a marker override needs a pytest flag (its messages name it)")
        if self.kind == "list" and not self.example:
            problems.append("list overrides need an example for their usage error")
        if problems:
            raise ValueError(f"override {self.name!r}: " + "; ".join(problems))

    @property
    def cli_flag(self) -> str:
        """The main CLI spelling, for messages: ``--inputs``, ``--multi-turn``."""
        return self.cli[0].split("/")[0]

    @property
    def cli_short(self) -> str:
        """The shortest CLI spelling, for examples: ``-p`` for ``--personas``."""
        return min((flag.split("/")[0] for flag in self.cli), key=len)

    @property
    def pytest_dest(self) -> str | None:
        """``config.getoption`` name of the pytest option: ``fluxloop_output_dir``."""
        return self.pytest[0].lstrip("-").replace("-", "_") if self.pytest else None

    @property
    def value_type(self) -> type | types.GenericAlias:
        """Python type of the value in ``Overrides`` (which adds ``| None``)."""
        return _VALUE_TYPES[self.kind]

    @property
    def empty_list_message(self) -> str:
        """Usage error for a ``list`` option given no items (e.g. ``--personas " , "``)."""
        return f"give at least one {self.item}, e.g. {self.cli_short} {self.example}"


_VALUE_TYPES: dict[str, type | types.GenericAlias] = {
    "int": int,
    "float": float,
    "str": str,
    "list": list[str],
    "bool": bool,
    "path": str,  # kept as text: the loader resolves it against the project root
}


# Order matters: it is the order of the pytest options in `pytest --help`, of the click
# options in `fluxloop run experiment --help`, of the Overrides fields and of the forwarded
# pytest arguments.
OVERRIDES: tuple[OverrideSpec, ...] = (
    OverrideSpec(
        name="iterations",
        kind="int",
        yaml=("iterations",),
        cli=("--iterations", "-i"),
        cli_help="Runs per input (1-1000). [default: config]",
        pytest=("--fluxloop-iterations",),
        pytest_help=("override iterations",),
        metavar="N",
        marker=True,
    ),
    OverrideSpec(
        name="personas",
        kind="list",
        yaml=None,
        cli=("--personas", "-p"),
        cli_help="Comma-separated personas to use. [default: all]",
        pytest=("--fluxloop-personas",),
        pytest_help=("comma-separated personas to run (default: all)",),
        metavar="A,B",
        marker=True,
        item="persona name",
        example="novice,expert",
    ),
    OverrideSpec(
        name="inputs_file",
        kind="path",
        yaml=None,
        cli=("--inputs",),
        cli_help="Inputs file to run instead of the configured one.",
        pytest=("--fluxloop-inputs",),
        pytest_help=("inputs file (default: inputs/generated.yaml)",),
        metavar="PATH",
        marker=True,
        path=PathRule(is_dir=False, cli_base="cwd_or_project"),
    ),
    OverrideSpec(
        name="output_directory",
        kind="path",
        yaml=("output_directory",),
        # --output/-o: the earlier fluxloop CLI's spelling, still in users' scripts.
        cli=("--output-dir", "--output", "-o"),
        cli_help="Directory for results (relative to the current directory). "
        "[default: config, experiments/]",
        pytest=("--fluxloop-output-dir",),
        pytest_help=("override output_directory",),
        metavar="PATH",
        marker=True,
        path=PathRule(is_dir=True, cli_base="cwd", stays_inside=True),
    ),
    OverrideSpec(
        # Not a simulation.yaml key: the collector sink reads it from Overrides.
        name="no_collector",
        kind="bool",
        yaml=None,
        cli=("--no-collector/--collector",),
        cli_help="Do not send traces to the collector configured in project.yaml (or "
        "--collector-url): they stay in local files only.",
        pytest=("--fluxloop-no-collector", "--fluxloop-collector"),
        pytest_help=(
            "do not send traces to a collector (local files only)",
            "send traces to the configured collector, if any",
        ),
    ),
    OverrideSpec(
        # project.yaml's collector_url, for this run: read from Overrides by the sink.
        name="collector_url",
        kind="str",
        yaml=None,
        cli=("--collector-url",),
        cli_help="Send every trace to the FluxLoop collector at this URL too (overrides "
        "project.yaml's collector_url; token: collector_api_key or FLUXLOOP_COLLECTOR_TOKEN).",
        pytest=("--fluxloop-collector-url",),
        pytest_help=("send every trace to the FluxLoop collector at this URL too",),
        metavar="URL",
    ),
    OverrideSpec(
        name="otel",
        kind="bool",
        yaml=("otel", "enabled"),
        cli=("--otel/--no-otel",),
        cli_help="Export each case as OpenTelemetry spans (GenAI conventions) through the "
        "application's tracer provider or OTLP from OTEL_EXPORTER_OTLP_*. [default: config]",
        pytest=("--fluxloop-otel", "--fluxloop-no-otel"),
        pytest_help=(
            "export each case as OpenTelemetry spans (otel.enabled)",
            "no OpenTelemetry export (otel.enabled: false)",
        ),
    ),
    OverrideSpec(
        name="capture_llm",
        kind="bool",
        yaml=("capture", "llm"),
        cli=("--capture-llm/--no-capture-llm",),
        cli_help="Record the agent's openai/anthropic calls as generation observations "
        "(capture.llm). [default: config]",
        pytest=("--fluxloop-capture-llm", "--fluxloop-no-capture-llm"),
        pytest_help=(
            "record the agent's openai/anthropic calls (capture.llm)",
            "do not record the agent's LLM calls (capture.llm: false)",
        ),
    ),
    OverrideSpec(
        name="cassettes",
        kind="str",
        yaml=("cassettes", "mode"),
        cli=("--cassettes",),
        cli_help="LLM-call cassettes: off, record (cases without a cassette), replay (never "
        "the network), new (record what is missing) or rewrite. [default: replay in CI when "
        "cassettes exist, else off]",
        pytest=("--fluxloop-cassettes",),
        pytest_help=(
            "LLM-call cassettes: off | record | replay | new | rewrite "
            "(default: replay when CI is set and cassettes exist, else off)",
        ),
        metavar="MODE",
        choices=CASSETTE_MODES,
    ),
    OverrideSpec(
        name="experiment_name",
        kind="str",
        yaml=("name",),
        cli=("--experiment-name", "--name"),
        cli_help="Custom experiment name.",
        pytest=("--fluxloop-experiment-name",),
        pytest_help=("experiment name (also the results folder suffix)",),
        metavar="NAME",
        marker=True,
    ),
    OverrideSpec(
        name="multi_turn",
        kind="bool",
        yaml=("multi_turn", "enabled"),
        cli=("--multi-turn/--no-multi-turn",),
        cli_help="Enable/disable supervisor-driven conversations. [default: config]",
        pytest=("--fluxloop-multi-turn", "--fluxloop-no-multi-turn"),
        pytest_help=("enable multi-turn conversations", "disable multi-turn conversations"),
    ),
    OverrideSpec(
        name="max_turns",
        kind="int",
        yaml=("multi_turn", "max_turns"),
        cli=("--max-turns",),
        cli_help="Maximum turns per conversation (2-50).",
        pytest=("--fluxloop-max-turns",),
        pytest_help=("maximum turns per conversation",),
        metavar="N",
    ),
    OverrideSpec(
        name="auto_approve_tools",
        kind="bool",
        yaml=("multi_turn", "auto_approve_tools"),
        cli=("--auto-approve-tools/--manual-approve-tools", "--auto-approve/--manual-approve"),
        cli_help="Tool approval behaviour in conversations. [default: config]",
        pytest=("--fluxloop-auto-approve-tools", "--fluxloop-manual-approve-tools"),
        pytest_help=("auto-approve tool calls", "do not auto-approve tool calls"),
    ),
    OverrideSpec(
        name="persona_override",
        kind="str",
        yaml=("multi_turn", "persona_override"),
        cli=("--persona-override", "--persona"),
        cli_help="Force one persona id.",
        pytest=("--fluxloop-persona-override",),
        pytest_help=("force one persona in multi-turn conversations",),
        metavar="ID",
    ),
    OverrideSpec(
        name="supervisor_provider",
        kind="str",
        yaml=("multi_turn", "supervisor", "provider"),
        cli=("--supervisor-provider",),
        cli_help="Supervisor implementation. [default: config]",
        pytest=("--fluxloop-supervisor-provider",),
        pytest_help=("override the supervisor provider",),
        choices=SUPERVISOR_PROVIDERS,
    ),
    OverrideSpec(
        name="supervisor_model",
        kind="str",
        yaml=("multi_turn", "supervisor", "model"),
        cli=("--supervisor-model",),
        cli_help="Supervisor model name. [default: config]",
        pytest=("--fluxloop-supervisor-model",),
        pytest_help=("override the supervisor model",),
        metavar="MODEL",
    ),
    OverrideSpec(
        name="supervisor_temperature",
        kind="float",
        yaml=("multi_turn", "supervisor", "temperature"),
        cli=("--supervisor-temperature",),
        cli_help="Supervisor sampling temperature (0-2).",
        pytest=("--fluxloop-supervisor-temperature",),
        pytest_help=("override the supervisor temperature",),
        metavar="T",
    ),
    OverrideSpec(
        name="supervisor_api_key",
        kind="str",
        yaml=("multi_turn", "supervisor", "api_key"),
        cli=("--supervisor-api-key",),
        cli_help="API key for supervisor calls (prefer the FLUXLOOP_SUPERVISOR_API_KEY or "
        "OPENAI_API_KEY environment variable: options are visible to other local users).",
        # Never on a command line (`ps`, argv-echoing reports, artifacts): the CLI hands it
        # to pytest in the environment, and the plugin reads it from there.
        forwarded=False,
        env=SUPERVISOR_KEY_ENV,
        secret=True,
    ),
    OverrideSpec(
        name="resume",
        kind="path",
        yaml=None,
        cli=("--resume",),
        cli_help="Resume an interrupted experiment directory, skipping completed cases.",
        pytest=("--fluxloop-resume",),
        pytest_help=("resume an earlier experiment folder",),
        metavar="DIR",
        path=PathRule(is_dir=True, cli_base="cwd_or_project"),
    ),
    OverrideSpec(
        # Not a simulation.yaml key: plan_experiment reads it from Overrides and keeps the
        # cases of shard K (pytest_fluxloop.plan.shards); "K/N" is checked there, with an
        # error naming the option as the user spelled it.
        name="shard",
        kind="str",
        yaml=None,
        cli=("--shard",),
        cli_help="Run only shard K of N (e.g. 2/3): a fixed, balanced slice of the cases, "
        "every iteration of one input × persona in the same shard (CI matrices; join the "
        "results with `fluxloop merge`).",
        pytest=("--fluxloop-shard",),
        pytest_help=("run only shard K of N of the cases (e.g. 2/3)",),
        metavar="K/N",
    ),
)

_BY_NAME: dict[str, OverrideSpec] = {spec.name: spec for spec in OVERRIDES}
if len(_BY_NAME) != len(OVERRIDES):  # pragma: no cover - guards edits of the table
    raise ValueError("OVERRIDES has two rows with the same name")

SIMULATION_PATHS: dict[str, tuple[str, ...]] = {
    spec.name: spec.yaml for spec in OVERRIDES if spec.yaml is not None
}
"""Override field -> key path inside simulation.yaml, for the loader."""

MARKER_FIELDS: tuple[str, ...] = tuple(spec.name for spec in OVERRIDES if spec.marker)
"""Override fields ``@pytest.mark.fluxloop(...)`` accepts as keyword arguments, in order."""


def spec_for(name: str) -> OverrideSpec:
    """The table row of override ``name``; KeyError listing the valid names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a config override; known: {', '.join(_BY_NAME)}") from None


def option_name(name: str, style: Style) -> str:
    """How the user gave override ``name``, for messages.

    ``cli``: the main ``fluxloop run experiment`` flag (``--inputs``); ``pytest``: the
    ``--fluxloop-*`` option, or the environment variable for a value that travels there.
    """
    spec = spec_for(name)
    if style == "pytest":
        if spec.pytest:
            return spec.pytest[0]
        if spec.env:
            return spec.env
    return spec.cli_flag


def split_names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: a ``list`` override as typed on a command line."""
    return [part.strip() for part in text.split(",") if part.strip()]
