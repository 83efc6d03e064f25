"""Find, read, merge and override the config files of one FluxLoop project.

One place decides every setting: ``simulation.yaml`` plus its companions ``project.yaml``,
``input.yaml`` and ``evaluation.yaml`` from the same folder, then overrides from the CLI or
pytest options. Overrides are applied to the raw data *before* validation, so they get exactly
the same checks (and messages name the option instead of a file line).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..errors import ConfigError
from .errors import format_validation_error
from .models import EvaluationConfig, InputConfig, ProjectConfig, SimulationConfig
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
    notices: list[str] = field(default_factory=list)
    file_secrets: frozenset[str] = frozenset()
    """Secret values written in simulation.yaml, including ones an override replaced."""

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


def load_config(path: Path | str, overrides: Overrides | None = None) -> LoadedConfig:
    """Load ``simulation.yaml`` at ``path`` with its companions and apply ``overrides``.

    Raises ConfigError with a message naming the file, line, key and a fix.
    """
    overrides = overrides or Overrides()
    config_path = Path(path).expanduser().resolve()
    if not config_path.is_file():
        raise ConfigError(
            f"config file not found: {config_path} "
            "(pass --fluxloop-config / --config with the path to configs/simulation.yaml)"
        )
    root = project_root_for(config_path)
    load_dotenv(root / ".env")

    doc = load_yaml(config_path)
    raw = _mapping(doc, "simulation config")
    raw = _apply_legacy_aliases(raw, doc)
    file_secrets: set[str] = set()
    _collect_secrets(raw, file_secrets)  # before overrides replace any of them
    labels: dict[KeyPath, str] = {}
    for name, key_path in _SIMULATION_PATHS.items():
        value = overrides.get(name)
        if value is not None:
            _set_path(raw, key_path, value)
            labels[key_path] = overrides.option(name)
    simulation = validate(SimulationConfig, raw, doc, labels)
    loaded = LoadedConfig(
        simulation=simulation,
        config_path=config_path,
        project_root=root,
        overrides=overrides,
        sources={"simulation": config_path},
        file_secrets=frozenset(file_secrets),
    )
    for key, filename in COMPANIONS.items():
        companion = config_path.parent / filename
        if companion == config_path or not companion.is_file():
            continue
        model: dict[str, type[BaseModel]] = {
            "project": ProjectConfig,
            "input": InputConfig,
            "evaluation": EvaluationConfig,
        }
        cdoc = load_yaml(companion)
        data = {} if cdoc.data is None else _mapping(cdoc, f"{key} config")
        setattr(loaded, key, validate(model[key], data, cdoc))
        loaded.sources[key] = companion
    _check_runner(loaded, doc)
    return loaded


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


def _mapping(doc: YamlDocument, what: str) -> dict[str, Any]:
    if doc.data is None:
        raise ConfigError(f"{doc.path}: the file is empty; expected a {what} mapping")
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{doc.path}: expected a {what} mapping of keys, got {type(doc.data).__name__}"
        )
    return copy.deepcopy(doc.data)


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


def _check_runner(loaded: LoadedConfig, doc: YamlDocument) -> None:
    runner = loaded.simulation.runner
    if runner.target and runner.module_path:
        parts = f"{runner.module_path}:{runner.function_name}"
        if parts != runner.target:
            raise ConfigError(
                f"{doc.where(('runner', 'target'))}: runner.target '{runner.target}' disagrees "
                f"with runner.module_path + function_name ('{parts}'); keep one of them"
            )
    if not runner.target_spec:
        raise ConfigError(
            f"{doc.where(('runner',))}: runner.target is required "
            '(e.g. target: "my_agent:run"), or runner.module_path + runner.function_name'
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


def load_dotenv(path: Path) -> None:
    """Read ``.env`` in the project root; never override a variable already set."""
    if not path.is_file():
        return
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
            DOTENV_SET[key] = value
