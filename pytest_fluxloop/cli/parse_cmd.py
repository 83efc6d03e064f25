"""``fluxloop parse experiment DIR``: readable files per trace of an experiment.

The work is :func:`pytest_fluxloop.report.parse.parse_experiment` (imported inside the
command: importing the CLI stays cheap).
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["parse_group"]

#: Per-trace files listed one by one up to this many; beyond, the first few and a count.
_LISTED = 20


@click.group("parse")
def parse_group() -> None:
    """Turn experiment results into files a person reads."""


@parse_group.command("experiment")
@click.argument("experiment_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="md: NN_<case_id>.md per trace; json: NN_<case_id>.json (its per_trace.jsonl "
    "entry). per_trace.jsonl is written either way.",
)
@click.option(
    "--output",
    "-o",
    default="per_trace_analysis",
    show_default=True,
    help="The folder, inside the experiment folder, the files are written to.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def parse_experiment_cmd(experiment_dir: Path, fmt: str, output: str, overwrite: bool) -> None:
    """Write one readable file per trace of EXPERIMENT_DIR, and per_trace.jsonl.

    Each Markdown file has the trace's header (persona, status, duration, attempts, tokens
    by role), its input, a timeline of its spans, tool and LLM calls and supervisor
    decisions, the conversation, the output, the error with its traceback and the
    evaluation. The experiment's own files are not changed.

    Exit codes: 0 written, 4 not an experiment folder, or an output folder that exists
    (without --overwrite) or leads outside the experiment.
    """
    from ..artifacts.reader import ExperimentFolder
    from ..report.parse import parse_experiment

    folder = ExperimentFolder.open(experiment_dir)
    result = parse_experiment(
        folder,
        output,
        fmt="json" if fmt == "json" else "md",
        overwrite=overwrite,
    )
    click.echo(f"[INFO] Parsed {result.traces} traces of {folder.name} from {result.source}")
    for note in result.notes:
        click.echo(f"[WARN] {note}")
    shown = result.files if len(result.files) <= _LISTED else result.files[:3]
    for name in shown:
        click.echo(f"Wrote: {result.output / name}")
    if len(shown) < len(result.files):
        click.echo(f"Wrote: ... and {len(result.files) - len(shown)} more .{fmt} files")
    click.echo(f"Wrote: {result.per_trace}")
    click.echo(f"Parsed: {result.output}")
