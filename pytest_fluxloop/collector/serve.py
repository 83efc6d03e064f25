"""Run the collector: check the options, open and migrate the store, serve with Uvicorn.

Used by ``fluxloop collector serve`` and ``python -m pytest_fluxloop.collector`` (same
options). The token is read from the environment variable ``--token-env`` names, never from
the command line (where ``ps`` would show it). Without a token the collector only listens on
loopback, and says that it is open.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .errors import CollectorError

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_TOKEN_ENV",
    "EXTRA_HINT",
    "ServeOptions",
    "main",
    "prepare",
    "run",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DB = "sqlite:///fluxloop-collector.db"
DEFAULT_TOKEN_ENV = "FLUXLOOP_COLLECTOR_TOKEN"
DEFAULT_MAX_BODY_MB = 10.0
EXTRA_HINT = "pip install 'pytest-fluxloop[collector]'"
EXIT_CONFIG = 4  # the CLI's code for a usage or configuration error


@dataclass(frozen=True)
class ServeOptions:
    """What ``fluxloop collector serve`` was asked."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: str = DEFAULT_DB
    token_env: str = DEFAULT_TOKEN_ENV
    max_body_mb: float = DEFAULT_MAX_BODY_MB
    log_level: str = "info"


@dataclass
class Prepared:
    """A collector ready to serve: the app over a migrated store, and what to say at start."""

    app: Any
    store: Any
    notes: list[str]


def check_extras() -> None:
    """Raise :class:`CollectorError` with the install command when the extra is missing."""
    missing = []
    for module in ("starlette", "uvicorn", "google.protobuf", "opentelemetry.proto"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module.split(".")[-1] if module.startswith("opentelemetry") else module)
    if missing:
        raise CollectorError(
            f"the collector needs {', '.join(missing)}, which are not installed: {EXTRA_HINT}"
        )


def prepare(options: ServeOptions, environ: Mapping[str, str] | None = None) -> Prepared:
    """Check the options, open and migrate the store, build the app.

    Raises:
        CollectorError: a missing extra, no token on a public host, a bad ``--db`` or a store
            that cannot be opened or migrated.
    """
    from .auth import check_listen

    env = os.environ if environ is None else environ
    if not 0 <= options.port <= 65535:
        raise CollectorError(f"--port {options.port} is not a TCP port")
    if not options.max_body_mb > 0:
        raise CollectorError("--max-body-mb must be more than 0")
    token = (env.get(options.token_env) or "").strip() or None
    # Before anything is imported or opened: a refusal is immediate and touches nothing.
    check_listen(options.host, token, options.token_env)
    check_extras()
    from .app import create_app
    from .store import open_store

    store = open_store(options.db)
    try:
        version = store.migrate()
    except BaseException:
        store.close()
        raise
    max_bytes = int(options.max_body_mb * 1024 * 1024)
    app = create_app(store, token, max_body_bytes=max_bytes, schema_version=version)
    notes = [f"store: {store.description} (schema version {version})"]
    if token:
        notes.append(f"token: required on every route but /health (from ${options.token_env})")
    else:
        notes.append(
            f"no token (${options.token_env} is not set): the collector is OPEN to anyone on "
            "this machine; set the variable to require one"
        )
    notes.append(f"request bodies up to {max_bytes} bytes (--max-body-mb)")
    return Prepared(app=app, store=store, notes=notes)


def run(options: ServeOptions, out: TextIO | None = None) -> int:
    """Serve until interrupted (SIGINT / SIGTERM); the exit status.

    Raises:
        CollectorError: the collector cannot start (see :func:`prepare`).
    """
    stream = sys.stderr if out is None else out
    prepared = prepare(options)
    import uvicorn

    config = uvicorn.Config(
        prepared.app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        # The access log prints method, path and status; never headers (the token).
        access_log=True,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    for note in prepared.notes:
        print(f"fluxloop collector: {note}", file=stream, flush=True)
    try:
        server.run()
    finally:
        # A failed bind never starts the lifespan, which would have closed the store.
        if not server.started:
            prepared.store.close()
    return 0 if server.started else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_fluxloop.collector",
        description="Serve the FluxLoop collector (same as `fluxloop collector serve`).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 8000)")
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        help="sqlite:///path (default fluxloop-collector.db here) or postgresql://...",
    )
    parser.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        help="environment variable holding the bearer token (default FLUXLOOP_COLLECTOR_TOKEN)",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=DEFAULT_MAX_BODY_MB,
        help="largest request body, before and after gzip (default 10)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pytest_fluxloop.collector``: serve; 4 when the collector cannot start."""
    args = _parser().parse_args(argv)
    options = ServeOptions(
        host=args.host,
        port=args.port,
        db=args.db,
        token_env=args.token_env,
        max_body_mb=args.max_body_mb,
        log_level=args.log_level,
    )
    try:
        return run(options)
    except CollectorError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
