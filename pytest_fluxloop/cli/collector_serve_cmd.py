"""``fluxloop collector serve``: run the FluxLoop collector service.

The work is :func:`pytest_fluxloop.collector.serve.run`, imported inside the command (it needs
the optional extra ``collector``: Starlette, Uvicorn, the OpenTelemetry protocol classes), so
importing the CLI stays cheap and a missing extra is one line naming the install command.
"""

from __future__ import annotations

import click

from .run import EXIT_USAGE_ERROR

__all__ = ["serve"]


class _CannotServe(click.ClickException):
    """The collector cannot start as asked: ``Error: <message>``, exit code 4."""

    exit_code = EXIT_USAGE_ERROR


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option(
    "--db",
    "db",
    default="sqlite:///fluxloop-collector.db",
    show_default=True,
    metavar="URL",
    help="sqlite:///path (a file here by default) or postgresql://user@host/database.",
)
@click.option(
    "--token-env",
    default="FLUXLOOP_COLLECTOR_TOKEN",
    show_default=True,
    metavar="NAME",
    help="Environment variable holding the bearer token every route but /health requires "
    "(never pass the token itself on the command line).",
)
@click.option(
    "--max-body-mb",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Largest request body in MiB, before and after gzip (larger: 413).",
)
def serve(host: str, port: int, db: str, token_env: str, max_body_mb: float) -> None:
    """Serve the FluxLoop collector: batches on /api/v1/batches, OTLP on /v1/traces.

    Without a token it listens on loopback only, open to this machine; to listen on another
    interface set the token variable first.
    """
    # Imported here: the collector's own modules load Starlette and friends only once the
    # options are checked, and `fluxloop --help` never pays for them.
    from ..collector.errors import CollectorError
    from ..collector.serve import EXTRA_HINT, ServeOptions, run

    options = ServeOptions(
        host=host, port=port, db=db, token_env=token_env, max_body_mb=max_body_mb
    )
    try:
        code = run(options)
    except CollectorError as exc:
        raise _CannotServe(str(exc)) from None
    except ImportError as exc:
        raise _CannotServe(f"{exc}: {EXTRA_HINT}") from None
    if code:
        raise SystemExit(code)
