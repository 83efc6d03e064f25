"""Reusable daemon threads that run agent attempts under a deadline.

Each attempt runs off the caller's thread so its deadline can be enforced whatever the agent
does. Starting a thread per case costs ~50 µs and much more on a loaded machine, so idle
threads are kept and reused; a thread still busy past its deadline is simply not reused
until its job ends (it is a daemon, so it never holds the process at exit).
"""

from __future__ import annotations

import _thread
import queue
import threading
from collections.abc import Callable
from typing import Any

IDLE_NAME = "fluxloop-agent-idle"
MAX_IDLE = 64


class Job:
    """One submitted call; ``wait`` tells whether it finished in time.

    A bare lock held until the job ends, not a :class:`threading.Event`: an Event builds a
    Condition around a second lock for every job, which costs more than a fast agent's
    whole attempt.
    """

    __slots__ = ("_finished", "_lock")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._finished = False

    def _set(self) -> None:
        self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        """True if the job finished within ``timeout`` seconds (may be called again)."""
        if self._finished:
            return True
        limit = -1 if timeout is None else min(max(timeout, 0.0), threading.TIMEOUT_MAX)
        if not self._lock.acquire(True, limit):
            return False
        self._finished = True
        self._lock.release()  # any later or concurrent wait() returns at once too
        return True


class _Worker:
    def __init__(self, pool: AgentThreads) -> None:
        self._pool = pool
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], str, Job]] = (
            queue.SimpleQueue()
        )
        self.thread = threading.Thread(target=self._loop, name=IDLE_NAME, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str, job: Job) -> None:
        self._jobs.put((fn, args, name, job))

    def _loop(self) -> None:
        while True:
            fn, args, name, job = self._jobs.get()
            # The case's name while it runs: a thread left behind says which case it is.
            self.thread.name = name
            try:
                fn(*args)
            except BaseException:
                pass
            finally:
                self.thread.name = IDLE_NAME
                # Back in the pool before the caller learns the job is done, so a start()
                # right after Job.wait() reuses this thread instead of making another.
                kept = self._pool._release(self)
                job._set()
            if not kept:
                return  # the idle pool is full: this thread ends instead of idling forever


class AgentThreads:
    """A pool of daemon threads that grows on demand and keeps up to MAX_IDLE idle ones."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def start(self, fn: Callable[..., Any], arg: Any, name: str) -> Job:
        """Run ``fn(arg)`` on an idle thread (or a new one) and return its job."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self)
        job = Job()
        worker.submit(fn, (arg,), name, job)
        return job

    def _release(self, worker: _Worker) -> bool:
        """Keep ``worker`` for reuse if the idle pool has room; False if it must exit."""
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(worker)
                return True
            return False
