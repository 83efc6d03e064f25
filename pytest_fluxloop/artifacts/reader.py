"""The one reader of experiment folders: what ``parse``, ``report``, ``compare`` and
``evaluate`` read.

It accepts every folder this project has written (older ones lack newer fields: every field
is read with a default), says clearly when a folder is not an experiment, and refuses one
written in a newer artifact format (``metadata.json`` ``artifact_format``) instead of
misreading it. A case run more than once (``--resume``, retried crashes) counts by its latest
line. Big files are streamed: :meth:`ExperimentFolder.iter_traces` holds one full record at
a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .writer import (
    ARTIFACT_FORMAT,
    CONFIG_FILE,
    METADATA_FILE,
    OBSERVATIONS_FILE,
    SUMMARY_FILE,
    TRACE_SUMMARY_FILE,
    TRACES_FILE,
)

__all__ = ["ExperimentFolder", "NewerFormatError", "NotAnExperimentError", "read_json_lines"]


class NotAnExperimentError(ConfigError):
    """The folder is not a FluxLoop experiment folder."""


class NewerFormatError(ConfigError):
    """The folder was written by a newer pytest-fluxloop, in a format this one cannot read."""


def read_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each line of a JSONL file.

    A last line without its newline is a write that never finished (the writer writes each
    line with its newline at once): skipped. Any other line that is not a JSON object is a
    ConfigError naming the file and line.
    """
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                if not line.endswith("\n"):
                    return  # torn last line
                raise ConfigError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}:{number}: not a JSON object")
            yield number, data


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return data


@dataclass
class ExperimentFolder:
    """One experiment folder, opened with :meth:`open`."""

    path: Path
    summary: dict[str, Any] = field(default_factory=dict)
    """``summary.json`` (empty when the run kept no aggregated metrics)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """``metadata.json`` (empty when absent)."""
    _lines: list[dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path | str) -> ExperimentFolder:
        """Open ``path``.

        Raises:
            NotAnExperimentError: no such folder, or no ``trace_summary.jsonl`` /
                ``summary.json`` in it (the message says what to pass instead).
            NewerFormatError: ``metadata.json`` names a newer ``artifact_format``.
            ConfigError: ``summary.json`` or ``metadata.json`` is not JSON.
        """
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise NotAnExperimentError(
                f"{folder}: no such folder; give an experiment folder (experiments/exp_...)"
            )
        if not (folder / TRACE_SUMMARY_FILE).is_file() and not (folder / SUMMARY_FILE).is_file():
            hint = ""
            inner = sorted(p.name for p in folder.glob("exp_*") if p.is_dir())
            if inner:
                hint = f"; it holds experiment folders, e.g. {folder / inner[-1]}"
            raise NotAnExperimentError(
                f"{folder}: not a FluxLoop experiment folder (no {TRACE_SUMMARY_FILE} or "
                f"{SUMMARY_FILE}){hint}"
            )
        metadata = _read_json(folder / METADATA_FILE)
        written = metadata.get("artifact_format", 1)
        if isinstance(written, int) and written > ARTIFACT_FORMAT:
            version = metadata.get("fluxloop_version", "a newer version")
            raise NewerFormatError(
                f"{folder}: written by pytest-fluxloop {version} in artifact format {written}; "
                f"this version reads format {ARTIFACT_FORMAT} and older: upgrade "
                "pytest-fluxloop to read it"
            )
        return cls(path=folder, summary=_read_json(folder / SUMMARY_FILE), metadata=metadata)

    # ------------------------------------------------------------------ who and what

    @property
    def name(self) -> str:
        """The experiment's name (else the folder's)."""
        return str(
            self.summary.get("experiment_name")
            or self.metadata.get("experiment_name")
            or self.path.name
        )

    @property
    def config(self) -> dict[str, Any]:
        """The config snapshot (``summary.json``, else ``config.yaml``); empty if neither."""
        snapshot = self.summary.get("config_snapshot")
        if isinstance(snapshot, dict) and snapshot:
            return snapshot
        path = self.path / CONFIG_FILE
        if not path.is_file():
            return {}
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def has_traces(self) -> bool:
        """Whether ``traces.jsonl`` (full records with observations) is there."""
        return (self.path / TRACES_FILE).is_file()

    @property
    def has_observations(self) -> bool:
        """Whether ``observations.jsonl`` is there."""
        return (self.path / OBSERVATIONS_FILE).is_file()

    # ------------------------------------------------------------------ the traces

    def summary_lines(self) -> list[dict[str, Any]]:
        """The ``trace_summary.jsonl`` lines, the latest of each case, in file order of
        those latest lines (read once, then kept: a line is a few hundred bytes)."""
        if self._lines is None:
            path = self.path / TRACE_SUMMARY_FILE
            latest: dict[str, dict[str, Any]] = {}
            if path.is_file():
                for _, line in read_json_lines(path):
                    key = str(line.get("case_id") or line.get("trace_id") or len(latest))
                    latest.pop(key, None)  # re-inserted: the order of the latest lines
                    latest[key] = line
            self._lines = list(latest.values())
        return self._lines

    def iter_traces(self) -> Iterator[dict[str, Any]]:
        """The full record of each case (``traces.jsonl``), the latest per case, one at a time;
        without ``traces.jsonl``, the summary lines themselves."""
        if not self.has_traces:
            yield from self.summary_lines()
            return
        wanted = {line.get("trace_id") for line in self.summary_lines()}
        seen: set[Any] = set()
        for _, record in read_json_lines(self.path / TRACES_FILE):
            trace_id = record.get("trace_id")
            # Only traces listed in trace_summary.jsonl are finished (their lines come last).
            if trace_id in wanted and trace_id not in seen:
                seen.add(trace_id)
                yield record
