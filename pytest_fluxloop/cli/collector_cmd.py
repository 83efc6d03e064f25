"""``fluxloop collector ...``: the FluxLoop collector from the command line.

``fluxloop collector push DIR`` sends the batches a run (or a ``FluxLoopClient``) spooled
because the collector was down, slow or refusing: the work is
:func:`pytest_fluxloop.shipping.push.push_spool`, imported inside the command so importing
the CLI stays cheap.

:data:`collector_group` is the ``collector`` group; more commands join it with
``collector_group.add_command(command)`` (or :func:`add_command`), e.g. ``serve``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

__all__ = ["add_command", "collector_group", "push", "recorded_collector"]

_TOKEN_ENV = "FLUXLOOP_COLLECTOR_TOKEN"  # shipping.target.TOKEN_ENV, not imported: cheap CLI


@click.group("collector")
def collector_group() -> None:
    """Run a FluxLoop collector (serve), or send spooled traces to one (push)."""


def add_command(command: click.Command) -> None:
    """Add ``command`` (``serve`` ...) to the ``fluxloop collector`` group."""
    collector_group.add_command(command)


def recorded_collector(folder: Path) -> tuple[str | None, bool]:
    """The collector URL a results folder recorded, and whether its run allowed plain
    ``http://`` to another host: ``summary.json`` ``collector.url``, else the config
    snapshot's ``project.collector_url`` (``config.yaml``); (None, False) when neither."""
    summary = _read_json(folder / "summary.json")
    collector = summary.get("collector") if isinstance(summary, dict) else None
    project: dict[str, Any] = {}
    config = folder / "config.yaml"
    if config.is_file():
        import yaml  # only here: most commands never read a snapshot

        try:
            snapshot = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            snapshot = None
        if isinstance(snapshot, dict) and isinstance(snapshot.get("project"), dict):
            project = snapshot["project"]
    allow = project.get("collector_allow_insecure_http") is True
    if isinstance(collector, dict) and isinstance(collector.get("url"), str):
        return collector["url"], allow
    url = project.get("collector_url")
    return (url, allow) if isinstance(url, str) and url else (None, False)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@collector_group.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--url",
    metavar="URL",
    help="The collector (http(s)://host:port). [default: the one the run sent to, from "
    "DIR's summary.json or config.yaml]",
)
@click.option(
    "--token-env",
    metavar="NAME",
    default=_TOKEN_ENV,
    show_default=True,
    help="The environment variable holding the collector's token (sent as a bearer token).",
)
@click.option(
    "--allow-insecure-http",
    is_flag=True,
    help="Send over plain http:// to a host that is not this machine (the token and traces "
    "cross the network unencrypted).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the collector on each request.",
)
def push(
    folder: Path, url: str | None, token_env: str, allow_insecure_http: bool, timeout: float
) -> None:
    """Send the batches spooled in DIR to the collector.

    DIR is an experiment results folder (its collector_spool/ holds what the collector did
    not take during the run), a FluxLoopClient's output_dir, or a collector_spool folder.
    Each batch is deleted once the collector answered it; the rest stay for the next push.
    Pushing twice is harmless: the collector stores each trace once. Exit code 1 when
    batches are left.
    """
    from ..shipping.push import push_spool
    from ..shipping.sender import SenderOptions
    from ..shipping.spool import spool_dir, spooled_files
    from ..shipping.target import collector_target

    spool = spool_dir(folder)
    if not spooled_files(folder):
        click.echo(f"[INFO] Nothing to push: no spooled batches in {spool}")
        return
    url_setting = "--url"
    allow = allow_insecure_http
    if url is None:
        url, recorded_allow = recorded_collector(folder)
        if url is None:
            raise click.UsageError(
                f"{folder} does not record which collector its run sent to (no collector.url "
                "in summary.json, no project.collector_url in config.yaml): give --url URL"
            )
        url_setting = f"the collector URL recorded in {folder} ({url})"
        allow = allow or recorded_allow
    token = (os.environ.get(token_env) or "").strip()
    target = collector_target(
        url,
        token=token,  # "" when unset: never fall back to another variable than the one named
        allow_insecure_http=allow,
        url_setting=url_setting,
        token_setting=token_env,
        allow_setting="--allow-insecure-http",
    )
    if not token:
        click.echo(f"[WARN] {token_env} is not set: sending without a token")
    files = spooled_files(folder)
    click.echo(f"[INFO] Pushing {len(files)} spooled batch(es) from {spool} to {target.url}")
    result = push_spool(folder, target, SenderOptions(timeout_seconds=timeout))
    for error in result.errors:
        click.echo(f"[WARN] {error}")
    if result.rejected_examples:
        click.echo("[WARN] Rejected: " + "; ".join(result.rejected_examples))
    click.echo(
        f"[INFO] Sent {result.sent} batch(es), {result.items_sent} items: {result.stored} "
        f"stored, {result.duplicate} duplicate, {result.rejected} rejected; "
        f"{result.left} batch(es) left in {spool}"
    )
    if result.left:
        click.echo(f"[WARN] Run `fluxloop collector push {folder}` again once the collector is up")
        click.get_current_context().exit(1)
    if spool.is_dir() and not any(spool.iterdir()):
        spool.rmdir()  # everything sent: no empty folder left behind
