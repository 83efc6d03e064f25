"""The HTTP sink: every record sent to a FluxLoop collector (issue 16; being built)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Sink

if TYPE_CHECKING:
    from ..run.experiment import Experiment

__all__ = ["http_sink_for"]


def http_sink_for(experiment: Experiment, spool_folder: Callable[[], Path | None]) -> Sink | None:
    """The collector sink of ``experiment``'s run, or None when no collector is configured."""
    return None
