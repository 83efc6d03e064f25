"""The OpenTelemetry sink's entry point: off unless ``otel.enabled`` (``--fluxloop-otel``).

This module is imported by every run and imports nothing from OpenTelemetry: a run without
the export never loads it. With the export on, :func:`otel_sink_for` loads
:mod:`.otel_export` (the optional extra ``otel``) or says how to install it before any case
runs. What is exported is described in :mod:`.otel_spans` and ``docs/collector.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import Sink

if TYPE_CHECKING:
    from ..run.experiment import Experiment

__all__ = ["INSTALL_HINT", "otel_sink_for"]

INSTALL_HINT = "pip install 'pytest-fluxloop[otel]'"


def otel_sink_for(experiment: Experiment) -> Sink | None:
    """The OpenTelemetry sink of ``experiment``'s run, or None when the export is off.

    Raises:
        ConfigError: the export is on but the OpenTelemetry SDK or its OTLP exporter is not
            installed.
    """
    cfg = experiment.cfg
    if not cfg.simulation.otel.enabled:
        return None
    where = (
        cfg.overrides.option("otel")
        if cfg.overrides.get("otel") is not None
        else f"{cfg.config_path}: otel.enabled"
    )
    try:
        # The SDK and the OTLP/HTTP exporter are both needed (the exporter only when the
        # application sets no tracer provider, but that is known only once the run opens).
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401

        from .otel_export import OtelSink
        from .otel_spans import capture_content_from_env
    except ImportError as exc:
        raise ConfigError(
            f"{where}: the OpenTelemetry export needs the optional extra 'otel' "
            f"({INSTALL_HINT}); {exc}"
        ) from None
    return OtelSink(
        experiment=experiment.name,
        target_spec=cfg.simulation.runner.target_spec,
        redactor=experiment.redactor,
        content=capture_content_from_env(),
        max_chars=cfg.simulation.artifact_field_max_chars,
    )
