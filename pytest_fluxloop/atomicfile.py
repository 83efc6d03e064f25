"""Replacing a file atomically: the one copy every writer of a whole file uses (artifacts,
reports, cassettes, the collector spool). Standard library only, so any layer may use it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: temp file in the same dir, fsync, ``os.replace``.

    Readers see either the old or the new file, never a partial one. ``durable=False`` skips
    the fsync (still atomic for readers and for a killed process, not for a power cut): for
    the frequent running-summary rewrites.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
