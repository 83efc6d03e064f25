"""``fluxloop config schema``: the JSON Schema of simulation.yaml, for editors."""

from __future__ import annotations

import json
from pathlib import Path

import click

SCHEMA_KINDS = ("simulation", "project", "input", "evaluation", "inputs")


@click.command("schema")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the schema to FILE instead of printing it.",
)
@click.option(
    "--kind",
    type=click.Choice(SCHEMA_KINDS),
    default="simulation",
    show_default=True,
    help="Which config file the schema describes.",
)
def config_schema(output: Path | None, kind: str) -> None:
    """Print the JSON Schema of configs/simulation.yaml (or another config file).

    Point an editor at it for completion and validation, e.g. with a first line
    `# yaml-language-server: $schema=simulation.schema.json`.
    """
    from ..config.schema import config_json_schema

    text = json.dumps(config_json_schema(kind), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as err:
        raise click.ClickException(f"cannot write {output}: {err}") from None
    click.echo(f"Wrote {kind} config schema to {output}", err=True)
