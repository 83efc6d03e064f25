"""The working directory: process-wide state every case shares, kept in place around attempts.

All cases run in one process (several at once with ``parallel_runs``), so an agent that calls
``os.chdir`` moves every other case, and one that then deletes that directory leaves every
later case with a working directory that no longer exists (``FileNotFoundError`` on any
relative path). The executor therefore puts the runner's working directory back before and
after each attempt (:class:`CwdGuard`), and a ``sys.addaudithook`` hook notes which case
called ``os.chdir`` (the call runs in that case's context, on its thread or its task), so
the notice lands on the case that did it even when others ran at the same time.

The hook is installed once per process, the first time a guard is made; for any other
audit event it returns after one string comparison. It also numbers the chdirs, so a guard
only calls ``os.getcwd`` after some chdir happened: a case that changes nothing costs two
dictionary operations. (A chdir from native code, bypassing ``os.chdir``, goes unseen.)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
from typing import Any

from ..records import Observation
from ..sdk.context import current_trace

MAX_NOTED = 5
"""Directories kept per attempt in the notice (an agent may chdir in a loop)."""

_watched: dict[str, list[str]] = {}  # trace id -> directories its attempt chdir'd to
_numbers = itertools.count(1)
_generation = 0
"""A new number after every ``os.chdir`` in the process (ours too), so a guard calls
``os.getcwd`` only when some chdir happened since it last looked: nothing on the hot path."""
_hook_lock = threading.Lock()
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    global _generation
    if event != "os.chdir":
        return
    # Unique numbers: any chdir after a guard read the generation changes what it reads.
    _generation = next(_numbers)
    try:  # an audit hook that raises would make the agent's os.chdir fail
        ctx = current_trace()
        if ctx is None:
            return  # not inside a case (the plugin's own chdir)
        noted = _watched.get(ctx.trace_id)
        if noted is not None:
            noted.append(str(args[0]) if args else "?")
    except Exception:
        pass


def _install_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        _hook_installed = True
    sys.addaudithook(_audit)


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the agent deleted the directory we are in
        return None


class CwdGuard:
    """Keeps the working directory at ``home`` around each attempt of a case.

    ``home`` is the runner's working directory; None means "whatever it is when the
    attempt starts" (an executor used without a workspace).
    """

    def __init__(self, home: str | os.PathLike[str] | None) -> None:
        self.home = os.fspath(home) if home is not None else None
        self._checked = -1  # the generation last seen with the cwd at home
        _install_hook()

    def enter(self, trace_id: str) -> tuple[str | None, int]:
        """Before an attempt: back to ``home`` if something moved us; start noting chdirs.

        Returns what :meth:`leave` needs: the directory to restore, and the generation.
        """
        generation = _generation
        home = self.home
        if home is None:
            home = _getcwd()
        elif generation != self._checked:
            if _getcwd() != home:
                _chdir(home)  # another case (or a leaked thread) left it elsewhere
            self._checked = generation
        _watched[trace_id] = []  # dict operations are atomic: no lock on the hot path
        return home, generation

    def leave(self, trace_id: str, entered: tuple[str | None, int]) -> Observation | None:
        """After an attempt: restore ``home`` if it changed; a notice if this case chdir'd."""
        home, generation = entered
        noted = _watched.pop(trace_id, None)
        restored = False
        if home is not None and _generation != generation and _getcwd() != home:
            _chdir(home)
            restored = True
        if not noted:
            return None
        return Observation(
            trace_id=trace_id,
            type="notice",
            name="cwd_changed",
            error=(
                f"the agent changed the working directory (os.chdir to {noted[-1]!r}); the "
                "working directory is shared by every case in this process, so it was set "
                f"back to {home!r} (the runner's working_directory) after this attempt"
            ),
            metadata={
                "chdir_to": noted[:MAX_NOTED],
                "chdir_calls": len(noted),
                "restored_to": home,
                "left_changed": restored,
            },
        )


def _chdir(path: str) -> None:
    # If the home directory itself is gone, the case's own error will say so.
    with contextlib.suppress(OSError):
        os.chdir(path)
