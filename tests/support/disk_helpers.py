"""Real "disk full" conditions for the crash-safety tests.

Two ways, both real kernel behaviour:

* :data:`FSIZE_PRELUDE`: a ``python -c`` prelude that sets ``RLIMIT_FSIZE`` (and ignores
  ``SIGXFSZ``, so writes past the limit fail with ``EFBIG`` instead of killing the process),
  then ``exec``s the real command. Works anywhere on POSIX, no privileges needed. The limit
  is per file, so small files (summary.json) still fit while a growing JSONL file fails.
* :func:`small_tmpfs`: a real tmpfs of a few hundred KiB mounted on a folder (``ENOSPC``
  for every file). Needs root with ``CAP_SYS_ADMIN``; the test is skipped, with the reason,
  where ``mount`` is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FSIZE_PRELUDE = (
    "import os, resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)
"""``python -c FSIZE_PRELUDE LIMIT PROGRAM ARGS...``: run PROGRAM with files capped at LIMIT."""


def fsize_command(limit: int, *command: str) -> list[str]:
    """``command`` run with every file it writes capped at ``limit`` bytes."""
    if not hasattr(os, "fork"):  # pragma: no cover - POSIX only
        pytest.skip("RLIMIT_FSIZE needs a POSIX system")
    return [sys.executable, "-c", FSIZE_PRELUDE, str(limit), *command]


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``"256k"``) on ``path`` for the block; skip if refused."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs Linux and root; the RLIMIT_FSIZE tests cover it")
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield path
    finally:
        # Lazy: a file still open in a leftover process must not keep the mount around.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def grow_tmpfs(path: Path, size: str) -> None:
    """Free space on a :func:`small_tmpfs` mount by making it bigger."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)
