"""Sinks: where the finished records of a run go: the artifact files (``files``), a FluxLoop
collector (``http``) and OpenTelemetry (``otel``, ``otel_spans``, ``otel_export``,
``otel_semconv``)."""

from __future__ import annotations

from .base import FinalStatus, RunEnd, RunStart, Sink

__all__ = ["FinalStatus", "RunEnd", "RunStart", "Sink"]
