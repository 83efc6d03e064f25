"""The sink contract: where the finished records of a run go.

The run recorder (:mod:`pytest_fluxloop.run.recorder`) is the single writer of a run: it
opens every sink once, appends each record to all of them in the order the records arrive,
and finishes them with the run's final status. A sink never sees a worker process or a
pytest object, only these three calls. A new destination (an HTTP collector, an
OpenTelemetry exporter) is one more module in this package implementing :class:`Sink`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from ..records import ExperimentSummary, TraceRecord

FinalStatus = Literal["complete", "incomplete", "interrupted", "failed"]


@dataclass(frozen=True)
class RunStart:
    """What a sink learns when the run opens."""

    experiment_name: str
    description: str
    total_cases: int
    seed: int | None
    config_snapshot: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunEnd:
    """How the run ended, as decided by the recorder's status policy."""

    status: FinalStatus
    exit_code: int | None
    total_cases: int
    leaked_threads: int = 0
    missing_cases: int = 0
    """Cases that reported a result but whose record was never written (status
    ``incomplete``)."""
    missing_case_ids: tuple[str, ...] = ()
    """The first of them (see ``run.status.MISSING_IDS_KEPT``)."""
    evaluation: dict[str, Any] | None = None
    """The run's evaluation block (``summary.json`` ``evaluation``), or None."""
    cassettes: dict[str, Any] | None = None
    """The run's cassette figures (``summary.json`` ``cassettes``), or None."""
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What the other sinks reported when they finished, by name (``collector``, ``otel``):
    the files sink writes each into ``summary.json`` under that name."""


class Sink(Protocol):
    """A destination for the records of one run."""

    @property
    def location(self) -> Path | None:
        """Where this sink's results are (a folder for files), once open; else None."""
        ...

    def open(self, start: RunStart) -> None:
        """Prepare to receive records (create folders, connect); errors are FluxloopErrors."""
        ...

    def append(self, record: TraceRecord) -> None:
        """Take one finished record; it must be durable (or queued durably) on return."""
        ...

    def finish(self, end: RunEnd) -> ExperimentSummary | None:
        """Close the run; a sink that aggregates (the files sink) returns the summary."""
        ...


@runtime_checkable
class ReportingSink(Sink, Protocol):
    """A sink that says how it went (the collector's sent / spooled / rejected counts):
    finished before the files sink, which writes its report into ``summary.json``."""

    name: str
    """The report's key in ``summary.json`` (``collector``, ``otel``)."""

    def report(self) -> dict[str, Any]:
        """The figures, once finished."""
        ...

    def lines(self) -> list[str]:
        """What the terminal summary says about this sink (may be empty)."""
        ...
