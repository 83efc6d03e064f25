"""Where the collector keeps what it receives: the :class:`Store` protocol, the rows it stores,
the schema and its migrations, and the SQL shared by the SQLite and PostgreSQL stores.

The schema (see ``docs/collector.md``) is created and upgraded by :data:`MIGRATIONS`, an ordered
list applied at start; ``schema_version`` records each applied version. Both stores run the
same SQL: :class:`SQLStore` holds it, :mod:`.store_sqlite` and :mod:`.store_postgres` supply a
connection, the placeholder style and the column types.

Every write is idempotent: traces, observations and OTLP spans are inserted with
``ON CONFLICT DO NOTHING`` on their ids (a resent batch stores nothing twice), and a run's
summary is replaced only by a newer one. Each batch and each OTLP request is written in one
transaction, so a failure stores nothing of it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Protocol

from .errors import SchemaError, StoreBusy, StoreError

__all__ = [
    "MAX_PAGE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "ObservationRow",
    "Row",
    "SQLStore",
    "SchemaError",
    "Source",
    "SpanRow",
    "Store",
    "StoreBusy",
    "StoreError",
    "SummaryRow",
    "TracePage",
    "TraceQuery",
    "TraceRow",
    "decode_cursor",
    "encode_cursor",
    "open_store",
]

MAX_PAGE = 500
"""The largest ``limit`` of ``GET /api/traces``."""


# --- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Who sent a batch (its ``source`` object) and when (``sent_at``, normalised to UTC)."""

    experiment: str | None
    run_id: str | None
    host: str | None
    sender: str | None
    sent_at: datetime


@dataclass(frozen=True)
class ObservationRow:
    """One observation: its trace, its position in the trace and its JSON text."""

    trace_id: str
    position: int
    type: str
    name: str
    data: str


@dataclass(frozen=True)
class TraceRow:
    """One trace (a ``traces.jsonl`` line without observations) and the columns it is
    filtered by; ``observations`` are the ones the sender embedded in the trace, stored in
    the same transaction."""

    trace_id: str
    case_id: str
    iteration: int
    persona: str | None
    status: str
    success: bool
    started_at: datetime
    completed_at: datetime
    duration_ms: float
    data: str
    observations: tuple[ObservationRow, ...] = ()


@dataclass(frozen=True)
class SummaryRow:
    """A run's ``summary.json``; ``rank`` orders two summaries of one run (the larger is
    newer: a completed summary, then the later ``sent_at``)."""

    run_id: str
    experiment: str
    status: str
    rank: str
    data: str


Row = TraceRow | ObservationRow | SummaryRow


@dataclass(frozen=True)
class SpanRow:
    """One OTLP span: ids in lowercase hex, times in Unix nanoseconds, the rest as JSON text."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: int
    conversation_id: str | None
    fluxloop_trace_id: str | None
    resource: str
    scope: str
    attributes: str
    detail: str


@dataclass(frozen=True)
class TraceQuery:
    """The filters and page of ``GET /api/traces``; ``since`` is inclusive, ``until``
    exclusive, both on ``started_at``."""

    experiment: str | None = None
    run_id: str | None = None
    persona: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    after: tuple[datetime, str] | None = None


@dataclass
class TracePage:
    """One page of traces, newest first, and the cursor of the next page (None at the end)."""

    traces: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(started_at: datetime, trace_id: str) -> str:
    """The opaque cursor after a trace: the order key of the last trace of a page."""
    raw = json.dumps([started_at.isoformat(), trace_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The order key in a cursor.

    Raises:
        ValueError: not a cursor this collector made.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, trace_id = json.loads(raw)
        moment = datetime.fromisoformat(started)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cursor {cursor[:40]!r} is not valid: {exc}") from None
    if not isinstance(trace_id, str) or moment.tzinfo is None:
        raise ValueError(f"cursor {cursor[:40]!r} is not valid")
    return moment, trace_id


# --- the protocol -----------------------------------------------------------------------------


class Store(Protocol):
    """What the collector's routes need of a store. Methods block (the app calls them from
    worker threads) and are safe to call from several threads at once."""

    kind: str
    """``sqlite`` or ``postgresql``."""

    description: str
    """Where the data is, for the start-up line (never a password)."""

    def migrate(self, target: int | None = None) -> int:
        """Create or upgrade the schema (to ``target``, default the latest); return its
        version.

        Raises:
            SchemaError: the database holds a newer schema than this collector knows.
        """
        ...

    def write_batch(self, source: Source, rows: Sequence[Row]) -> list[bool]:
        """Store a batch's valid rows in one transaction; for each row, True when it was
        stored, False when it was already there (or a newer summary was)."""
        ...

    def write_spans(self, spans: Sequence[SpanRow]) -> int:
        """Store OTLP spans in one transaction; return how many were new."""
        ...

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment with its runs and trace counts, last seen first."""
        ...

    def traces(self, query: TraceQuery) -> TracePage:
        """One page of traces matching ``query``."""
        ...

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """A trace with its observations and OTLP spans, or None when nothing has that id."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# --- schema -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One schema version: the statements that take the schema from the previous version.

    Types are written as ``{json}``, ``{ts}``, ``{bool}``, ``{bigint}`` and ``{real}``; each
    store fills them in with its own types.
    """

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "batches: experiments, runs, traces, observations, summaries",
        (
            """CREATE TABLE experiments (
                name TEXT PRIMARY KEY,
                first_seen {ts} NOT NULL,
                last_seen {ts} NOT NULL
            )""",
            """CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                experiment TEXT,
                host TEXT,
                sender TEXT,
                first_seen {ts} NOT NULL,
                last_seen {ts} NOT NULL
            )""",
            "CREATE INDEX runs_experiment ON runs (experiment)",
            """CREATE TABLE traces (
                trace_id TEXT PRIMARY KEY,
                experiment TEXT,
                run_id TEXT,
                host TEXT,
                case_id TEXT NOT NULL,
                iteration INTEGER NOT NULL,
                persona TEXT,
                status TEXT NOT NULL,
                success {bool} NOT NULL,
                started_at {ts} NOT NULL,
                completed_at {ts} NOT NULL,
                duration_ms {real} NOT NULL,
                data {json} NOT NULL,
                received_at {ts} NOT NULL
            )""",
            "CREATE INDEX traces_started ON traces (started_at, trace_id)",
            "CREATE INDEX traces_experiment ON traces (experiment, started_at, trace_id)",
            "CREATE INDEX traces_run ON traces (run_id)",
            # No foreign key to traces: an observation may arrive before its trace.
            """CREATE TABLE observations (
                trace_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                type TEXT NOT NULL,
                name TEXT NOT NULL,
                data {json} NOT NULL,
                received_at {ts} NOT NULL,
                PRIMARY KEY (trace_id, position)
            )""",
            """CREATE TABLE summaries (
                run_id TEXT PRIMARY KEY,
                experiment TEXT NOT NULL,
                status TEXT NOT NULL,
                rank TEXT NOT NULL,
                data {json} NOT NULL,
                received_at {ts} NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "OTLP spans",
        (
            # No foreign key on parent_span_id: children may arrive before their parents.
            """CREATE TABLE otlp_spans (
                trace_id TEXT NOT NULL,
                span_id TEXT NOT NULL,
                parent_span_id TEXT,
                name TEXT NOT NULL,
                kind TEXT NOT NULL,
                start_time_unix_nano {bigint} NOT NULL,
                end_time_unix_nano {bigint} NOT NULL,
                status_code INTEGER NOT NULL,
                conversation_id TEXT,
                fluxloop_trace_id TEXT,
                resource {json} NOT NULL,
                scope {json} NOT NULL,
                attributes {json} NOT NULL,
                detail {json} NOT NULL,
                received_at {ts} NOT NULL,
                PRIMARY KEY (trace_id, span_id)
            )""",
            "CREATE INDEX otlp_spans_conversation ON otlp_spans (conversation_id)",
            "CREATE INDEX otlp_spans_fluxloop ON otlp_spans (fluxloop_trace_id)",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema version this collector writes."""


# --- the shared SQL store ---------------------------------------------------------------------


def utcnow() -> datetime:
    """Now, in UTC (the collector's clock: first_seen, last_seen, received_at)."""
    return datetime.now(timezone.utc)


class Connection(Protocol):
    """The DB-API connection methods the stores use (sqlite3 and psycopg both have them)."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...


def _load(value: Any) -> Any:
    # SQLite returns JSON columns as text; psycopg has already parsed PostgreSQL's json type.
    return json.loads(value) if isinstance(value, str) else value


class SQLStore:
    """The queries of both stores. A subclass provides :meth:`_writing` and :meth:`_reading`
    (a connection inside a transaction) and the dialect's details below."""

    kind = "sql"
    description = ""
    placeholder = "?"
    types: ClassVar[Mapping[str, str]] = {}
    _lock_schema = ""  # a statement that serialises migrations across processes

    # Conversions between Python values and the dialect's columns.
    def _ts(self, moment: datetime) -> Any:
        return moment

    def _ts_out(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value

    def _text(self, value: str | None) -> str | None:
        return value

    def _json_param(self) -> str:
        return self.placeholder

    def _writing(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _reading(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""

    # -- SQL helpers --
    def _sql(self, sql: str) -> str:
        if self.placeholder == "?":
            return sql
        return sql.replace("?", self.placeholder)

    def _iso(self, value: Any) -> str:
        return self._ts_out(value).astimezone(timezone.utc).isoformat()

    # -- schema --
    def migrate(self, target: int | None = None) -> int:
        """Create or upgrade the schema (each migration in its own transaction) to ``target``
        (default: the latest); return its version."""
        with self._writing() as conn:
            if self._lock_schema:
                conn.execute(self._lock_schema)
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS schema_version (
                    version INTEGER PRIMARY KEY,
                    description TEXT NOT NULL,
                    applied_at {self.types["ts"]} NOT NULL
                )"""
            )
            found = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        current = int(found or 0)
        if current > SCHEMA_VERSION:
            raise SchemaError(
                f"the database's schema is version {current}, newer than this collector's "
                f"({SCHEMA_VERSION}): upgrade pytest-fluxloop, or use another --db"
            )
        for migration in MIGRATIONS:
            if migration.version <= current or (target is not None and migration.version > target):
                continue
            self.apply(migration)
            current = migration.version
        return current

    def apply(self, migration: Migration) -> bool:
        """Apply one migration in a transaction unless it is there already (another process
        may have applied it meanwhile); True when this call applied it."""
        with self._writing() as conn:
            if self._lock_schema:
                conn.execute(self._lock_schema)
            done = conn.execute(
                self._sql("SELECT 1 FROM schema_version WHERE version = ?"), (migration.version,)
            ).fetchone()
            if done:
                return False
            for statement in migration.statements:
                conn.execute(statement.format(**self.types))
            conn.execute(
                self._sql(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)"
                ),
                (migration.version, migration.description, self._ts(utcnow())),
            )
        return True

    def schema_version(self) -> int:
        """The version recorded in ``schema_version`` (0 for an empty database)."""
        with self._reading() as conn:
            return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)

    # -- writes --
    def write_batch(self, source: Source, rows: Sequence[Row]) -> list[bool]:
        """Store a batch's rows in one transaction; True for each row stored."""
        now = utcnow()
        stored = [False] * len(rows)
        # One lock order for every writer (PostgreSQL): overlapping batches sent at once then
        # wait for each other instead of deadlocking.
        order = sorted(range(len(rows)), key=lambda i: _row_key(rows[i]))
        j = self._json_param()
        with self._writing() as conn:
            for i in order:
                row = rows[i]
                if isinstance(row, TraceRow):
                    stored[i] = self._insert_trace(conn, source, row, now)
                elif isinstance(row, ObservationRow):
                    stored[i] = self._insert_observation(conn, row, now)
                else:
                    cur = conn.execute(
                        self._sql(
                            "INSERT INTO summaries (run_id, experiment, status, rank, data, "
                            f"received_at) VALUES (?, ?, ?, ?, {j}, ?) "
                            "ON CONFLICT (run_id) DO UPDATE SET experiment = excluded.experiment,"
                            " status = excluded.status, rank = excluded.rank, "
                            "data = excluded.data, received_at = excluded.received_at "
                            "WHERE excluded.rank > summaries.rank"
                        ),
                        (
                            row.run_id,
                            self._text(row.experiment),
                            row.status,
                            row.rank,
                            row.data,
                            self._ts(now),
                        ),
                    )
                    stored[i] = cur.rowcount == 1
            self._seen(conn, source, rows, now)
        return stored

    def _insert_trace(self, conn: Connection, source: Source, row: TraceRow, now: datetime) -> bool:
        j = self._json_param()
        cur = conn.execute(
            self._sql(
                "INSERT INTO traces (trace_id, experiment, run_id, host, case_id, iteration, "
                "persona, status, success, started_at, completed_at, duration_ms, data, "
                f"received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {j}, ?) "
                "ON CONFLICT (trace_id) DO NOTHING"
            ),
            (
                row.trace_id,
                self._text(source.experiment),
                self._text(source.run_id),
                self._text(source.host),
                self._text(row.case_id),
                row.iteration,
                self._text(row.persona),
                row.status,
                row.success,
                self._ts(row.started_at),
                self._ts(row.completed_at),
                row.duration_ms,
                row.data,
                self._ts(now),
            ),
        )
        for observation in row.observations:
            self._insert_observation(conn, observation, now)
        return bool(cur.rowcount == 1)

    def _insert_observation(self, conn: Connection, row: ObservationRow, now: datetime) -> bool:
        cur = conn.execute(
            self._sql(
                "INSERT INTO observations (trace_id, position, type, name, data, received_at) "
                f"VALUES (?, ?, ?, ?, {self._json_param()}, ?) "
                "ON CONFLICT (trace_id, position) DO NOTHING"
            ),
            (
                row.trace_id,
                row.position,
                self._text(row.type),
                self._text(row.name),
                row.data,
                self._ts(now),
            ),
        )
        return bool(cur.rowcount == 1)

    def _seen(self, conn: Connection, source: Source, rows: Sequence[Row], now: datetime) -> None:
        """Record the experiments and runs a batch names (its source, its summaries)."""
        runs: dict[str, str | None] = {}
        experiments: set[str] = set()
        if source.experiment:
            experiments.add(source.experiment)
        if source.run_id:
            runs[source.run_id] = source.experiment
        for row in rows:
            if isinstance(row, SummaryRow):
                experiments.add(row.experiment)
                runs.setdefault(row.run_id, row.experiment)
        for name in sorted(experiments):
            conn.execute(
                self._sql(
                    "INSERT INTO experiments (name, first_seen, last_seen) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen"
                ),
                (self._text(name), self._ts(now), self._ts(now)),
            )
        for run_id, experiment in sorted(runs.items()):
            conn.execute(
                self._sql(
                    "INSERT INTO runs (run_id, experiment, host, sender, first_seen, last_seen) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
                    "last_seen = excluded.last_seen, "
                    "experiment = COALESCE(runs.experiment, excluded.experiment), "
                    "host = COALESCE(runs.host, excluded.host), "
                    "sender = COALESCE(excluded.sender, runs.sender)"
                ),
                (
                    self._text(run_id),
                    self._text(experiment),
                    self._text(source.host),
                    self._text(source.sender),
                    self._ts(now),
                    self._ts(now),
                ),
            )

    def write_spans(self, spans: Sequence[SpanRow]) -> int:
        """Store OTLP spans in one transaction; return how many were new."""
        now = utcnow()
        j = self._json_param()
        new = 0
        with self._writing() as conn:
            for span in sorted(spans, key=lambda s: (s.trace_id, s.span_id)):
                cur = conn.execute(
                    self._sql(
                        "INSERT INTO otlp_spans (trace_id, span_id, parent_span_id, name, kind, "
                        "start_time_unix_nano, end_time_unix_nano, status_code, "
                        "conversation_id, fluxloop_trace_id, resource, scope, attributes, "
                        f"detail, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {j}, {j}, "
                        f"{j}, {j}, ?) ON CONFLICT (trace_id, span_id) DO NOTHING"
                    ),
                    (
                        span.trace_id,
                        span.span_id,
                        span.parent_span_id,
                        self._text(span.name),
                        span.kind,
                        span.start_ns,
                        span.end_ns,
                        span.status_code,
                        self._text(span.conversation_id),
                        self._text(span.fluxloop_trace_id),
                        span.resource,
                        span.scope,
                        span.attributes,
                        span.detail,
                        self._ts(now),
                    ),
                )
                new += cur.rowcount == 1
        return new

    # -- reads --
    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment, last seen first, with its runs (last seen first) and counts."""
        with self._reading() as conn:
            names = conn.execute(
                "SELECT e.name, e.first_seen, e.last_seen, "
                "(SELECT COUNT(*) FROM traces t WHERE t.experiment = e.name) "
                "FROM experiments e ORDER BY e.last_seen DESC, e.name"
            ).fetchall()
            runs = conn.execute(
                "SELECT r.run_id, r.experiment, r.host, r.sender, r.first_seen, r.last_seen, "
                "(SELECT COUNT(*) FROM traces t WHERE t.run_id = r.run_id), s.status "
                "FROM runs r LEFT JOIN summaries s ON s.run_id = r.run_id "
                "ORDER BY r.last_seen DESC, r.run_id"
            ).fetchall()
        by_experiment: dict[str, list[dict[str, Any]]] = {}
        for run_id, experiment, host, sender, first, last, count, status in runs:
            by_experiment.setdefault(experiment, []).append(
                {
                    "run_id": run_id,
                    "host": host,
                    "sender": sender,
                    "status": status,
                    "trace_count": int(count),
                    "first_seen": self._iso(first),
                    "last_seen": self._iso(last),
                }
            )
        return [
            {
                "name": name,
                "trace_count": int(count),
                "first_seen": self._iso(first),
                "last_seen": self._iso(last),
                "runs": by_experiment.get(name, []),
            }
            for name, first, last, count in names
        ]

    def traces(self, query: TraceQuery) -> TracePage:
        """One page of traces, newest ``started_at`` first (ties by trace id, descending)."""
        where: list[str] = []
        params: list[Any] = []
        for column in ("experiment", "run_id", "persona", "status"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(self._text(value))
        if query.since is not None:
            where.append("started_at >= ?")
            params.append(self._ts(query.since))
        if query.until is not None:
            where.append("started_at < ?")
            params.append(self._ts(query.until))
        if query.after is not None:
            started, trace_id = query.after
            where.append("(started_at < ? OR (started_at = ? AND trace_id < ?))")
            params.extend([self._ts(started), self._ts(started), trace_id])
        sql = (
            "SELECT trace_id, experiment, run_id, host, case_id, iteration, persona, status, "
            "success, started_at, completed_at, duration_ms, received_at FROM traces"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY started_at DESC, trace_id DESC LIMIT ?"
        )
        # One row more than the page: it says whether there is a next page.
        params.append(query.limit + 1)
        with self._reading() as conn:
            found = conn.execute(self._sql(sql), params).fetchall()
        page = TracePage()
        for row in found[: query.limit]:
            (tid, experiment, run_id, host, case_id, iteration, persona, status, success) = row[:9]
            page.traces.append(
                {
                    "trace_id": tid,
                    "experiment": experiment,
                    "run_id": run_id,
                    "host": host,
                    "case_id": case_id,
                    "iteration": iteration,
                    "persona": persona,
                    "status": status,
                    "success": bool(success),
                    "started_at": self._iso(row[9]),
                    "completed_at": self._iso(row[10]),
                    "duration_ms": row[11],
                    "received_at": self._iso(row[12]),
                }
            )
        if len(found) > query.limit:
            last = found[query.limit - 1]
            page.next_cursor = encode_cursor(self._ts_out(last[9]), last[0])
        return page

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """A trace with its observations (in order) and the OTLP spans linked to it: spans of
        the OTLP trace with this id, and every span of an OTLP trace in which a span carries
        this id as ``gen_ai.conversation.id`` or ``fluxloop.trace_id``."""
        with self._reading() as conn:
            row = conn.execute(
                self._sql(
                    "SELECT data, experiment, run_id, host, received_at FROM traces "
                    "WHERE trace_id = ?"
                ),
                (trace_id,),
            ).fetchone()
            observations = conn.execute(
                self._sql("SELECT data FROM observations WHERE trace_id = ? ORDER BY position"),
                (trace_id,),
            ).fetchall()
            spans = conn.execute(
                self._sql(
                    "SELECT trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano,"
                    " end_time_unix_nano, status_code, resource, scope, attributes, detail "
                    "FROM otlp_spans WHERE trace_id = ? OR trace_id IN (SELECT trace_id FROM "
                    "otlp_spans WHERE conversation_id = ? OR fluxloop_trace_id = ?) "
                    "ORDER BY start_time_unix_nano, trace_id, span_id"
                ),
                (trace_id.lower(), self._text(trace_id), self._text(trace_id)),
            ).fetchall()
        if row is None and not observations and not spans:
            return None
        return {
            "trace_id": trace_id,
            "experiment": row[1] if row else None,
            "run_id": row[2] if row else None,
            "host": row[3] if row else None,
            "received_at": self._iso(row[4]) if row else None,
            "trace": _load(row[0]) if row else None,
            "observations": [_load(o[0]) for o in observations],
            "spans": [_span_json(s) for s in spans],
        }


def _row_key(row: Row) -> tuple[int, str, int]:
    if isinstance(row, TraceRow):
        return (0, row.trace_id, 0)
    if isinstance(row, ObservationRow):
        return (1, row.trace_id, row.position)
    return (2, row.run_id, 0)


def _span_json(row: Sequence[Any]) -> dict[str, Any]:
    (trace_id, span_id, parent, name, kind, start, end, status, resource, scope, attrs) = row[:11]
    detail = _load(row[11])
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": kind,
        # Strings, as in OTLP JSON: nanosecond times do not fit a JavaScript number.
        "start_time_unix_nano": str(start),
        "end_time_unix_nano": str(end),
        "start_time": _ns_iso(int(start)),
        "end_time": _ns_iso(int(end)),
        "status": {"code": int(status), "message": detail.get("status_message", "")},
        "attributes": _load(attrs),
        "resource": _load(resource),
        "scope": _load(scope),
        "events": detail.get("events", []),
        "links": detail.get("links", []),
        "trace_state": detail.get("trace_state", ""),
        "flags": detail.get("flags", 0),
    }


def _ns_iso(ns: int) -> str | None:
    if ns <= 0:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    try:
        moment = datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.replace(microsecond=rest // 1000).isoformat()


# --- opening ----------------------------------------------------------------------------------


def open_store(url: str) -> SQLStore:
    """The store a ``--db`` value names, schema not yet migrated: ``postgresql://...`` (or
    ``postgres://``), ``sqlite:///relative/path``, ``sqlite:////absolute/path`` or a plain
    file path (SQLite).

    Raises:
        StoreError: the URL names no store this collector has, or it cannot be opened.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from .store_postgres import PostgresStore

        return PostgresStore(url)
    if "://" in url and not url.startswith("sqlite://"):
        scheme = url.split("://", 1)[0]
        raise StoreError(
            f"--db: {scheme}:// is not a store this collector has; use sqlite:///path or "
            "postgresql://user@host/database"
        )
    from .store_sqlite import SQLiteStore

    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url
    if url.startswith("sqlite://") and not url.startswith("sqlite:///"):
        raise StoreError(f"--db {url!r}: write sqlite:///relative/path or sqlite:////abs/path")
    return SQLiteStore(path)
