"""The spool: batches the collector did not take, kept on disk until ``fluxloop collector push``.

A batch that could not be sent (the collector down, slow, refusing the token, redirecting)
is written whole into ``<folder>/collector_spool/<batch_id>.json.gz``: the gzip-compressed
request body exactly as it was (or would have been) sent, so a push sends the same bytes
and the collector's idempotent ids make a batch that did arrive once harmless. ``folder``
is an experiment's results folder, or a ``FluxLoopClient``'s ``output_dir``.

Each file is written atomically (a temp file in the same folder, fsync, rename): a reader
or a push sees whole batches only, never one being written.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

from ..atomicfile import write_atomic
from .wire import BatchError, decode_batch

__all__ = [
    "SPOOL_DIR",
    "SPOOL_SUFFIX",
    "Spool",
    "read_spooled",
    "spool_dir",
    "spooled_files",
]

SPOOL_DIR = "collector_spool"
"""The spool's folder inside an experiment folder (or a client's ``output_dir``)."""
SPOOL_SUFFIX = ".json.gz"


def spool_dir(folder: str | os.PathLike[str]) -> Path:
    """The spool folder of ``folder``: ``folder`` itself when it is one (named
    :data:`SPOOL_DIR`), else ``folder/collector_spool`` (which may not exist)."""
    path = Path(folder)
    return path if path.name == SPOOL_DIR else path / SPOOL_DIR


def spooled_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The spooled batches of ``folder`` (see :func:`spool_dir`), oldest first."""
    directory = spool_dir(folder)
    if not directory.is_dir():
        return []
    files = [p for p in directory.iterdir() if p.name.endswith(SPOOL_SUFFIX) and p.is_file()]
    # Oldest first: a push sends batches in the order the run made them.
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def read_spooled(path: Path) -> tuple[bytes, dict[str, object]]:
    """A spooled batch: its body as sent (gzip) and the batch it decodes to.

    Raises:
        BatchError: the file is not a gzip-compressed batch of this format.
        OSError: it cannot be read.
    """
    body = path.read_bytes()
    try:
        raw = gzip.decompress(body)
    except (OSError, EOFError) as exc:
        raise BatchError(f"not a gzip file: {exc}") from None
    return body, decode_batch(raw)


class Spool:
    """Writes batches into ``folder()/collector_spool`` (thread-safe: one file per batch).

    ``folder`` is called at each write: an experiment's folder exists only once the files
    sink has opened it. It may return None (no folder yet): the write then fails with an
    OSError, which the sender counts as a lost batch.
    """

    def __init__(self, folder: Callable[[], Path | None]) -> None:
        self._folder = folder

    @property
    def directory(self) -> Path | None:
        """Where batches go, or None when the folder is not known yet."""
        folder = self._folder()
        return spool_dir(folder) if folder is not None else None

    def write(self, batch_id: str, body: bytes) -> Path:
        """Write one batch's gzip body as ``<batch_id>.json.gz``, atomically and durably.

        Raises:
            OSError: no folder, or the file cannot be written (nothing partial is left).
        """
        directory = self.directory
        if directory is None:
            raise OSError("the results folder is not open yet")
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{batch_id}{SPOOL_SUFFIX}"
        write_atomic(target, body)
        return target
