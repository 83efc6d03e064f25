"""Process-wide changes the plugin makes for a run, and their undoing.

A CI cancel sends SIGTERM: it becomes KeyboardInterrupt so pytest stops cleanly, the session
finish hook runs, and ``summary.json`` says ``interrupted`` (exit code 2). The runner may
``chdir`` into the agent's working directory; the original one is restored at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType
from typing import Any


class ProcessGuard:
    """Installs the SIGTERM handler (main thread of the controller only) and restores it."""

    def __init__(self) -> None:
        self._cwd = os.getcwd()
        self._old_sigterm: Any = None

    def install_sigterm(self) -> None:
        """Turn SIGTERM into KeyboardInterrupt for the rest of the run."""
        if sys.platform == "win32":
            return
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:
            self._old_sigterm = None  # not the main thread (embedded pytest.main)

    def restore(self) -> None:
        """Undo the SIGTERM handler and the working-directory change."""
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        with contextlib.suppress(OSError):
            os.chdir(self._cwd)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")
