"""``fluxloop init project NAME``: scaffold a runnable FluxLoop project."""

from __future__ import annotations

from pathlib import Path

import click

from .pytest_args import DEFAULT_ROOT


def _check_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from .scaffold import ScaffoldError, validate_project_name

    try:
        return validate_project_name(value)
    except ScaffoldError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


@click.command("project")
@click.argument("name", callback=_check_name)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_ROOT,
    help="FluxLoop root directory; the project is created in <root>/<NAME>/.  "
    "[default: ./fluxloop]",
)
@click.option("--force", is_flag=True, help="Overwrite scaffold files that already exist.")
def init_project(name: str, root: Path, force: bool) -> None:
    """Create a FluxLoop project NAME: configs, inputs and an example agent.

    NAME may contain letters, digits, '-' and '_'. Existing files are never overwritten
    unless --force is given.
    """
    from .scaffold import scaffold_project

    try:  # a ScaffoldError (folder not empty ...) is shown by the CLI's error boundary
        result = scaffold_project(root.expanduser(), name, force=force)
    except OSError as err:  # permission denied, read-only filesystem, ...
        raise click.ClickException(f"cannot create project in {root / name}: {err}") from None

    click.echo(f"Created FluxLoop project '{name}' in {result.project_dir}")
    for rel in result.files:
        note = " (overwritten)" if rel in result.overwritten else ""
        click.echo(f"  {rel.as_posix()}{note}")
    click.echo("\nNext steps:")
    click.echo(f"  cd {result.project_dir}")
    click.echo("  fluxloop run experiment --yes")
    root_hint = "" if root == DEFAULT_ROOT else f" --root {root}"
    click.echo(f"\nOr from here: fluxloop run experiment --project {name}{root_hint} --yes")
