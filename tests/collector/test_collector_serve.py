"""Starting the collector: the token rule, the default store, migrations, and the errors of a
collector that cannot start (each test runs the real command in a subprocess)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from support.collector_server import (
    Collector,
    free_port,
    make_trace,
    run_collector,
    start_collector,
)

from pytest_fluxloop.collector.batches import prepare_batch
from pytest_fluxloop.collector.store import MIGRATIONS, SCHEMA_VERSION, Source, TraceRow, open_store
from pytest_fluxloop.shipping.wire import make_batch, trace_items

pytestmark = pytest.mark.slow


def _stopped_cleanly(collector: Collector) -> None:
    # Uvicorn shuts down gracefully on SIGTERM, then re-raises it: the status is -SIGTERM.
    assert collector.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in collector.log()


def test_it_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "collector.example"):
        proc = run_collector(tmp_path, ["--host", host, "--port", str(free_port())])
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert f"refusing to listen on {host} without a token" in proc.stderr
        assert "FLUXLOOP_COLLECTOR_TOKEN" in proc.stderr
    # An empty variable is no token either.
    proc = run_collector(
        tmp_path,
        ["--host", "0.0.0.0", "--port", str(free_port()), "--token-env", "TEAM_TOKEN"],
        env={"TEAM_TOKEN": "  ", "FLUXLOOP_COLLECTOR_TOKEN": "ignored: another variable"},
    )
    assert proc.returncode == 4
    assert "TEAM_TOKEN" in proc.stderr
    assert not (tmp_path / "fluxloop-collector.db").exists()  # refused before opening a store


def test_with_a_token_it_listens_on_every_interface(tmp_path: Path) -> None:
    collector = start_collector(
        tmp_path,
        token=None,
        host="0.0.0.0",
        args=["--token-env", "TEAM_TOKEN"],
        env={"TEAM_TOKEN": "team-secret"},
        launcher="cli",
    )
    try:
        assert collector.get("/api/traces", token="team-secret").status == 200
        assert collector.get("/api/traces", token=None).status == 401
        assert "team-secret" not in collector.log()
        assert "from $TEAM_TOKEN" in collector.log()
    finally:
        _stopped_cleanly(collector)


def test_without_a_token_on_loopback_it_is_open_and_says_so(tmp_path: Path) -> None:
    collector = start_collector(tmp_path, db="", token=None, launcher="cli")
    try:
        assert "OPEN to anyone on this machine" in collector.log()
        batch = make_batch(trace_items(make_trace("open-1")), {"experiment": "open"})
        assert collector.post_batch(batch).status == 200
        assert collector.get("/api/traces/open-1").status == 200
    finally:
        _stopped_cleanly(collector)
    # The default store: a SQLite file in the working folder, in WAL mode, checkpointed at exit.
    db = tmp_path / "fluxloop-collector.db"
    assert db.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT trace_id FROM traces").fetchall() == [("open-1",)]


def _execute(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run one statement on the store's database, outside the collector."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


def test_an_older_schema_is_migrated_and_its_data_kept(tmp_path: Path, store_url: str) -> None:
    old = open_store(store_url)
    assert old.migrate(target=1) == 1
    source = Source("kept", "run-kept", "old-host", None, datetime.now(timezone.utc))
    [(_, _, row)] = prepare_batch(make_batch(trace_items(make_trace("kept-1")), {}))[1]
    assert isinstance(row, TraceRow)
    assert old.write_batch(source, [row]) == [True]
    old.close()
    assert _execute(store_url, "SELECT MAX(version) FROM schema_version") == [(1,)]

    collector = start_collector(tmp_path, store_url)
    try:
        assert collector.get("/health").json()["schema_version"] == SCHEMA_VERSION
        experiment = collector.experiment("kept")
        assert experiment is not None
        assert experiment["trace_count"] == 1
        assert collector.get("/api/traces/kept-1").json()["trace"]["trace_id"] == "kept-1"
    finally:
        collector.stop()
    rows = _execute(store_url, "SELECT version, description FROM schema_version ORDER BY version")
    assert rows == [(m.version, m.description) for m in MIGRATIONS]


def test_a_newer_schema_is_refused(tmp_path: Path, store_url: str) -> None:
    store = open_store(store_url)
    store.migrate()
    store.close()
    _execute(
        store_url,
        "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
        (SCHEMA_VERSION + 1, "from the future", datetime.now(timezone.utc).isoformat()),
    )
    proc = run_collector(tmp_path, ["--port", str(free_port()), "--db", store_url])
    assert proc.returncode == 4
    assert f"version {SCHEMA_VERSION + 1}, newer than this collector's" in proc.stderr


def test_stores_that_cannot_be_opened(tmp_path: Path) -> None:
    cases = {
        "mysql://root@127.0.0.1/x": "mysql:// is not a store",
        f"sqlite:///{tmp_path}/missing/folder/c.db": "does not exist",
        "sqlite:///:memory:": "needs a SQLite file",
        f"postgresql://me:hunter2@127.0.0.1:{free_port()}/none": "cannot connect to PostgreSQL",
    }
    for url, reason in cases.items():
        proc = run_collector(tmp_path, ["--port", str(free_port()), "--db", url])
        assert proc.returncode == 4, (url, proc.stderr)
        assert reason in proc.stderr, (url, proc.stderr)
        assert "hunter2" not in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr


def test_a_missing_extra_names_the_install_command(tmp_path: Path) -> None:
    # What a user without the extra sees: uvicorn cannot be imported.
    code = (
        "import sys; sys.modules['uvicorn'] = None; "
        "from pytest_fluxloop.cli.collector_serve_cmd import serve; serve(prog_name='serve')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 4
    assert "pip install 'pytest-fluxloop[collector]'" in proc.stderr
    assert "uvicorn" in proc.stderr
