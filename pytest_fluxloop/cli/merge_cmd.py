"""``fluxloop merge DIR... --output DIR``: join the folders of CI shards into one experiment.

The work is :func:`pytest_fluxloop.artifacts.merge.merge_experiments` (imported inside the
command: importing the CLI stays cheap).
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["merge"]


@click.command("merge")
@click.argument(
    "folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--output",
    "-o",
    "output",
    required=True,
    type=click.Path(dir_okay=True, file_okay=False, path_type=Path),
    help="The merged experiment folder to create (relative to the current directory).",
)
@click.option("--overwrite", is_flag=True, help="Replace --output if it is an experiment folder.")
def merge(folders: tuple[Path, ...], output: Path, overwrite: bool) -> None:
    """Merge the experiment folders of `--shard K/N` runs into one experiment folder.

    Each case keeps its latest attempt; summary.json is counted again over the merged
    cases. The folders must be shards of one experiment (same config snapshot apart from
    the output directory). The result is `complete` only when every shard 1..N is there
    and each finished; otherwise `interrupted`, naming the missing shards.
    """
    from ..artifacts.merge import merge_experiments

    result = merge_experiments(list(folders), output, overwrite=overwrite)
    for notice in result.notices:
        click.echo(f"[WARN] {notice}")
    click.echo(
        f"[INFO] Merged {len(folders)} folder(s), shards {', '.join(result.shards)}: "
        f"{result.total_traces} of {result.total_cases} cases, status {result.status}"
    )
    if result.missing_shards:
        click.echo(f"[WARN] Missing shards: {', '.join(result.missing_shards)}")
    for folder in result.unfinished:
        click.echo(f"[WARN] Not complete: {folder}")
    click.echo(f"Results: {result.path}")
