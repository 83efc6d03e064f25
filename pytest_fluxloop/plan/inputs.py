"""Read the inputs an experiment runs: an inputs file, or ``base_inputs`` × ``personas``.

Where inputs come from, first match wins:
1. ``--inputs`` (CLI) / ``--fluxloop-inputs`` (pytest);
2. ``inputs_file`` in ``configs/input.yaml`` (or in simulation.yaml, for a single-file config);
3. ``inputs/generated.yaml`` in the project root, if it exists;
4. ``base_inputs`` × ``personas`` from ``configs/input.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.loader import LoadedConfig, validate
from ..config.models import InputsFile, Persona
from ..config.yaml_io import load_yaml
from ..errors import ConfigError

DEFAULT_INPUTS_FILE = "inputs/generated.yaml"


@dataclass(frozen=True)
class InputItem:
    """One (input, persona) pair before iterations are applied."""

    index: int
    input: str
    persona: str | None
    persona_description: str | None
    metadata: dict[str, Any]
    persona_profile: dict[str, Any] | None = None
    """The configured persona of that name (``configs/input.yaml``) as a dict, if any."""


@dataclass
class InputSet:
    """The inputs of one experiment and where they came from."""

    items: list[InputItem]
    source: str
    n_inputs: int
    n_personas: int
    factored: bool
    """True when items are exactly inputs × personas (the plan can print it that way)."""


def load_inputs(cfg: LoadedConfig) -> InputSet:
    """Resolve the inputs source for ``cfg`` and read it (ConfigError on any problem)."""
    personas = cfg.input.personas if cfg.input else None
    if personas is not None and not personas:
        raise ConfigError(
            f"{cfg.sources.get('input')}: personas is an empty list; add a persona or remove "
            "the key to run inputs without one"
        )
    path, _explicit = _inputs_path(cfg)
    if path is not None:
        items = _read_inputs_file(path, personas or [])
        inputs = {item.input for item in items}
        names = {item.persona for item in items}
        result = InputSet(items, str(path), len(inputs), len(names - {None}), factored=False)
    else:
        result = _from_base_inputs(cfg, personas)
    return _filter_personas(cfg, result, personas or [])


def _inputs_path(cfg: LoadedConfig) -> tuple[Path | None, bool]:
    override = cfg.overrides.inputs_file
    if override:
        path = cfg.resolve(override)
        if not path.is_file():
            raise ConfigError(
                f"inputs file not found: {path} (given by {cfg.overrides.option('inputs_file')})"
            )
        return path, True
    if cfg.input and cfg.input.inputs_file:
        path = cfg.resolve(cfg.input.inputs_file)
        where = cfg.source_of("input", "inputs_file")
        if not path.is_file() and not (cfg.input.base_inputs):
            raise ConfigError(
                f"{where}: inputs_file {cfg.input.inputs_file!r} does not exist "
                f"({path}); generate it or fix the path"
            )
        if path.is_file():
            return path, True
        cfg.notices.append(
            f"{where}: inputs_file {cfg.input.inputs_file!r} does not exist yet; "
            "running base_inputs × personas instead"
        )
        return None, False
    default = cfg.resolve(DEFAULT_INPUTS_FILE)
    return (default, False) if default.is_file() else (None, False)


def _read_inputs_file(path: Path, personas: list[Persona]) -> list[InputItem]:
    doc = load_yaml(path)
    if doc.data is None:
        raise ConfigError(f"{path}: the inputs file is empty; it needs an 'inputs' list")
    parsed = validate(InputsFile, doc.data, doc)
    if not parsed.entries:
        raise ConfigError(f"{path}: the inputs list is empty; add at least one input")
    configured = {p.name: p for p in personas}
    items = []
    for index, entry in enumerate(parsed.entries):
        meta = dict(entry.metadata)
        persona = entry.persona or _str_or_none(meta.get("persona"))
        profile = configured.get(persona or "")
        description = (
            entry.persona_description
            or _str_or_none(meta.get("persona_description"))
            or (profile.description if profile is not None else None)
        )
        for key in ("strategy", "base_index", "expected_intent", "id", "prompt_hash"):
            value = getattr(entry, key)
            if value is not None:
                meta.setdefault(key, value)
        items.append(
            InputItem(
                index,
                entry.input,
                persona,
                description,
                meta,
                profile.model_dump() if profile is not None else None,
            )
        )
    return items


def _from_base_inputs(cfg: LoadedConfig, personas: list[Persona] | None) -> InputSet:
    base = cfg.input.base_inputs if cfg.input else None
    if not base:
        where = cfg.sources.get("input", cfg.config_dir / "input.yaml")
        raise ConfigError(
            f"no inputs for experiment '{cfg.experiment_name}': create {DEFAULT_INPUTS_FILE}, "
            f"pass --inputs FILE, or add base_inputs to {where}"
        )
    items: list[InputItem] = []
    for index, entry in enumerate(base):
        meta = dict(entry.metadata)
        if entry.expected_intent is not None:
            meta.setdefault("expected_intent", entry.expected_intent)
        played: list[Persona | None] = list(personas) if personas else [None]
        for persona in played:
            name = persona.name if persona else None
            desc = persona.description if persona else None
            profile = persona.model_dump() if persona else None
            items.append(InputItem(index, entry.input, name, desc, dict(meta), profile))
    n_personas = len(personas or [])
    return InputSet(items, "base_inputs", len(base), n_personas, factored=True)


def _filter_personas(cfg: LoadedConfig, inputs: InputSet, personas: list[Persona]) -> InputSet:
    wanted = cfg.overrides.personas
    if not wanted:
        return inputs
    known = {item.persona for item in inputs.items if item.persona} | {p.name for p in personas}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ConfigError(
            f"{cfg.overrides.option('personas')}: unknown persona(s) {', '.join(unknown)}; "
            f"known personas: {', '.join(sorted(known)) or '(none)'}"
        )
    items = [item for item in inputs.items if item.persona in wanted]
    if not items:
        raise ConfigError(
            f"{cfg.overrides.option('personas')}: no inputs use persona(s) {', '.join(wanted)}"
        )
    n_inputs = len({item.index for item in items})
    n_personas = len({item.persona for item in items})
    # Duplicate persona entries can make the filtered set no longer a clean product.
    factored = inputs.factored and n_inputs * n_personas == len(items)
    return InputSet(items, inputs.source, n_inputs, n_personas, factored)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
