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

``storage="http"`` (send traces to a FluxLoop collector) is not available yet: it arrives
with the collector. The client checks ``collector_url`` and then raises
:class:`NotImplementedError` saying so, rather than accept traces it would drop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlparse

from ..records import TraceRecord
from .instrument import Instrumentation, write_trace
from .settings import get_config

__all__ = ["DEFAULT_OUTPUT_DIR", "STORAGES", "FluxLoopClient"]

STORAGES = ("file", "http")
"""The ``storage`` values :class:`FluxLoopClient` accepts."""

DEFAULT_OUTPUT_DIR = "fluxloop_traces"
"""File storage's folder when neither ``output_dir`` nor the SDK config
(``offline_store_dir``, ``FLUXLOOP_OFFLINE_DIR``) names one."""


def _collector_url(url: str | None) -> str:
    """``url`` (or the SDK config's ``collector_url``) checked: an http(s) URL with a host."""
    if url is None:
        url = get_config().collector_url
    if url is None:
        raise ValueError(
            'storage="http" needs collector_url="http(s)://host:port" (or '
            "configure(collector_url=...))"
        )
    try:
        parsed = urlparse(url)
        ok = parsed.scheme in ("http", "https") and bool(parsed.netloc)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"collector_url must be an http:// or https:// URL such as "
            f"http://localhost:8000, got {url!r}"
        )
    return url.rstrip("/")


class FluxLoopClient:
    """A trace store for application code: ``FluxLoopClient(storage="file")``.

    Args:
        storage: ``"file"`` (JSONL files in ``output_dir``) or ``"http"`` (a collector; not
            available yet, see the module docstring). Anything else is a ValueError naming
            the allowed values.
        collector_url: the collector's ``http://`` or ``https://`` URL (``storage="http"``
            only; default: the SDK config's ``collector_url``).
        output_dir: file storage's folder, created on the first write (default: the SDK
            config's ``offline_store_dir``, else :data:`DEFAULT_OUTPUT_DIR`). A relative
            path is resolved now, so a later ``chdir`` does not move the files.
        api_key: the collector's key (``storage="http"`` only; accepted so the earlier
            SDK's calls reach the clear error above).

    Raises:
        ValueError: a bad ``storage`` or ``collector_url``.
        NotImplementedError: ``storage="http"`` (with a valid URL).

    Attributes:
        storage: the backend.
        output_dir: file storage's folder (absolute).
        traces_written: how many traces this client has written.
    """

    def __init__(
        self,
        storage: Literal["file", "http"] | str = "file",
        *,
        collector_url: str | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        api_key: str | None = None,
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(
                f"storage must be one of: {', '.join(repr(s) for s in STORAGES)}; got {storage!r}"
            )
        if storage == "http":
            url = _collector_url(collector_url)
            raise NotImplementedError(
                f'storage="http" (sending traces to the collector at {url}) arrives with the '
                'FluxLoop collector in a later release; use storage="file" for now (JSONL '
                "files in output_dir) and send those files on later"
            )
        if collector_url is not None or api_key is not None:
            raise ValueError(
                'collector_url and api_key are for storage="http" (not available yet); '
                'storage="file" writes to output_dir'
            )
        self.storage: Literal["file", "http"] = "file"
        folder = output_dir if output_dir is not None else get_config().offline_store_dir
        self.output_dir = Path(folder or DEFAULT_OUTPUT_DIR).expanduser().absolute()
        self.traces_written = 0
        self._closed = False

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

    def write(self, record: TraceRecord) -> tuple[Path, Path]:
        """Store one finished trace (a :class:`~pytest_fluxloop.records.TraceRecord`, its
        observations included); returns ``(traces.jsonl, observations.jsonl)``.

        Raises:
            RuntimeError: the client is closed.
            OSError: the files cannot be written (a ``client.trace`` block logs this
                instead of raising it into the application).
        """
        if self._closed:
            raise RuntimeError(f"FluxLoopClient is closed; trace {record.trace_id} not written")
        files = write_trace(self.output_dir, record)
        self.traces_written += 1
        return files

    def flush(self) -> None:
        """Make every trace written so far durable to readers: file storage writes each
        trace when it ends, unbuffered, so there is nothing left to do."""

    def close(self) -> None:
        """Flush, then refuse further traces (calling it again does nothing)."""
        self.flush()
        self._closed = True

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
        return f"<FluxLoopClient storage={self.storage!r} output_dir='{self.output_dir}'{state}>"
