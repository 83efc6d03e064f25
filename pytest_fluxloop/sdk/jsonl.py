"""Appending whole JSON lines to a file from agent code (recordings, standalone traces).

Agents call the SDK from many threads at once, so lines must never interleave: a process-wide
lock serialises the writers, and each batch of lines goes to the OS in one ``write`` on a file
opened for appending (``O_APPEND``), which also keeps lines whole between processes on a
local file system.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

__all__ = ["append_lines"]

_lock = threading.Lock()


def append_lines(path: str | os.PathLike[str], lines: Iterable[str]) -> None:
    """Append ``lines`` (each one JSON line, without its newline) to ``path``.

    Parent folders are created. The data is handed to the OS before this returns (the file
    is unbuffered), so a crash of the process afterwards loses nothing.
    """
    data = "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogatepass")
    if not data:
        return
    target = Path(path)
    with _lock:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "ab", buffering=0) as fh:
            view = memoryview(data)
            while view:  # a raw write may be partial; finish the batch before unlocking
                written = fh.write(view)
                if not written:
                    raise OSError(f"could not write to {target}")
                view = view[written:]
