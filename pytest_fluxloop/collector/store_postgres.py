"""The PostgreSQL store (``--db postgresql://...``), for teams that outgrow one machine.

psycopg 3 (the extra ``collector-postgres``). Requests take a connection from a small pool
(:data:`POOL_SIZE`; a broken one is dropped and a new one opened), so several collectors may
share one database. Writes need no lock of ours: ``INSERT ... ON CONFLICT DO NOTHING`` on the
ids makes concurrent senders of the same batch store it once, and rows are written in one
order so overlapping batches wait for each other instead of deadlocking (a deadlock or a
serialisation failure is retried, :data:`RETRIES` times). Migrations take an advisory lock, so
two collectors starting at once upgrade the schema once.

JSON columns are ``json`` (not ``jsonb``): the text is kept as sent, and ``\\u0000`` escapes,
which ``jsonb`` refuses, are stored too.
"""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .errors import StoreBusy, StoreError
from .store import Row, Source, SpanRow, SQLStore

if TYPE_CHECKING:
    import psycopg

__all__ = ["POOL_SIZE", "RETRIES", "PostgresStore", "redact_url"]

POOL_SIZE = 8
"""Connections kept open between requests."""

RETRIES = 3
"""Attempts of a write that meets a deadlock or a serialisation failure."""

CONNECT_TIMEOUT_SECONDS = 10

T = TypeVar("T")

# An arbitrary constant: the advisory lock key of this collector's migrations.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7316522814)"


def redact_url(url: str) -> str:
    """The URL without its password (for logs and errors)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class PostgresStore(SQLStore):
    """A PostgreSQL database reached with psycopg 3 through a small connection pool."""

    kind = "postgresql"
    placeholder = "%s"
    types: ClassVar[Mapping[str, str]] = {
        "json": "JSON",
        "ts": "TIMESTAMPTZ",
        "bool": "BOOLEAN",
        "bigint": "BIGINT",
        "real": "DOUBLE PRECISION",
    }
    _lock_schema = _MIGRATION_LOCK

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "--db postgresql:// needs psycopg: "
                "pip install 'pytest-fluxloop[collector-postgres]'"
            ) from None
        self._psycopg = psycopg
        self.url = url
        self.description = f"postgresql {redact_url(url)}"
        self._pool: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        # Fail at start, not on the first request, when the server cannot be reached.
        self._release(self._connect())

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return self._psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except self._psycopg.Error as exc:
            # psycopg's message names host and port, never the password.
            raise StoreBusy(
                f"cannot connect to PostgreSQL at {redact_url(self.url)}: {_first_line(exc)}"
            ) from None

    def _take(self) -> psycopg.Connection[Any]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            return self._connect()
        if conn.closed or conn.broken:
            return self._connect()
        return conn

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken or self._pool.qsize() >= POOL_SIZE:
            conn.close()
            return
        self._pool.put(conn)

    def _text(self, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL, nor Python's lone surrogates.
        if value is None:
            return None
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")

    def _json_param(self) -> str:
        return "%s::json"

    def _writing(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._transaction()

    def _reading(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        # PostgreSQL serialises writers itself: reads and writes take the same path.
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._take()
        try:
            with conn.transaction():
                yield conn
        except (self._psycopg.errors.DeadlockDetected, self._psycopg.errors.SerializationFailure):
            raise  # a deadlock: rolled back, the connection is fine; the write is retried
        except self._psycopg.OperationalError as exc:
            conn.close()
            raise StoreBusy(f"PostgreSQL: {_first_line(exc)}") from exc
        finally:
            self._release(conn)

    def write_batch(self, source: Source, rows: Sequence[Row]) -> list[bool]:
        """Store a batch (see :meth:`SQLStore.write_batch`), retried on a deadlock."""
        return self._retrying(lambda: super(PostgresStore, self).write_batch(source, rows))

    def write_spans(self, spans: Sequence[SpanRow]) -> int:
        """Store OTLP spans (see :meth:`SQLStore.write_spans`), retried on a deadlock."""
        return self._retrying(lambda: super(PostgresStore, self).write_spans(spans))

    def _retrying(self, write: Callable[[], T]) -> T:
        for attempt in range(RETRIES):
            try:
                return write()
            except (
                self._psycopg.errors.DeadlockDetected,
                self._psycopg.errors.SerializationFailure,
            ):
                if attempt == RETRIES - 1:
                    raise StoreBusy("PostgreSQL kept reporting deadlocks; retry later") from None
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the pooled connections."""
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
