"""Fixtures of the collector tests: the store (SQLite, and PostgreSQL where a server can be
started here) and a collector serving it, shared by a module's quick tests.

Tests that share a collector use their own experiment names and trace ids, so they do not see
each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.collector_server import (
    Collector,
    PostgresServer,
    postgres_unavailable,
    start_collector,
)

STORES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (one per xdist worker); skipped where it cannot
    run (the reason says why)."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def db_url(kind: str, folder: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of ``kind``."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'collector.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store, once SQLite and once PostgreSQL."""
    return db_url(request.param, tmp_path, request)


@pytest.fixture(scope="module", params=STORES)
def collector(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Collector]:
    """A collector (token required) shared by a module's tests, on each store."""
    folder = tmp_path_factory.mktemp(f"collector-{request.param}")
    server = start_collector(folder, db_url(request.param, folder, request))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def uid() -> str:
    """A short unique prefix for this test's ids and names."""
    return uuid.uuid4().hex[:10]
