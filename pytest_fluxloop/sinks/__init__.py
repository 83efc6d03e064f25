"""Sinks: where the finished records of a run go (files today; collector, OpenTelemetry next)."""

from __future__ import annotations

from .base import FinalStatus, RunEnd, RunStart, Sink

__all__ = ["FinalStatus", "RunEnd", "RunStart", "Sink"]
