"""Process-wide changes the plugin makes for a run, and their undoing.

A CI cancel sends SIGTERM: it becomes KeyboardInterrupt so pytest stops cleanly, the session
finish hook runs, and ``summary.json`` says ``interrupted`` (exit code 2). The runner may
``chdir`` into the agent's working directory, put the project's import paths on ``sys.path``
and load the project's ``.env``; all three are undone when the run ends, so a process that
goes on after ``pytest.main`` (the CLI, an embedding tool) is left as it was.
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
        """Undo the SIGTERM handler, the working directory, and the ``sys.path`` entries,
        ``runner.environment_vars`` and ``.env`` variables the run added (a variable changed
        since is left alone)."""
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        with contextlib.suppress(OSError):
            os.chdir(self._cwd)
        # Only modules that were loaded can have changed anything: importing them here
        # would load the engine into a run that never used it.
        target = sys.modules.get("pytest_fluxloop.engine.target")
        added_paths: list[str] = getattr(target, "ADDED_PATHS", [])
        for entry in added_paths:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)
        added_paths.clear()
        # runner.environment_vars before .env: a variable both set is back at the .env value
        # first, which the .env undoing below then recognises and removes.
        environment = sys.modules.get("pytest_fluxloop.engine.environment")
        if environment is not None:
            environment.restore_environment()
        loader = sys.modules.get("pytest_fluxloop.config.loader")
        dotenv_set: dict[str, str] = getattr(loader, "DOTENV_SET", {})
        for key, value in dotenv_set.items():
            if os.environ.get(key) == value:
                del os.environ[key]
        dotenv_set.clear()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")
