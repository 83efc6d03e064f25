"""Open the artifact writer of an experiment: safe output paths, snapshot, metadata."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts.paths import (
    OutputPathError,
    check_writable,
    resolve_output_root,
    slugify_suffix,
    validate_experiment_name,
)
from ..artifacts.writer import ExperimentWriter
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..run.experiment import Experiment


def output_root(experiment: Experiment, override: Path | None = None) -> Path:
    """Where experiment folders go; validated and proven writable (ConfigError otherwise)."""
    cfg = experiment.cfg
    try:
        root = resolve_output_root(override or cfg.simulation.output_directory, cfg.project_root)
        return check_writable(root)
    except OutputPathError as exc:
        raise ConfigError(f"output_directory: {exc}") from None


def experiment_suffix(experiment: Experiment) -> str | None:
    """Folder suffix: the ``--experiment-name`` override, checked as a path component."""
    cfg = experiment.cfg
    name = cfg.overrides.experiment_name
    where = cfg.overrides.option("experiment_name") if name else f"{cfg.config_path}: name"
    try:
        # Names end up in folder names and reports: they must be safe path components.
        validate_experiment_name(experiment.name)
    except OutputPathError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return slugify_suffix(name) or None if name else None


def open_writer(
    experiment: Experiment,
    override_root: Path | None = None,
    *,
    total_cases: int | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> ExperimentWriter:
    """Create ``exp_<timestamp>[_<suffix>]`` and its writer (the only artifact writer)."""
    cfg = experiment.cfg
    suffix = experiment_suffix(experiment)
    root = output_root(experiment, override_root)
    metadata: dict[str, Any] = {
        "config_path": str(cfg.config_path),
        "project_root": str(cfg.project_root),
        "config_files": {k: str(v) for k, v in cfg.sources.items()},
        "target": cfg.simulation.runner.target_spec,
        "inputs_source": experiment.plan.source,
        "plan": experiment.plan.describe(),
        "host": platform.node(),
        **(extra_metadata or {}),
    }
    try:
        return ExperimentWriter.create(
            root,
            experiment_name=experiment.name,
            description=cfg.simulation.description,
            config_snapshot=cfg.snapshot(),
            metadata=metadata,
            seed=experiment.plan.seed,
            total_cases=experiment.plan.total if total_cases is None else total_cases,
            save_traces=cfg.simulation.save_traces,
            save_aggregated_metrics=cfg.simulation.save_aggregated_metrics,
            suffix=suffix,
        )
    except OutputPathError as exc:
        raise ConfigError(f"output_directory: {exc}") from None
