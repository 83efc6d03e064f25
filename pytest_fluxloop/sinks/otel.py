"""The OpenTelemetry sink: each case exported as GenAI spans (issue 16; being built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Sink

if TYPE_CHECKING:
    from ..run.experiment import Experiment

__all__ = ["otel_sink_for"]


def otel_sink_for(experiment: Experiment) -> Sink | None:
    """The OpenTelemetry sink of ``experiment``'s run, or None when the export is off."""
    return None
