"""The HTTP sink: every record of a run also sent to a FluxLoop collector.

On when a collector URL is configured (``project.yaml`` ``collector_url``, or
``--fluxloop-collector-url`` / ``--collector-url``) and ``--fluxloop-no-collector`` is not
given. Each record goes out as the files hold it (:func:`~pytest_fluxloop.artifacts.writer.
artifact_record`: the same redaction and the same cut of long observation fields), as one
``trace`` item and one ``observation`` item per observation (:func:`~pytest_fluxloop.
shipping.wire.trace_items`), through the background sender (:mod:`pytest_fluxloop.shipping.
sender`): appending never waits on the network, and what the collector does not take by the
end of the run is spooled into ``<experiment folder>/collector_spool/`` for
``fluxloop collector push``.

The run's summary is not sent: the files sink writes it after this sink has finished (its
report goes into it). The collector has every trace and observation; ``summary.json``
stays in the results folder.

Settings read from the environment (tests and unusual setups):
:data:`DRAIN_ENV` (seconds given to the queue at the end of the run, default 5) and
:data:`TIMEOUT_ENV` (one request's timeout, default 10).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts.writer import artifact_record
from ..config.loader import LoadedConfig
from ..records import ExperimentSummary, TraceRecord
from ..redact import Redactor
from ..shipping.sender import BatchSender, SenderOptions
from ..shipping.spool import Spool, spool_dir
from ..shipping.target import CollectorTarget, collector_target
from ..shipping.wire import trace_items
from .base import RunEnd, RunStart

if TYPE_CHECKING:
    from ..run.experiment import Experiment

__all__ = ["DRAIN_ENV", "TIMEOUT_ENV", "HttpSink", "collector_target_for", "http_sink_for"]

_log = logging.getLogger("pytest_fluxloop.sinks")

DRAIN_ENV = "FLUXLOOP_COLLECTOR_DRAIN_SECONDS"
"""Seconds the sender gets at the end of a run to send what is queued (default 5)."""
TIMEOUT_ENV = "FLUXLOOP_COLLECTOR_TIMEOUT_SECONDS"
"""One request's connect/read timeout in seconds (default 10)."""


def collector_target_for(cfg: LoadedConfig) -> CollectorTarget | None:
    """The collector a run of ``cfg`` sends to, checked; None when none is configured or
    ``no_collector`` is set.

    The URL: the ``collector_url`` override, else ``project.yaml`` ``collector_url``. The
    token: ``collector_api_key``, else ``FLUXLOOP_COLLECTOR_TOKEN``.

    Raises:
        CollectorSettingError: (a ConfigError) naming the option or file and key.
    """
    if cfg.overrides.get("no_collector"):
        return None
    project = cfg.project
    url = cfg.overrides.text("collector_url")
    url_setting = cfg.overrides.option("collector_url")
    project_file = cfg.sources.get("project", cfg.config_path)
    if url is None and project is not None and project.collector_url:
        url = project.collector_url
        url_setting = f"{cfg.source_of('project', 'collector_url') or project_file}: collector_url"
    if url is None:
        return None
    token = project.collector_api_key if project is not None else None
    key_file = cfg.source_of("project", "collector_api_key") or project_file
    return collector_target(
        url,
        token=token or None,
        allow_insecure_http=bool(project is not None and project.collector_allow_insecure_http),
        url_setting=url_setting,
        token_setting=f"{key_file}: collector_api_key",
        allow_setting=f"collector_allow_insecure_http: true in {project_file}",
    )


def http_sink_for(
    experiment: Experiment, spool_folder: Callable[[], Path | None]
) -> HttpSink | None:
    """The collector sink of ``experiment``'s run, or None when no collector is configured.

    ``spool_folder`` gives the experiment folder once the files sink has opened it: unsent
    batches go into its ``collector_spool/``.

    Raises:
        CollectorSettingError: a bad URL or token (``Experiment.load`` already checked them,
            so a run stops before any case; see ``run.experiment.check_supported``).
    """
    cfg = experiment.cfg
    target = collector_target_for(cfg)
    if target is None:
        return None
    return HttpSink(
        target,
        redactor=cfg.redactor(),
        max_field_chars=cfg.simulation.artifact_field_max_chars,
        spool_folder=spool_folder,
        options=options_from_env(),
    )


def options_from_env(environ: Mapping[str, str] | None = None) -> SenderOptions:
    """The sender's options, with :data:`DRAIN_ENV` and :data:`TIMEOUT_ENV` applied (a bad
    value is ignored: it must not stop a run over a collector setting for tests)."""
    env = os.environ if environ is None else environ
    options = SenderOptions()
    drain = _seconds(env.get(DRAIN_ENV))
    timeout = _seconds(env.get(TIMEOUT_ENV))
    return replace(
        options,
        drain_seconds=options.drain_seconds if drain is None else drain,
        timeout_seconds=options.timeout_seconds if timeout is None else timeout,
    )


def _seconds(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


class HttpSink:
    """Sends every record to a collector; a :class:`~.base.ReportingSink` named
    ``collector`` (its report is ``summary.json`` ``collector``)."""

    name = "collector"

    def __init__(
        self,
        target: CollectorTarget,
        *,
        redactor: Redactor,
        max_field_chars: int,
        spool_folder: Callable[[], Path | None],
        options: SenderOptions | None = None,
    ) -> None:
        self.target = target
        self.redactor = redactor
        self.max_field_chars = max_field_chars
        self.spool_folder = spool_folder
        self.options = options or SenderOptions()
        self.sender: BatchSender | None = None
        self.failed_records = 0
        """Records that could not even be turned into items (logged; the files have them)."""
        self._report: dict[str, Any] | None = None

    @property
    def location(self) -> Path | None:
        """None: the results are in the files sink's folder."""
        return None

    def open(self, start: RunStart) -> None:
        """Start the background sender (the files sink is open: its folder is known)."""
        if self.sender is not None:
            return
        folder = self.spool_folder()
        source: dict[str, Any] = {"experiment": start.experiment_name}
        if folder is not None:
            source["run_id"] = folder.name  # the experiment folder: exp_<timestamp>[_<name>]
        self.sender = BatchSender(
            self.target, source, Spool(self.spool_folder), options=self.options
        )
        self.sender.start()

    def append(self, record: TraceRecord) -> None:
        """Queue the record's items; never waits on the network and never raises (a
        collector problem must not stop a run that writes its files)."""
        assert self.sender is not None, "HttpSink.append before open"
        try:
            data = artifact_record(record, self.redactor, max_field_chars=self.max_field_chars)
            items = trace_items(data)
        except Exception as exc:  # the files sink wrote this record: never fail the run
            self.failed_records += 1
            _log.warning(
                "fluxloop: trace %s not sent to the collector: %s",
                record.trace_id,
                self.target.scrub(repr(exc)),
            )
            return
        self.sender.submit(items)

    def finish(self, end: RunEnd) -> ExperimentSummary | None:
        """Drain the queue within the deadline, spool the rest; the figures are in
        :meth:`report`."""
        if self._report is None and self.sender is not None:
            self.sender.close()
            self._report = self._build_report()
        return None

    def _build_report(self) -> dict[str, Any]:
        assert self.sender is not None
        stats = self.sender.snapshot()
        folder = self.spool_folder()
        report: dict[str, Any] = {
            "url": self.target.url,
            "batches_sent": stats["batches_sent"],
            "items_sent": stats["items_sent"],
            "traces_sent": stats["traces_sent"],
            "stored": stats["stored"],
            "duplicate": stats["duplicate"],
            "rejected": stats["rejected"],
            "rejected_examples": stats["rejected_examples"],
            "retries": stats["retries"],
            "spooled_batches": stats["spooled_batches"],
            "spooled_items": stats["spooled_items"],
            "spooled_traces": stats["spooled_traces"],
            "spool_folder": str(spool_dir(folder)) if folder is not None else None,
            "lost_batches": stats["lost_batches"],
            "lost_items": stats["lost_items"],
            "failed_records": self.failed_records,
            "error": stats["auth_error"] or stats["error"],
        }
        return report

    def report(self) -> dict[str, Any]:
        """What was sent, stored, duplicate, rejected, spooled (``summary.json`` ``collector``)."""
        if self._report is None:
            return self._build_report() if self.sender is not None else {"url": self.target.url}
        return dict(self._report)

    def lines(self) -> list[str]:
        """The terminal summary's lines: what was sent; what was spooled and how to send it;
        why (the collector's error); a few rejected items."""
        report = self.report()
        if "batches_sent" not in report:
            return []
        line = (
            f"collector {report['url']}: {report['traces_sent']} traces sent "
            f"({report['stored']} stored, {report['duplicate']} duplicate, "
            f"{report['rejected']} rejected of {report['items_sent']} items)"
        )
        lines = [line]
        folder = self.spool_folder()
        if report["spooled_batches"]:
            lines[0] += (
                f"; {report['spooled_batches']} batches ({report['spooled_traces']} traces) "
                f"spooled in {report['spool_folder']} — send them with "
                f"`fluxloop collector push {folder}`"
            )
        if report["lost_batches"]:
            lines.append(
                f"collector: {report['lost_batches']} batches ({report['lost_items']} items) "
                "could be neither sent nor spooled; the results folder has every trace"
            )
        if report["error"] and (report["spooled_batches"] or report["lost_batches"]):
            lines.append(f"collector: {report['error']}")
        if report["rejected_examples"]:
            lines.append("collector rejected: " + "; ".join(report["rejected_examples"]))
        return lines
