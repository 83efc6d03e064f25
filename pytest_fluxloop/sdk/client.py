"""``FluxLoopClient``: record the traces of a running application into a storage backend.

::

    client = fluxloop.FluxLoopClient(storage="file", output_dir="traces")
    with client.trace("checkout", user_id="u1"):
        handle(request)            # decorated calls inside record into this trace
    client.close()

``storage="file"`` (the default) appends each finished trace to ``<output_dir>/traces.jsonl``
and its observations to ``<output_dir>/observations.jsonl``: the shapes an experiment's
artifacts and a configured :func:`~pytest_fluxloop.sdk.instrument` block use, secrets
redacted, written by the same function (:func:`~pytest_fluxloop.sdk.instrument.write_trace`).
Each trace is written when its block ends, with one ``O_APPEND`` write per file, so nothing
is buffered, several processes can share a folder, and :meth:`FluxLoopClient.flush` has
nothing to do.

``storage="http"`` sends each finished trace to a FluxLoop collector (``fluxloop collector
serve``) instead, from a background thread (:mod:`pytest_fluxloop.shipping.sender`): the
application never waits on the network. Traces are redacted as file storage redacts them
(:func:`~pytest_fluxloop.sdk.instrument.trace_data`) and sent as the collector's batch items
(the trace, then each observation); batches the collector does not take (down, slow,
refusing the token) are spooled into ``<output_dir>/collector_spool/``, from where
``fluxloop collector push <output_dir> --url URL`` sends them later. :meth:`FluxLoopClient.flush`
waits (bounded) for the queue to drain; :meth:`FluxLoopClient.close` (also run at interpreter
exit) drains within a few seconds and spools the rest::

    client = fluxloop.FluxLoopClient(storage="http", collector_url="https://collector.example.com")
    ...
    client.close()

The token: ``api_key``, else ``FLUXLOOP_COLLECTOR_TOKEN``, else the SDK config's ``api_key``
(``FLUXLOOP_API_KEY``); sent as ``Authorization: Bearer``, never logged, never sent to
another address than ``collector_url`` (a redirect is not followed). Plain ``http://`` to a
host that is not this machine is refused unless ``allow_insecure_http=True`` (or
``FLUXLOOP_COLLECTOR_ALLOW_INSECURE=1``). The SDK config's ``flush_interval`` (how long a
batch waits for more traces), ``max_queue_size`` and ``timeout`` apply.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ..records import TraceRecord
from .instrument import Instrumentation, trace_data, write_trace
from .settings import get_config

if TYPE_CHECKING:
    from ..shipping.sender import BatchSender
    from ..shipping.target import CollectorTarget

__all__ = ["DEFAULT_OUTPUT_DIR", "STORAGES", "FluxLoopClient"]

STORAGES = ("file", "http")
"""The ``storage`` values :class:`FluxLoopClient` accepts."""

DEFAULT_OUTPUT_DIR = "fluxloop_traces"
"""File storage's folder when neither ``output_dir`` nor the SDK config
(``offline_store_dir``, ``FLUXLOOP_OFFLINE_DIR``) names one."""


class FluxLoopClient:
    """A trace store for application code: ``FluxLoopClient(storage="file")``, or
    ``FluxLoopClient(storage="http", collector_url=...)`` to send to a collector.

    Args:
        storage: ``"file"`` (JSONL files in ``output_dir``) or ``"http"`` (a FluxLoop
            collector, see the module docstring). Anything else is a ValueError naming the
            allowed values.
        collector_url: the collector's ``http://`` or ``https://`` URL (``storage="http"``
            only; default: the SDK config's ``collector_url``).
        output_dir: file storage's folder, created on the first write (default: the SDK
            config's ``offline_store_dir``, else :data:`DEFAULT_OUTPUT_DIR`); with
            ``storage="http"``, where unsent batches are spooled (``collector_spool/``). A
            relative path is resolved now, so a later ``chdir`` does not move the files.
        api_key: the collector's token (``storage="http"`` only; default:
            ``FLUXLOOP_COLLECTOR_TOKEN``, else the SDK config's ``api_key``).
        allow_insecure_http: send over plain ``http://`` to a host that is not this machine
            (``storage="http"`` only; default: ``FLUXLOOP_COLLECTOR_ALLOW_INSECURE``).

    Raises:
        ValueError: a bad ``storage``, ``collector_url`` or token; plain ``http://`` to
            another host without ``allow_insecure_http``; collector arguments with
            ``storage="file"``.

    Attributes:
        storage: the backend.
        output_dir: file storage's folder, or the spool's parent (absolute).
        collector_url: the collector (``storage="http"``), else None.
        traces_written: how many traces this client has written (or queued to send).
    """

    def __init__(
        self,
        storage: Literal["file", "http"] | str = "file",
        *,
        collector_url: str | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        api_key: str | None = None,
        allow_insecure_http: bool | None = None,
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(
                f"storage must be one of: {', '.join(repr(s) for s in STORAGES)}; got {storage!r}"
            )
        if storage == "file" and (
            collector_url is not None or api_key is not None or allow_insecure_http is not None
        ):
            raise ValueError(
                'collector_url, api_key and allow_insecure_http are for storage="http"; '
                'storage="file" writes to output_dir'
            )
        self.storage: Literal["file", "http"] = "http" if storage == "http" else "file"
        folder = output_dir if output_dir is not None else get_config().offline_store_dir
        self.output_dir = Path(folder or DEFAULT_OUTPUT_DIR).expanduser().absolute()
        self.traces_written = 0
        self._closed = False
        self._sender: BatchSender | None = None
        self.collector_url: str | None = None
        if self.storage == "http":
            target = _collector_target(collector_url, api_key, allow_insecure_http)
            self.collector_url = target.url
            self._sender = _start_sender(target, self.output_dir)
            # Queued traces are sent (or spooled) when the interpreter exits without close().
            atexit.register(self._sender.close)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def trace(
        self,
        name: str,
        *,
        session_id: Any = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        trace_id: Any = None,
        type: Any = None,
    ) -> Instrumentation:
        """A block traced into this client: ``with client.trace("checkout") as run: ...``
        (or ``async with``).

        The same block as :func:`~pytest_fluxloop.sdk.instrument` with the same arguments,
        except where a new trace goes: to this client's storage when the block ends, not to
        the SDK config's offline folder. Inside a FluxLoop case (or another traced block)
        it is a span of that trace, as ``instrument`` is, and this client writes nothing.

        Raises:
            RuntimeError: the client is closed.
        """
        if self._closed:
            raise RuntimeError(f"FluxLoopClient is closed; cannot trace {name!r}")
        return Instrumentation(
            name,
            session_id=session_id,
            user_id=user_id,
            metadata=metadata,
            tags=tags,
            trace_id=trace_id,
            type=type,
            writer=self.write,
        )

    def write(self, record: TraceRecord) -> tuple[Path, Path] | None:
        """Store one finished trace (a :class:`~pytest_fluxloop.records.TraceRecord`, its
        observations included). File storage returns ``(traces.jsonl,
        observations.jsonl)``; HTTP storage queues it for the sender and returns None (it
        never waits on the network).

        Raises:
            RuntimeError: the client is closed.
            OSError: the files cannot be written (a ``client.trace`` block logs this
                instead of raising it into the application).
        """
        if self._closed:
            raise RuntimeError(f"FluxLoopClient is closed; trace {record.trace_id} not written")
        if self._sender is not None:
            from ..shipping.wire import trace_items

            self._sender.submit(trace_items(trace_data(record)))
            self.traces_written += 1
            return None
        files = write_trace(self.output_dir, record)
        self.traces_written += 1
        return files

    def flush(self, timeout: float | None = None) -> bool:
        """Make every trace written so far durable; True when done.

        File storage writes each trace when it ends, unbuffered: nothing to do. HTTP storage
        waits until every queued trace was sent or spooled, at most ``timeout`` seconds
        (default: a few); False if some are still queued then.
        """
        if self._sender is None:
            return True
        return self._sender.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then refuse further traces (calling it again does nothing). HTTP storage
        gives the queue ``timeout`` seconds (default: a few) to drain, then spools what is
        left into ``<output_dir>/collector_spool/``."""
        if self._closed:
            return
        self._closed = True
        if self._sender is not None:
            atexit.unregister(self._sender.close)
            self._sender.close(timeout)

    def report(self) -> dict[str, Any]:
        """What HTTP storage did so far: batches and items sent, stored, duplicate,
        rejected, spooled (and where), the last error; ``{}`` for file storage."""
        if self._sender is None:
            return {}
        from ..shipping.spool import spool_dir

        return {
            "url": self.collector_url,
            **self._sender.snapshot(),
            "spool_folder": str(spool_dir(self.output_dir)),
        }

    def __enter__(self) -> FluxLoopClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        where = f"collector_url='{self.collector_url}'" if self.collector_url else ""
        where = where or f"output_dir='{self.output_dir}'"
        return f"<FluxLoopClient storage={self.storage!r} {where}{state}>"


def _collector_target(
    url: str | None, api_key: str | None, allow_insecure_http: bool | None
) -> CollectorTarget:
    """The checked collector of ``storage="http"`` (ValueError naming the argument)."""
    from ..shipping.target import collector_target, token_from_env

    config = get_config()
    if url is None:
        url = config.collector_url
    if url is None:
        raise ValueError(
            'storage="http" needs collector_url="http(s)://host:port" (or '
            "configure(collector_url=...))"
        )
    token = api_key if api_key is not None else (token_from_env() or config.api_key)
    return collector_target(
        url,
        token=token or "",  # "": no token (the environment was read just above)
        allow_insecure_http=bool(allow_insecure_http),
        url_setting="collector_url",
        token_setting="api_key",
        allow_setting="FluxLoopClient(..., allow_insecure_http=True)",
    )


def _start_sender(target: CollectorTarget, output_dir: Path) -> BatchSender:
    """The started background sender of a client (spooling under ``output_dir``)."""
    # Imported here: file storage, and `import fluxloop`, never load the sender.
    from ..shipping.sender import BatchSender, SenderOptions
    from ..shipping.spool import Spool

    config = get_config()
    options = SenderOptions(
        linger_seconds=config.flush_interval,
        queue_size=config.max_queue_size,
        timeout_seconds=config.timeout,
    )
    source = {
        key: value
        for key, value in (("service", config.service_name), ("environment", config.environment))
        if value
    }
    sender = BatchSender(target, source, Spool(lambda: output_dir), options)
    sender.start()
    return sender
