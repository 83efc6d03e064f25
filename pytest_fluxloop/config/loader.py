"""Find, read, merge and override the config files of one FluxLoop project.

One place decides every setting: ``simulation.yaml`` plus its companions ``project.yaml``,
``input.yaml`` and ``evaluation.yaml`` from the same folder, then overrides from the CLI or
pytest options. Overrides are applied to the raw data *before* validation, so they get exactly
the same checks (and messages name the option instead of a file line).

simulation.yaml may also hold the companions' keys (the earlier FluxLoop merged all four files
into one namespace); they are validated with the companion's model and their messages point at
simulation.yaml. All problems of all files are reported in one ConfigError.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..errors import ConfigError
from ..redact import Redactor
from .errors import format_validation_error
from .models import (
    EvaluationConfig,
    EvaluationOutput,
    InputConfig,
    LegacyOutputConfig,
    ProjectConfig,
    RunnerConfig,
    SimulationConfig,
)
from .overrides import OVERRIDES, SIMULATION_PATHS, Style, option_name, spec_for
from .yaml_io import KeyPath, YamlDocument, load_yaml

M = TypeVar("M", bound=BaseModel)

COMPANIONS = {"project": "project.yaml", "input": "input.yaml", "evaluation": "evaluation.yaml"}


class OverridesBase(BaseModel):
    """What every ``Overrides`` has besides the generated fields: the message style."""

    model_config = ConfigDict(extra="forbid")

    style: Style = Field(
        default="cli", description="Spell option names as the CLI or as pytest options."
    )

    if TYPE_CHECKING:
        # The override fields are generated from the OVERRIDES table, so mypy cannot see
        # them: attribute reads type-check as Any. Package code reads them with get().
        def __getattr__(self, name: str) -> Any: ...

    def option(self, name: str) -> str:
        """How the user typed override ``name`` (for messages): ``--inputs``,
        ``--fluxloop-inputs``, or the environment variable a pytest run reads it from."""
        return option_name(name, self.style)

    def get(self, name: str) -> Any:
        """The value of override ``name`` (None: not overridden); KeyError for a name that is
        not in the OVERRIDES table, so a typo is not read as "not overridden"."""
        return getattr(self, spec_for(name).name)

    def text(self, name: str) -> str | None:
        """``get`` for a text-valued override (``str`` and ``path`` kinds)."""
        value = self.get(name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"override {name!r} holds {type(value).__name__}, not text")
        return value

    def given(self) -> dict[str, Any]:
        """The overridden fields and their values, in table order."""
        values = ((spec.name, self.get(spec.name)) for spec in OVERRIDES)
        return {name: value for name, value in values if value is not None}


def _override_fields() -> dict[str, Any]:
    """``create_model`` field definitions: one ``<type> | None`` field per table row."""
    return {
        spec.name: (spec.value_type | None, Field(default=None, repr=not spec.secret))
        for spec in OVERRIDES
    }


if TYPE_CHECKING:

    class Overrides(OverridesBase):
        """Settings given on the command line; ``None`` means "not overridden"."""

else:
    Overrides = create_model(
        "Overrides",
        __base__=OverridesBase,
        __module__=__name__,
        __doc__='Settings given on the command line; ``None`` means "not overridden".\n\n'
        "One field per row of ``pytest_fluxloop.config.overrides.OVERRIDES``.",
        **_override_fields(),
    )


# Override field -> key path inside simulation.yaml (from the table).
_SIMULATION_PATHS: dict[str, tuple[str, ...]] = SIMULATION_PATHS


@dataclass
class LoadedConfig:
    """Every setting of one experiment, validated, with where it came from."""

    simulation: SimulationConfig
    config_path: Path
    project_root: Path
    project: ProjectConfig | None = None
    input: InputConfig | None = None
    evaluation: EvaluationConfig | None = None
    overrides: Overrides = field(default_factory=Overrides)
    sources: dict[str, Path] = field(default_factory=dict)
    """Kind (``simulation``, ``project``, ``input``, ``evaluation``) -> the file it was read
    from: the companion file, or simulation.yaml when only simulation.yaml holds that
    section (a single-file config)."""
    notices: list[str] = field(default_factory=list)
    """Settings accepted but not (fully) acted on, each naming file:line and key; callers
    must show them (never a reason to stop)."""
    file_secrets: frozenset[str] = frozenset()
    """Secret values written in simulation.yaml, including ones an override replaced."""
    env_files: list[Path] = field(default_factory=list)
    """The ``.env`` files read, in order (the project's, then its FluxLoop root's)."""
    inline_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    """Kind -> the keys of that section written in simulation.yaml (not in the companion)."""

    def source_of(self, kind: str, key: str) -> Path | None:
        """The file that set top-level ``key`` of section ``kind`` (for messages): the
        companion file, or simulation.yaml for a key written there; None: no such section."""
        if key in self.inline_keys.get(kind, frozenset()):
            return self.config_path
        return self.sources.get(kind)

    @property
    def config_dir(self) -> Path:
        """The folder holding simulation.yaml and its companions."""
        return self.config_path.parent

    def resolve(self, path: str | Path) -> Path:
        """A path from a config file, relative to the project root."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.project_root / candidate)

    @property
    def experiment_name(self) -> str:
        """The experiment's name (``--experiment-name`` overrides ``name``)."""
        return self.simulation.name

    @property
    def service_context(self) -> str | None:
        """``project.yaml`` ``metadata.service_context``."""
        return self.project.metadata.service_context if self.project else None

    def secrets(self) -> frozenset[str]:
        """Every secret value these settings hold, for the run's redactors.

        The ``api_key`` fields of every config file (after overrides, so
        ``--supervisor-api-key`` is here, and before them: a key the option replaced is still
        a real key), secret override values, and string values under secret-looking keys
        anywhere else (``metadata``, ``model_parameters`` ...). Values are
        taken as written and stripped (the stripped one is what gets sent). The
        environment's keys are not listed: a ``Redactor`` reads those itself.
        """
        found: set[str] = set(self.file_secrets)
        _collect_secrets(self.snapshot(), found)
        for spec in OVERRIDES:
            value = self.overrides.get(spec.name) if spec.secret else None
            if isinstance(value, str):
                found.add(value)
        return frozenset(v for value in found for v in (value, value.strip()) if v)

    def redactor(self) -> Redactor:
        """A redactor for this run's artifacts and messages: its secrets (:meth:`secrets`),
        the environment's, every credential shape, and ``capture.redact_keys`` /
        ``capture.redact_patterns``."""
        capture = self.simulation.capture
        return Redactor(
            extra_secrets=self.secrets(),
            extra_keys=capture.redact_keys,
            extra_patterns=capture.redact_patterns,
        )

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready copy of all settings for ``config.yaml``/``summary.json`` (not redacted)."""
        snap: dict[str, Any] = {"simulation": self.simulation.model_dump(mode="json")}
        for key in COMPANIONS:
            model = getattr(self, key)
            if model is not None:
                snap[key] = model.model_dump(mode="json", exclude_defaults=True)
        return snap


# Key names (lower-cased, without separators) whose values are secrets. The redactor's own
# key test lives in redact.py, which config/ must not import; this is the narrow part of it
# that config files use (api_key, collector_api_key, token, password ...).
_SECRET_KEY_ENDINGS = (
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "privatekey",
    "accesskey",
    "credential",
    "credentials",
)


def _is_secret_field(key: str) -> bool:
    flat = "".join(ch for ch in key.lower() if ch.isalnum())
    return flat.endswith(_SECRET_KEY_ENDINGS)


def _collect_secrets(data: Any, found: set[str]) -> None:
    """Add the string values stored under secret-looking keys in ``data`` to ``found``."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and isinstance(key, str) and _is_secret_field(key):
                found.add(value)
            else:
                _collect_secrets(value, found)
    elif isinstance(data, list):
        for value in data:
            _collect_secrets(value, found)


def project_root_for(config_path: Path) -> Path:
    """The project root: the parent of a ``configs/`` folder, else the config's own folder."""
    folder = config_path.parent
    return folder.parent if folder.name == "configs" else folder


_COMPANION_MODELS: dict[str, type[BaseModel]] = {
    "project": ProjectConfig,
    "input": InputConfig,
    "evaluation": EvaluationConfig,
}

SECTION_KEYS: dict[str, frozenset[str]] = {
    kind: frozenset(model.model_fields) - frozenset(SimulationConfig.model_fields)
    for kind, model in _COMPANION_MODELS.items()
}
"""Keys of each companion file that simulation.yaml may hold too (a single-file config: the
earlier FluxLoop merged the four files into one namespace). ``name``/``description`` stay the
simulation's; ``output`` is evaluation's only in its report-file form (see ``_split_sections``)."""

_EVALUATION_OUTPUT_KEYS = frozenset(EvaluationOutput.model_fields)
_LEGACY_OUTPUT_KEYS = frozenset(LegacyOutputConfig.model_fields)


def load_config(path: Path | str, overrides: Overrides | None = None) -> LoadedConfig:
    """Load ``simulation.yaml`` at ``path`` with its companions and apply ``overrides``.

    Companion sections written inside simulation.yaml (a single-file config) are validated
    with the companion's model; a key set in both files must hold the same value. Every
    problem of every file is collected first: the one ConfigError lists them all, each
    naming the file, line, key and a fix. Settings that are accepted but not acted on are
    listed in ``LoadedConfig.notices``.
    """
    overrides = overrides or Overrides()
    config_path = Path(path).expanduser().resolve()
    if not config_path.is_file():
        raise ConfigError(
            f"config file not found: {config_path} "
            "(pass --fluxloop-config / --config with the path to configs/simulation.yaml)"
        )
    root = project_root_for(config_path)
    env_files = load_project_dotenv(root)
    problems: list[str] = []
    notices: list[str] = []

    doc, raw = _read_mapping(config_path, "simulation config", problems)
    file_secrets: set[str] = set()
    inline: dict[str, dict[str, Any]] = {}
    simulation: SimulationConfig | None = None
    if doc is not None and raw is not None:
        _collect_secrets(raw, file_secrets)  # before overrides replace any of them
        inline = _split_sections(raw)
        _collect(problems, _apply_legacy_aliases, raw, doc)
        labels: dict[KeyPath, str] = {}
        for name, key_path in _SIMULATION_PATHS.items():
            value = overrides.get(name)
            if value is not None:
                _set_path(raw, key_path, value)
                labels[key_path] = overrides.option(name)
        simulation = _collect(problems, validate, SimulationConfig, raw, doc, labels)
        runner = simulation.runner if simulation is not None else _valid_runner(raw)
        if runner is not None:
            _check_runner(runner, doc, problems, notices)

    sources: dict[str, Path] = {"simulation": config_path}
    inline_keys: dict[str, frozenset[str]] = {}
    companions: dict[str, Any] = {}
    for kind, filename in COMPANIONS.items():
        companion = config_path.parent / filename
        cdoc: YamlDocument | None = None
        cdata: dict[str, Any] = {}
        if companion != config_path and companion.is_file():
            cdoc, read = _read_mapping(companion, f"{kind} config", problems, empty_ok=True)
            if cdoc is None or read is None:
                continue
            cdata = read
        section = inline.get(kind, {})
        if cdoc is None and (doc is None or not section):
            continue
        data, vdoc = _merge_section(section, doc, cdata, cdoc, problems)
        model = _collect(problems, validate, _COMPANION_MODELS[kind], data, vdoc)
        if model is not None:
            companions[kind] = model
            sources[kind] = cdoc.path if cdoc is not None else config_path
            inline_keys[kind] = frozenset(section) - frozenset(cdata)

    if problems:
        raise ConfigError(_combine(problems))
    assert simulation is not None  # no problems means it validated
    evaluation = companions.get("evaluation")
    return LoadedConfig(
        simulation=simulation,
        config_path=config_path,
        project_root=root,
        project=companions.get("project"),
        input=companions.get("input"),
        evaluation=evaluation,
        overrides=overrides,
        sources=sources,
        notices=notices,
        file_secrets=frozenset(file_secrets),
        env_files=env_files,
        inline_keys=inline_keys,
    )


def validate(
    model: type[M],
    data: Any,
    doc: YamlDocument | None,
    labels: dict[KeyPath, str] | None = None,
) -> M:
    """Validate ``data`` into ``model``; ConfigError with readable lines on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, doc, labels)) from None


T = TypeVar("T")


def _valid_runner(raw: dict[str, Any]) -> RunnerConfig | None:
    """The runner block alone, when it is valid although simulation.yaml as a whole is not:
    its checks then still join the list of problems (its own errors are already there)."""
    try:
        return RunnerConfig.model_validate(raw.get("runner"))
    except ValidationError:
        return None


def _collect(problems: list[str], func: Callable[..., T], *args: Any) -> T | None:
    """``func(*args)``, or None with its ConfigError's message added to ``problems``."""
    try:
        return func(*args)
    except ConfigError as exc:
        problems.append(str(exc))
        return None


def _combine(problems: list[str]) -> str:
    """One message for all problems; a single problem keeps its message unchanged."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} configuration problems, fix them all:\n" + "\n".join(problems)


def _read_mapping(
    path: Path, what: str, problems: list[str], *, empty_ok: bool = False
) -> tuple[YamlDocument | None, dict[str, Any] | None]:
    """Parse ``path`` and check it holds a mapping (an empty companion is ``{}``)."""
    doc = _collect(problems, load_yaml, path)
    if doc is None:
        return None, None
    if doc.data is None and empty_ok:
        return doc, {}
    return doc, _collect(problems, _mapping, doc, what)


def _mapping(doc: YamlDocument, what: str) -> dict[str, Any]:
    if doc.data is None:
        raise ConfigError(f"{doc.path}: the file is empty; expected a {what} mapping")
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{doc.path}: expected a {what} mapping of keys, got {type(doc.data).__name__}"
        )
    return copy.deepcopy(doc.data)


def _split_sections(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Take companion keys out of simulation.yaml's data: {kind: {key: value}}.

    ``output`` is evaluation.yaml's report block only when it holds report keys
    (``summary_file``, ``language`` ...) and none of the simulation's older
    ``{directory, format}`` keys; otherwise it keeps its simulation meaning.
    """
    sections: dict[str, dict[str, Any]] = {}
    for kind, keys in SECTION_KEYS.items():
        for key in [key for key in raw if key in keys]:
            sections.setdefault(kind, {})[key] = raw.pop(key)
    output = raw.get("output")
    if isinstance(output, dict) and output:
        names = set(output)
        if names & _EVALUATION_OUTPUT_KEYS and not names & _LEGACY_OUTPUT_KEYS:
            sections.setdefault("evaluation", {})["output"] = raw.pop("output")
    return sections


def _merge_section(
    section: dict[str, Any],
    sim_doc: YamlDocument | None,
    cdata: dict[str, Any],
    cdoc: YamlDocument | None,
    problems: list[str],
) -> tuple[dict[str, Any], YamlDocument | None]:
    """The companion's data plus the keys simulation.yaml holds for it, and a document
    whose lines point at whichever file each key came from.

    A key in both files must hold the same value; otherwise it is a problem naming both
    places (the companion's value is validated meanwhile, so its errors still show).
    """
    if cdoc is None:
        # Only simulation.yaml has this section: its own lines are the right ones.
        return section, sim_doc
    merged = dict(cdata)
    vdoc = YamlDocument(cdoc.path, merged, dict(cdoc.lines), dict(cdoc.origins))
    for key, value in section.items():
        if key in cdata:
            if not _same(cdata[key], value):
                assert sim_doc is not None
                problems.append(
                    f"{sim_doc.where((key,))}: {key} is also set in {cdoc.where((key,))}, "
                    f"to a different value; keep it in one of the two files "
                    f"(usually {cdoc.path.name})"
                )
            continue
        merged[key] = value
        if sim_doc is not None:
            vdoc.graft(sim_doc, key)
    return merged, vdoc


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same types (``1``, ``1.0`` and ``true`` are different settings)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# Older spellings still in users' files: (block, key inside it) -> top-level key.
_LEGACY_ALIASES = {
    ("runner", "iterations"): "iterations",
    ("output", "directory"): "output_directory",
}


def _apply_legacy_aliases(raw: dict[str, Any], doc: YamlDocument) -> dict[str, Any]:
    """Accept ``runner.iterations`` and ``output.directory`` as their top-level keys."""
    for (block, key), top in _LEGACY_ALIASES.items():
        section = raw.get(block)
        if not isinstance(section, dict) or section.get(key) is None:
            continue
        legacy = section[key]
        if top in raw and raw[top] != legacy:
            raise ConfigError(
                f"{doc.where((block, key))}: {block}.{key} ({legacy!r}) disagrees "
                f"with {top} ({raw[top]!r}); keep only one"
            )
        raw.setdefault(top, legacy)
    return raw


_DOCKER_KEYS = ("docker_image", "docker_build_context", "docker_volumes")


def _check_runner(
    runner: RunnerConfig, doc: YamlDocument, problems: list[str], notices: list[str]
) -> None:
    """The runner checks a model cannot make alone: a target exists, which of target and
    module_path/function_name is used, and what happens to the earlier out-of-process keys."""

    def where(key: str) -> str:
        return doc.where(("runner", key))

    given = runner.model_fields_set
    if not runner.target_spec:
        problems.append(
            f"{doc.where(('runner',))}: runner.target is required "
            '(e.g. target: "my_agent:run"), or runner.module_path + runner.function_name'
        )
    if runner.target and (runner.module_path or runner.function_name):
        parts = f"{runner.module_path}:{runner.function_name}"
        if parts != runner.target:
            ignored = [
                f"runner.{key} ({getattr(runner, key)!r})"
                for key in ("module_path", "function_name")
                if getattr(runner, key)
            ]
            notices.append(
                f"{where('target')}: runner.target ({runner.target!r}) takes precedence; "
                f"{' and '.join(ignored)} {'are' if len(ignored) > 1 else 'is'} ignored "
                "(remove them, or make them name the same function as target)"
            )

    docker = [key for key in _DOCKER_KEYS if key in given]
    if runner.use_docker:
        also = "".join(f", runner.{key}" for key in docker)
        problems.append(
            f"{where('use_docker')}: runner.use_docker: true is not supported: pytest-fluxloop "
            "runs the agent inside the pytest process, not in a container. Run pytest / "
            "fluxloop inside your container instead (e.g. docker run IMAGE fluxloop run "
            f"experiment) and remove runner.use_docker{also}"
        )
    else:
        if "use_docker" in given:
            notices.append(
                f"{where('use_docker')}: runner.use_docker (false) is ignored: the agent always "
                "runs inside the pytest process; remove the key"
            )
        for key in docker:
            notices.append(
                f"{where(key)}: runner.{key} is ignored: there is no Docker runner (the agent "
                "runs inside the pytest process; to use a container, run pytest / fluxloop "
                "inside it); remove the key"
            )

    if runner.setup_commands:
        problems.append(
            f"{where('setup_commands')}: runner.setup_commands: pytest-fluxloop does not run "
            f"setup commands ({len(runner.setup_commands)} listed); run them before the "
            "experiment (e.g. a CI step before `fluxloop run experiment` / pytest) and remove "
            "the key"
        )
    elif "setup_commands" in given:
        notices.append(
            f"{where('setup_commands')}: runner.setup_commands is empty and ignored; remove it"
        )
    if "requirements_file" in given:
        req = runner.requirements_file
        how = f"install it yourself (pip install -r {req}) before running, and " if req else ""
        notices.append(
            f"{where('requirements_file')}: runner.requirements_file ({req!r}) is not "
            f"installed by pytest-fluxloop; {how}remove the key"
        )
    if "guards" in given:
        notices.append(
            f"{where('guards')}: runner.guards is not supported and is ignored (no FluxLoop "
            "release defined what it does); remove the key"
        )


def _set_path(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


DOTENV_SET: dict[str, str] = {}
"""Variables :func:`load_dotenv` put into ``os.environ`` (and their values), so the pytest
adapter can take them out again when the run ends."""

FLUXLOOP_ROOT_NAME = "fluxloop"
"""Name of the folder the earlier FluxLoop CLI kept its projects in (its default ``--root``)."""


def fluxloop_root_for(project_root: Path) -> Path | None:
    """The FluxLoop root above ``project_root``, or None when it has none.

    The earlier FluxLoop CLI created every project as ``<root>/<project>/`` with the root
    folder named ``fluxloop`` (its default ``--root``; ``fluxloop init project`` wrote a
    shared ``fluxloop/.env`` there), and it read ``<project>/../.env`` next to the project's
    own. Reading any parent's ``.env`` would also read unrelated ones (a home directory's),
    so the rule is narrower: the parent of the project root is a FluxLoop root only when it
    is named ``fluxloop``. A project kept under a custom ``--root`` name can copy what it
    needs into its own ``.env``.
    """
    parent = project_root.parent
    if parent != project_root and parent.name == FLUXLOOP_ROOT_NAME:
        return parent
    return None


def load_project_dotenv(project_root: Path) -> list[Path]:
    """Read the project's ``.env``, then its FluxLoop root's (see :func:`fluxloop_root_for`).

    Neither overrides a variable already set, so the project's value wins over the root's
    and the environment's over both. Returns the files that were read.
    """
    read: list[Path] = []
    for folder in (project_root, fluxloop_root_for(project_root)):
        if folder is not None and load_dotenv(folder / ".env"):
            read.append(folder / ".env")
    return read


def load_dotenv(path: Path) -> bool:
    """Read one ``.env`` file; never override a variable already set (even to "").

    Empty values (``OPENAI_API_KEY=``, as the templates write them) are skipped: putting
    them into the environment would make a key look set. Variables set are recorded in
    :data:`DOTENV_SET`. Returns whether the file exists.
    """
    if not path.is_file():
        return False
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if value and key not in os.environ:
            os.environ[key] = value
            DOTENV_SET[key] = value
    return True
