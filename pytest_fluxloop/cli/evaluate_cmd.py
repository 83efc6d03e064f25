"""``fluxloop evaluate experiment DIR``: evaluate an experiment without running the agent.

The work is :func:`pytest_fluxloop.evaluation.offline.evaluate_experiment` (imported inside
the command: importing the CLI stays cheap).
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["evaluate_group"]


@click.group("evaluate")
def evaluate_group() -> None:
    """Evaluate experiment results."""


@evaluate_group.command("experiment")
@click.argument("experiment_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="simulation.yaml (or the evaluation.yaml beside it) whose evaluation to use; "
    "default: the config the run used (its metadata.json).",
)
@click.option(
    "--output",
    "-o",
    default="evaluation",
    show_default=True,
    help="The folder, inside the experiment folder, the evaluation is written to.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing evaluation folder.")
@click.option(
    "--gate",
    "gates",
    multiple=True,
    metavar="GATE",
    help='A run-level gate, e.g. "pass^3>=0.8" (repeatable; adds to evaluation.yaml gates).',
)
@click.option(
    "--strict-judges", is_flag=True, help="Exit 1 when an LLM judge could not give a verdict."
)
@click.pass_context
def evaluate_experiment_cmd(
    ctx: click.Context,
    experiment_dir: Path,
    config: Path | None,
    output: str,
    overwrite: bool,
    gates: tuple[str, ...],
    strict_judges: bool,
) -> None:
    """Evaluate the traces of EXPERIMENT_DIR with evaluation.yaml, without running the agent.

    Writes EXPERIMENT_DIR/evaluation/ (summary.json, per_trace.jsonl, report.md); the
    experiment's own files are not changed. Judge verdicts are cached (limits.cache), so a
    second evaluation calls no judge twice.

    Exit codes: 0 evaluated (failing cases are in the report), 1 a gate failed (or, with
    --strict-judges, a judge could not give a verdict), 4 a usage or configuration error.
    """
    from ..config import load_config
    from ..errors import ConfigError
    from ..evaluation.offline import evaluate_experiment, experiment_config_path

    if config is None:
        config = experiment_config_path(experiment_dir)
        if config is None:
            raise ConfigError(
                f"{experiment_dir}: the config this run used is not recorded or no longer "
                "exists (metadata.json config_path); pass --config configs/simulation.yaml"
            )
    elif config.name == "evaluation.yaml":
        config = config.parent / "simulation.yaml"
    cfg = load_config(config)
    result = evaluate_experiment(
        experiment_dir,
        cfg,
        output=output,
        overwrite=overwrite,
        gates=gates,
        strict_judges=strict_judges,
    )
    outcome = result.outcome
    verdicts = outcome.block.get("verdicts") or {}
    counts = ", ".join(f"{n} {k}" for k, n in sorted(verdicts.items())) or "none"
    click.echo(f"[INFO] Evaluated {result.traces} traces from {result.source}: {counts}")
    from ..evaluation.reliability import reliability_table

    for line in reliability_table(outcome.block.get("reliability") or {}):
        click.echo(line)
    for gate in outcome.gates:
        click.echo(f"gate {'passed' if gate.passed else 'FAILED'}: {gate.message}")
    for line in outcome.notes():
        click.echo(f"[WARN] {line}")
    for line in outcome.messages():
        if line.startswith("--fluxloop-strict-judges"):
            click.echo(line.replace("--fluxloop-strict-judges", "--strict-judges"))
    click.echo(f"Evaluation: {result.output}")
    ctx.exit(1 if outcome.fails_run else 0)
