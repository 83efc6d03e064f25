"""The files sink: FluxLoop artifacts in ``exp_<timestamp>[_<suffix>]/`` (``artifacts/``).

It opens the experiment folder under the validated output root (or reopens the folder of a
run being resumed) and appends every record through the one
:class:`~pytest_fluxloop.artifacts.writer.ExperimentWriter`. The writer keeps the running
aggregates, so this sink's summary is the run's ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts.paths import (
    check_writable,
    resolve_output_root,
    slugify_suffix,
    validate_experiment_name,
)
from ..artifacts.resume import ResumeState, reopen_writer
from ..artifacts.writer import ExperimentWriter
from ..config.loader import LoadedConfig
from ..errors import ConfigError, OutputPathError
from ..records import ExperimentSummary, TraceRecord
from ..redact import Redactor
from .base import RunEnd, RunStart


def output_root(cfg: LoadedConfig, override: Path | None = None) -> Path:
    """Where experiment folders go; validated and proven writable (ConfigError otherwise).

    ``override`` is ``Experiment.run(output_root=...)``: relative to the project root, like
    ``output_directory``, and under the same rule (``resolve_output_root``).
    """
    root = _resolved_root(cfg, override)
    try:
        return check_writable(root)
    except OutputPathError as exc:
        raise ConfigError(f"{_output_source(cfg, override)}: {exc}") from None


def _resolved_root(cfg: LoadedConfig, override: Path | None = None) -> Path:
    """The output root under ``resolve_output_root``'s rule, creating nothing (ConfigError
    naming where the path was given)."""
    try:
        return resolve_output_root(override or cfg.simulation.output_directory, cfg.project_root)
    except OutputPathError as exc:
        raise ConfigError(f"{_output_source(cfg, override)}: {exc}") from None


def _output_source(cfg: LoadedConfig, override: Path | None = None) -> str:
    """Where the output directory was given, for messages: the option, or file and key."""
    if override is not None:
        return "output_root"
    if cfg.overrides.get("output_directory") is not None:
        return cfg.overrides.option("output_directory")
    return f"{cfg.config_path}: output_directory"


def experiment_suffix(cfg: LoadedConfig) -> str | None:
    """Folder suffix: the ``--experiment-name`` override, checked as a path component."""
    name = cfg.overrides.get("experiment_name")
    where = cfg.overrides.option("experiment_name") if name else f"{cfg.config_path}: name"
    try:
        # Names end up in folder names and reports: they must be safe path components.
        validate_experiment_name(cfg.experiment_name)
    except OutputPathError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return slugify_suffix(name) or None if name else None


def check_output(cfg: LoadedConfig) -> None:
    """The checks made before anything is written, creating nothing: the experiment name is
    a safe folder name and no symlink or ``..`` leads the output directory out of where it
    was given (``resolve_output_root``'s rule; ConfigError)."""
    experiment_suffix(cfg)
    _resolved_root(cfg)


class FileSink:
    """Writes one experiment folder (``resume`` given: appends to that run's folder)."""

    def __init__(
        self,
        cfg: LoadedConfig,
        *,
        override_root: Path | None = None,
        resume: ResumeState | None = None,
    ) -> None:
        self.cfg = cfg
        self.override_root = override_root
        self.resume = resume
        self.writer: ExperimentWriter | None = None

    @property
    def location(self) -> Path | None:
        """The experiment folder, once open."""
        return self.writer.path if self.writer is not None else None

    def open(self, start: RunStart) -> None:
        """Create (or reopen) the folder and its files; ConfigError for a bad output path."""
        sim = self.cfg.simulation
        if self.resume is not None:
            self.writer = reopen_writer(
                self.resume,
                experiment_name=start.experiment_name,
                description=start.description,
                config_snapshot=start.config_snapshot,
                total_cases=start.total_cases,
                save_traces=sim.save_traces,
                save_aggregated_metrics=sim.save_aggregated_metrics,
                redactor=self._redactor(),
                max_field_chars=sim.artifact_field_max_chars,
            )
            return
        suffix = experiment_suffix(self.cfg)
        root = output_root(self.cfg, self.override_root)
        try:
            self.writer = ExperimentWriter.create(
                root,
                experiment_name=start.experiment_name,
                description=start.description,
                config_snapshot=start.config_snapshot,
                metadata=start.metadata,
                seed=start.seed,
                total_cases=start.total_cases,
                save_traces=sim.save_traces,
                save_aggregated_metrics=sim.save_aggregated_metrics,
                suffix=suffix,
                redactor=self._redactor(),
                max_field_chars=sim.artifact_field_max_chars,
            )
        except OutputPathError as exc:
            raise ConfigError(f"output_directory: {exc}") from None

    def _redactor(self) -> Redactor:
        # The config's own keys (any shape: "local-key-123...") besides the environment's.
        return self.cfg.redactor()

    def append(self, record: TraceRecord) -> None:
        """Append the record to the JSONL files (flushed before returning)."""
        assert self.writer is not None, "FileSink.append before open"
        self.writer.append(record)

    def finish(self, end: RunEnd) -> ExperimentSummary:
        """Write ``summary.json`` atomically and return it."""
        assert self.writer is not None, "FileSink.finish before open"
        self.writer.total_cases = end.total_cases
        self.writer.leaked_threads = end.leaked_threads
        self.writer.missing_cases = end.missing_cases
        self.writer.missing_case_ids = list(end.missing_case_ids)
        self.writer.evaluation = end.evaluation
        self.writer.cassettes = end.cassettes
        self.writer.reports = dict(end.reports)
        return self.writer.finish(end.status, exit_code=end.exit_code)
