"""The SQLite store (the default): one file, WAL, one writer.

Every write goes through one dedicated connection behind a lock, so however many senders post
at once, SQLite sees a single writer and never answers "database is locked" to a second one of
ours. Reads open their own short-lived connection: in WAL mode they run beside the writer and
see every committed batch. ``busy_timeout`` covers other processes (a backup, ``sqlite3``
shell) holding the file for a moment; a write that still cannot get in within
:data:`WRITE_WAIT_SECONDS` is a :class:`~.store.StoreBusy` (the client's 503, retried later).

``synchronous=NORMAL`` in WAL mode keeps every committed transaction when the collector is
killed (the data is in the OS's file cache); only a power cut may lose the last ones.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from .errors import StoreBusy, StoreError
from .store import SQLStore

__all__ = ["BUSY_TIMEOUT_MS", "WRITE_WAIT_SECONDS", "SQLiteStore"]

BUSY_TIMEOUT_MS = 10_000
"""How long a connection waits for another process's lock on the file."""

WRITE_WAIT_SECONDS = 30.0
"""How long a write waits for the writer before the request is answered 503."""


class SQLiteStore(SQLStore):
    """A SQLite file; see the module docstring for how writes are serialised."""

    kind = "sqlite"
    types: ClassVar[Mapping[str, str]] = {
        "json": "TEXT",
        "ts": "TEXT",
        "bool": "INTEGER",
        "bigint": "INTEGER",
        "real": "REAL",
    }

    def __init__(self, path: str | Path) -> None:
        text = str(path)
        if not text or text == ":memory:" or text.startswith("file:"):
            raise StoreError(
                f"--db {text!r}: the collector needs a SQLite file (sqlite:///collector.db)"
            )
        self.path = Path(text).expanduser().resolve()
        self.description = f"sqlite {self.path}"
        if not self.path.parent.is_dir():
            raise StoreError(f"--db: the folder {str(self.path.parent)!r} does not exist")
        self._lock = threading.Lock()
        try:
            self._writer = self._connect()
            self._writer.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite database {str(self.path)!r}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; each use begins its own.
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    # Timestamps are TEXT in one fixed UTC format, so text order is time order.
    def _ts(self, moment: datetime) -> Any:
        return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")

    def _ts_out(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def _text(self, value: str | None) -> str | None:
        # A lone surrogate (a JSON "\\ud800" escape) cannot be encoded for SQLite.
        if value is None:
            return None
        return value.encode("utf-8", "replace").decode("utf-8")

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        if not self._lock.acquire(timeout=WRITE_WAIT_SECONDS):
            raise StoreBusy("the collector's writer is busy; retry later")
        try:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreBusy(f"the database is busy: {exc}") from exc
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                conn.execute("ROLLBACK")
                raise StoreBusy(f"the database is busy: {exc}") from exc
        finally:
            self._lock.release()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            # One read transaction: the queries of a request see one state of the database.
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close the writer."""
        with self._lock:
            # Busy readers may block the checkpoint: the WAL is then replayed on the next open.
            with suppress(sqlite3.Error):
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.close()
