"""Appending whole JSON lines to a file from agent code (recordings, standalone traces).

Agents call the SDK from many threads and processes at once, so lines must never interleave.
Each batch of lines goes to the OS in one ``os.write`` on a descriptor opened with
``O_APPEND``: the kernel moves to the end of the file and writes the whole buffer as one
step, so writers in other processes cannot land inside it (on a local file system; not on
NFS). A process-wide lock also serialises this process's writers.

With a size cap (``max_bytes``) the file is rotated like a log: when a batch would take it
past the cap, ``<file>`` becomes ``<file>.1`` (``.1`` becomes ``.2`` ..., at most ``backups``
kept) and the batch starts a fresh file. A batch is never split across files. Checking the
size, rotating and appending happen under an exclusive ``flock`` on a ``<file>.lock``
sidecar (POSIX; elsewhere only this process's writers are serialised), so two processes
never both rotate the same full file, which would push a backup off the end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_SUFFIX", "append_lines", "backup_path"]

LOCK_SUFFIX = ".lock"
"""The sidecar lock file of a capped file is ``<file>.lock``."""

_lock = threading.Lock()
# O_CLOEXEC: a subprocess the agent starts must not inherit the descriptor. O_BINARY
# (Windows only): no newline translation.
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC | getattr(os, "O_BINARY", 0)


def append_lines(
    path: str | os.PathLike[str],
    lines: Iterable[str],
    *,
    max_bytes: int = 0,
    backups: int = 0,
) -> None:
    """Append ``lines`` (each one JSON line, without its newline) to ``path``.

    Parent folders are created. The data is handed to the OS in one ``os.write`` before this
    returns (nothing is buffered), so a crash of the process afterwards loses nothing.

    Args:
        max_bytes: the file's size cap (0: none). When appending would pass it, the file is
            rotated first (see the module docstring). A batch larger than the cap on its
            own still goes, whole, into a fresh file.
        backups: how many rotated files to keep (``<path>.1`` is the newest); 0: a full
            file is deleted.
    """
    data = "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogatepass")
    if not data:
        return
    target = Path(path)
    with _lock:
        target.parent.mkdir(parents=True, exist_ok=True)
        if max_bytes <= 0:
            _append(target, data)
            return
        with _file_lock(target):
            _rotate_if_full(target, len(data), max_bytes, backups)
            _append(target, data)


def backup_path(path: str | os.PathLike[str], number: int) -> Path:
    """The ``number``-th rotated copy of ``path``: ``<path>.<number>`` (1 is the newest)."""
    target = Path(path)
    return target.with_name(f"{target.name}.{number}")


def _append(target: Path, data: bytes) -> None:
    fd = os.open(target, _APPEND_FLAGS, 0o666)
    try:
        written = os.write(fd, data)
        # A regular file takes the whole buffer in one write; only a full disk or a signal
        # mid-write can stop short. Finishing the line then is better than losing it.
        while written < len(data):
            more = os.write(fd, memoryview(data)[written:])
            if more <= 0:
                raise OSError(f"could not write to {target}")
            written += more
    finally:
        os.close(fd)


@contextmanager
def _file_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<target>.lock`` across processes (POSIX ``flock``)."""
    try:
        import fcntl
    except ImportError:  # Windows: the thread lock is all there is
        yield
        return
    fd = os.open(
        target.with_name(target.name + LOCK_SUFFIX),
        os.O_RDWR | os.O_CREAT | _CLOEXEC,
        0o666,
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _rotate_if_full(target: Path, incoming: int, max_bytes: int, backups: int) -> None:
    try:
        size = os.stat(target).st_size
    except FileNotFoundError:
        return
    if size == 0 or size + incoming <= max_bytes:
        return
    if backups <= 0:
        os.unlink(target)
        return
    # Oldest first, so each rename lands on a name already moved on (or past the last kept).
    for number in range(backups - 1, 0, -1):
        older = backup_path(target, number)
        if older.exists():
            os.replace(older, backup_path(target, number + 1))
    os.replace(target, backup_path(target, 1))
