"""``fluxloop compare BASE_DIR NEW_DIR``: what changed between two runs, for a person or CI.

The work is :func:`pytest_fluxloop.report.compare.compare_experiments` (imported inside the
command: importing the CLI stays cheap). Exit codes: 0 no regression beyond the tolerance,
1 a regression (so a CI step fails), 4 a usage or configuration error (an unreadable
folder, a bad ``--tolerance``: raised as our errors, shown by the CLI's boundary).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["compare"]

EXIT_REGRESSED = 1


@click.command("compare")
@click.argument("base_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("new_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["table", "md", "json"]),
    default="table",
    show_default=True,
    help="table: aligned text for a terminal; md: a pull-request comment; json: for tools.",
)
@click.option(
    "--tolerance",
    "-t",
    "tolerances",
    multiple=True,
    metavar="TEXT",
    help='How much worse NEW may be, e.g. "pass_rate=0.05,latency=0.5,tokens=off,'
    'new_failures=2" (repeatable). Defaults: pass_rate=0, pass_hat_k=0, latency=0.2, '
    "latency_floor_ms=10, tokens=0.2, new_failures=0. See docs/compare.md.",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the comparison to this file instead of the terminal (e.g. comment.md).",
)
@click.pass_context
def compare(
    ctx: click.Context,
    base_dir: Path,
    new_dir: Path,
    fmt: str,
    tolerances: tuple[str, ...],
    output: Path | None,
) -> None:
    """Compare the experiment folder NEW_DIR with BASE_DIR.

    Per input × persona: pass rate, pass^k, p95 latency and agent tokens, each with its
    change; newly failing, newly passing and newly flaky cases; inputs only in one run.

    Exit codes: 0 no regression beyond the tolerance, 1 a regression (CI fails the step),
    4 a usage or configuration error.
    """
    from ..artifacts.reader import ExperimentFolder
    from ..errors import ConfigError
    from ..report.compare import compare_experiments, parse_tolerance

    # The tolerance first: a typo in it is reported before any folder is read.
    tolerance = parse_tolerance(tolerances)
    comparison = compare_experiments(
        ExperimentFolder.open(base_dir), ExperimentFolder.open(new_dir), tolerance
    )
    if fmt == "json":
        text = json.dumps(comparison.to_json(), indent=2, ensure_ascii=False) + "\n"
    elif fmt == "md":
        text = comparison.to_markdown()
    else:
        text = comparison.to_table()
    if output is None:
        click.echo(text, nl=False)
        if fmt == "json":
            # stdout stays one JSON document; the warnings go where a person sees them.
            for warning in comparison.warnings:
                click.echo(f"[WARN] {warning}", err=True)
    else:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--output {output}: cannot write it ({exc})") from None
        for warning in comparison.warnings:
            click.echo(f"[WARN] {warning}")
        for regression in comparison.regressions:
            click.echo(f"[FAIL] {regression.message}")
        verdict = "regression beyond tolerance" if comparison.regressed else "no regression"
        click.echo(f"[INFO] {verdict}; comparison written to {output}")
    ctx.exit(EXIT_REGRESSED if comparison.regressed else 0)
