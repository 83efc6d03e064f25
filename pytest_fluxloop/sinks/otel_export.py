"""The OpenTelemetry sink: each finished case exported as GenAI spans through the SDK.

Imported only when the export is on (:func:`.otel.otel_sink_for`): it is the one module that
loads OpenTelemetry. What becomes a span is decided in :mod:`.otel_spans`; this module picks
the tracer provider, starts and ends each planned span with its recorded times, and flushes
at the end of the run.

The tracer provider is the application's when one is set globally (the agent's process
already exports its own spans: ours join them); otherwise the sink makes its own, with an
OTLP exporter configured only from the standard ``OTEL_EXPORTER_OTLP_*`` variables, and
flushes and shuts it down when the run finishes, within :data:`FLUSH_TIMEOUT_S`.

Export happens in the process that records the run (the xdist controller, or the process of
``Experiment.run``), as each record is appended: workers export nothing, so every case is
exported exactly once.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from ..errors import ConfigError
from ..records import ExperimentSummary, TraceRecord
from ..redact import Redactor
from .base import RunEnd, RunStart
from .otel_semconv import SCHEMA_URL, SEMCONV_VERSION
from .otel_spans import SpanPlan, agent_name, case_span, redacted_record

__all__ = ["APPLICATION_PROVIDER", "FLUSH_TIMEOUT_S", "OtelSink", "emit"]

logger = logging.getLogger("pytest_fluxloop.otel")

APPLICATION_PROVIDER = "application tracer provider"
"""The report's ``exporter`` when the spans went to the application's tracer provider."""

FLUSH_TIMEOUT_S = 10.0
"""How long the end of a run waits for the spans to be flushed (and the sink's own provider
shut down): an unreachable collector never holds the run longer. The OTLP exporter's own
deadline per batch is ``OTEL_EXPORTER_OTLP_TIMEOUT`` (10 s by default)."""

DEFAULT_SERVICE_NAME = "fluxloop"
"""``service.name`` of the sink's own provider unless ``OTEL_SERVICE_NAME`` or
``OTEL_RESOURCE_ATTRIBUTES`` name one."""

_TRACER_NAME = "pytest_fluxloop"


def emit(tracer: Tracer, plan: SpanPlan) -> int:
    """Start and end every span of ``plan`` (a case) with its recorded times; returns how
    many were recorded. The case span is the root of a new trace, whatever span is current."""
    count = 0
    stack: list[tuple[SpanPlan, Context]] = [(plan, Context())]
    while stack:  # iterative: nesting may be deeper than Python's recursion limit
        item, parent = stack.pop()
        span = tracer.start_span(
            item.name,
            context=parent,
            kind=SpanKind.CLIENT if item.client else SpanKind.INTERNAL,
            attributes=item.attributes,
            start_time=item.start_ns,
        )
        for event in item.events:
            span.add_event(event.name, event.attributes, timestamp=event.time_ns)
        if item.error is not None:
            span.set_status(Status(StatusCode.ERROR, item.error))
        # Counted only when recorded: a sampler (or OTEL_SDK_DISABLED) may drop it.
        count += span.is_recording()
        # A child only needs its parent's context: the parent can end first (explicit times).
        span.end(end_time=item.end_ns)
        inner = trace.set_span_in_context(span, Context())
        stack.extend((child, inner) for child in reversed(item.children))
    return count


class _CountingExporter(SpanExporter):
    """The OTLP exporter, counting the spans it delivered and the ones it could not."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.delivered = 0
        self.failed = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter bug must not kill the batch thread silently
            logger.exception("OpenTelemetry export failed")
            result = SpanExportResult.FAILURE
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.delivered += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class OtelSink:
    """Exports each record as the span tree of :func:`~.otel_spans.case_span`.

    A record that cannot be converted or exported is counted (``errors`` in the report) and
    never fails the run: the files keep it.
    """

    name = "otel"

    def __init__(
        self,
        *,
        experiment: str,
        target_spec: str | None,
        redactor: Redactor,
        content: bool,
        max_chars: int,
        provider_factory: Callable[[], Any] | None = None,
    ) -> None:
        """``provider_factory`` returns the tracer provider to use (tests); by default the
        application's global one, or the sink's own (see the module doc)."""
        self.experiment = experiment
        self.target_spec = target_spec
        self.redactor = redactor
        self.content = content
        self.max_chars = max_chars
        self._provider_factory = provider_factory
        self._lock = threading.Lock()
        self._tracer: Tracer | None = None
        self._own: TracerProvider | None = None
        self._provider: Any = None
        self._exporter: _CountingExporter | None = None
        self.exporter_label = ""
        self.spans = 0
        self.traces = 0
        self.errors = 0
        self.flushed: bool | None = None
        self._finished = False

    # ------------------------------------------------------------------ Sink

    @property
    def location(self) -> None:
        """Spans have no folder."""
        return None

    def open(self, start: RunStart) -> None:
        """Pick the tracer provider (ConfigError for an OTLP protocol we cannot speak)."""
        with self._lock:
            if self._tracer is not None:
                return
            if self._provider_factory is not None:
                provider = self._provider_factory()
                self.exporter_label = APPLICATION_PROVIDER
            else:
                provider = _application_provider()
                if provider is not None:
                    self.exporter_label = APPLICATION_PROVIDER
                else:
                    provider = self._own_provider()
            self._provider = provider
            self._tracer = provider.get_tracer(
                _TRACER_NAME, _package_version(), schema_url=SCHEMA_URL
            )

    def append(self, record: TraceRecord) -> None:
        """Export ``record`` as spans (queued by the provider's span processor)."""
        tracer = self._tracer
        if tracer is None or self._finished:
            return
        try:
            clean = redacted_record(record, self.redactor)
            plan = case_span(
                clean,
                agent=agent_name(clean, self.target_spec),
                experiment=self.experiment,
                content=self.content,
                max_chars=self.max_chars,
            )
            count = emit(tracer, plan)
        except Exception as exc:  # the export is a copy: it never fails the run
            logger.warning(
                "OpenTelemetry export of case %s failed: %s",
                record.case_id,
                self.redactor.redact_text(f"{type(exc).__name__}: {exc}"),
            )
            with self._lock:
                self.errors += 1
            return
        with self._lock:
            self.spans += count
            self.traces += 1

    def finish(self, end: RunEnd) -> ExperimentSummary | None:
        """Flush the spans (and shut the sink's own provider down), within the bound."""
        with self._lock:
            if self._finished or self._provider is None:
                self._finished = True
                return None
            self._finished = True
        provider, own = self._provider, self._own
        self.flushed = _bounded(lambda: _flush(provider, own), FLUSH_TIMEOUT_S)
        if not self.flushed:
            logger.warning(
                "OpenTelemetry: spans not flushed within %.0f s (%s)",
                FLUSH_TIMEOUT_S,
                self.exporter_label,
            )
        return None

    # ------------------------------------------------------------------ ReportingSink

    def report(self) -> dict[str, Any]:
        """What was exported and where: ``summary.json``'s ``otel`` block."""
        data: dict[str, Any] = {
            "spans": self.spans,
            "traces": self.traces,
            "exporter": self.exporter_label,
            "semconv": SEMCONV_VERSION,
            "content": self.content,
            "flushed": self.flushed,
            "errors": self.errors,
        }
        if self._exporter is not None:
            data["delivered"] = self._exporter.delivered
            data["failed"] = self._exporter.failed
        return data

    def lines(self) -> list[str]:
        """The terminal summary's line (and one more when spans were not delivered)."""
        if not self.exporter_label:
            return []
        lines = [
            f"otel: {self.spans} spans of {self.traces} cases exported to "
            f"{self.exporter_label} (GenAI semconv {SEMCONV_VERSION})"
        ]
        problems = []
        if self._exporter is not None and self._exporter.failed:
            problems.append(f"{self._exporter.failed} spans not delivered")
        if self.flushed is False:
            problems.append(f"not flushed within {FLUSH_TIMEOUT_S:.0f} s")
        if self.errors:
            problems.append(f"{self.errors} cases not exported (see the log)")
        if problems:
            lines.append("otel: " + "; ".join(problems))
        return lines

    # ------------------------------------------------------------------ own provider

    def _own_provider(self) -> TracerProvider:
        """A provider exporting over OTLP as the ``OTEL_EXPORTER_OTLP_*`` variables say."""
        exporter = _otlp_exporter()
        self._exporter = _CountingExporter(exporter)
        resource = Resource.create({"fluxloop.experiment": self.experiment})
        service = str(resource.attributes.get(SERVICE_NAME, ""))
        if not service or service.startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        # Not shut down at interpreter exit: finish() does it, within the bound.
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(self._exporter))
        self._own = provider
        endpoint = getattr(exporter, "_endpoint", None) or _env_endpoint()
        self.exporter_label = f"OTLP {self.redactor.redact_text(_without_userinfo(endpoint))}"
        return provider


def _application_provider() -> Any:
    """The tracer provider the application set globally, or None (the API's default proxy,
    or a no-op one: nobody would see spans sent there)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider


def _otlp_exporter() -> SpanExporter:
    """The OTLP span exporter for ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (ConfigError when
    that protocol's exporter is not installed); every other setting is the exporter's own
    reading of the standard variables."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            # By name: the gRPC exporter is not part of the extra (and has no stubs here).
            grpc = importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
        except ImportError:
            raise ConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: the OTLP/gRPC exporter is not installed "
                "(pip install opentelemetry-exporter-otlp-proto-grpc), or use http/protobuf"
            ) from None
        exporter: SpanExporter = grpc.OTLPSpanExporter()
        return exporter
    raise ConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: the OpenTelemetry export speaks "
        "http/protobuf (and grpc with opentelemetry-exporter-otlp-proto-grpc installed)"
    )


def _env_endpoint() -> str:
    """The traces endpoint the standard variables name (the exporter's default rule)."""
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
    return base.rstrip("/") + "/v1/traces"


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (never printed)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _flush(provider: Any, own: TracerProvider | None) -> bool:
    """Flush ``provider``'s spans; shut it down when it is the sink's own."""
    if own is not None:
        flushed = own.force_flush(int(FLUSH_TIMEOUT_S * 1000))
        own.shutdown()
        return bool(flushed)
    flush = getattr(provider, "force_flush", None)
    return bool(flush(int(FLUSH_TIMEOUT_S * 1000))) if callable(flush) else True


def _bounded(work: Callable[[], bool], timeout: float) -> bool:
    """``work()`` in a daemon thread, waited for at most ``timeout`` seconds: the SDK's
    flush ignores its own timeout while an export retries. False if it did not finish or
    said no."""
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception:
            logger.exception("OpenTelemetry flush failed")
            outcome.append(False)

    thread = threading.Thread(target=run, name="fluxloop-otel-flush", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-fluxloop")
    except PackageNotFoundError:
        return "0"
