"""``fluxloop report DIR``: the experiment as one self-contained HTML page.

The work is :func:`pytest_fluxloop.report.html.write_report` (imported inside the command:
importing the CLI stays cheap).
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["report"]


@click.command("report")
@click.argument("experiment_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The HTML file to write (relative to the current directory).  "
    "[default: EXPERIMENT_DIR/report.html]",
)
@click.option(
    "--baseline",
    "-b",
    "baseline",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="An earlier experiment folder: add a comparison with it (as `fluxloop compare`).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --output even when it is not an earlier report (never an experiment's "
    "own files).",
)
@click.option(
    "--max-size",
    "max_size",
    type=click.IntRange(min=100_000),
    default=None,
    metavar="BYTES",
    help="Size budget of the page; cases past it are listed in trace_summary.jsonl only.  "
    "[default: 8000000]",
)
def report(
    experiment_dir: Path,
    output: Path | None,
    baseline: Path | None,
    overwrite: bool,
    max_size: int | None,
) -> None:
    """Write EXPERIMENT_DIR's report: one HTML file that opens offline, from disk.

    It shows the run, its pass rate and pass^k, per-persona and per-input tables, latency and
    token charts, and each failing case with its transcript and observation timeline. An
    earlier report at the same path is replaced.

    Exit codes: 0 written, 4 a usage error (not an experiment folder, an output that would
    replace another file).
    """
    from ..report.html import DEFAULT_MAX_BYTES, write_report

    path = write_report(
        experiment_dir,
        output,
        baseline=baseline,
        max_bytes=max_size or DEFAULT_MAX_BYTES,
        overwrite=overwrite,
    )
    size = path.stat().st_size
    click.echo(
        f"[INFO] Report: {path} ({size / 1_000_000:.1f} MB)"
        if size >= 100_000
        else f"[INFO] Report: {path} ({size / 1000:.0f} kB)"
    )
