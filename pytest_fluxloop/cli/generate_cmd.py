"""``fluxloop generate inputs``: write the inputs file experiments run.

A thin shell over :mod:`pytest_fluxloop.generate`: find and load the config, turn the
options into :class:`~pytest_fluxloop.generate.GenerationOptions`, refuse an existing file
before any work (an LLM generation would otherwise spend its requests first), pick the next
batch when ``--limit`` comes without ``--offset``, show progress, write atomically, and say
what was written.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .location import location_options
from .pytest_args import resolve_config_path
from .run import _display, _user_path, stdin_is_interactive

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import LoadedConfig
    from ..generate import GenerationOptions, GenerationResult

__all__ = ["generate_group", "generate_inputs_command"]


@click.group("generate")
def generate_group() -> None:
    """Generate input datasets."""


@generate_group.command("inputs")
@location_options(
    "Simulation config (its input.yaml holds base_inputs, personas and strategies); "
    "relative to the project with --project, else to the current directory."
)
@click.option(
    "--mode",
    type=click.Choice(["deterministic", "llm"]),
    help="deterministic: rule-based operators, offline and reproducible; llm: an "
    "OpenAI-compatible model.  [default: input_generation.mode, else deterministic]",
)
@click.option(
    "--strategies",
    "-s",
    help="Comma-separated strategies (rephrase, verbose, concise, typo, error_prone, "
    "persona_based, adversarial, multilingual, custom).  [default: input_generation."
    "strategies, else variation_strategies]",
)
@click.option("--personas", "-p", help="Comma-separated persona names to generate for.")
@click.option(
    "--count",
    type=click.IntRange(min=1),
    help="Variations per base input, persona and strategy.  [default: variation_count]",
)
@click.option("--seed", type=int, help="Seed.  [default: simulation.yaml's seed, else 42]")
@click.option(
    "--limit", "-l", type=click.IntRange(min=1), help="Write at most N inputs (one batch)."
)
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    help="Skip the first N inputs of the generation (batches).  [default with --limit: the "
    "first position no other batch file of this generation in the output folder holds]",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inputs file to write (relative to the current directory).  [default: input.yaml's "
    "inputs_file, else inputs/generated.yaml]",
)
@click.option(
    "--include-base/--no-base",
    default=True,
    show_default=True,
    help="Also write each base input itself (strategy 'base').",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="LLM mode: requests in flight at once (at most 16).  [default: 4]",
)
@click.option("--overwrite", is_flag=True, help="Replace the output file if it exists.")
@click.option("--yes", "-y", is_flag=True, help="Skip the confirmation prompt (LLM mode).")
@click.option("--display/--no-display", default=True, help="Show a progress bar while generating.")
def generate_inputs_command(
    config: Path,
    project: str | None,
    root: Path,
    mode: str | None,
    strategies: str | None,
    personas: str | None,
    count: int | None,
    seed: int | None,
    limit: int | None,
    offset: int | None,
    output: Path | None,
    include_base: bool,
    concurrency: int | None,
    overwrite: bool,
    yes: bool,
    display: bool,
) -> None:
    """Generate variations of input.yaml's base inputs for each persona and strategy.

    Deterministic mode is offline and byte-for-byte reproducible from --seed; LLM mode asks
    input_generation.llm's model (OPENAI_API_KEY / OPENAI_BASE_URL are honoured). The file
    written is what `fluxloop run experiment` reads (or pass it with --inputs). Batches:
    `--limit 100 --output inputs/batch1.yaml`, then `--output inputs/batch2.yaml` continues
    where the first batch ended.
    """
    from ..artifacts.paths import check_output_option
    from ..config import load_config
    from ..generate import GenerationOptions, check_output_path, generate_inputs, write_inputs_file
    from ..generate.core import fingerprint

    cwd = Path.cwd()
    config_path = resolve_config_path(config, project, root, cwd, "fluxloop generate inputs")
    cfg = load_config(config_path)
    if output is not None:
        check_output_option("--output", output.parent if str(output.parent) else Path("."), cwd)
    options = GenerationOptions.from_config(
        cfg,
        mode=mode,
        strategies=strategies,
        personas=personas,
        count=count,
        seed=seed,
        limit=limit,
        offset=offset,
        include_base=include_base,
        output=_user_path(output, cwd, cfg.project_root),
        concurrency=concurrency,
    )
    shown = _display(options.output, cwd)
    check_output_path(options.output, overwrite=overwrite, display=shown)
    if limit is not None and offset is None:
        options = _next_batch(options, fingerprint(cfg, options), cwd)
    for line in describe_generation(cfg, options, shown):
        click.echo(line)
    for notice in (*cfg.notices, *options.notices):
        click.echo(f"[WARN] {notice}")
    if options.mode == "llm" and not yes and stdin_is_interactive():
        click.confirm("Send these requests?", default=True, abort=True)
    with _progress(display) as progress:
        result = generate_inputs(cfg, options, progress=progress)
    written = write_inputs_file(result, options.output, overwrite=overwrite, display=shown)
    for notice in result.notices:
        click.echo(f"[WARN] {notice}")
    for line in describe_result(result, _display(written, cwd), cfg, options):
        click.echo(line)


def _next_batch(options: GenerationOptions, fp: dict[str, Any], cwd: Path) -> GenerationOptions:
    from ..generate.batches import auto_offset

    chosen, batches = auto_offset(options.output, fp)
    if batches:
        names = ", ".join(_display(b.path, cwd) for b in batches)
        click.echo(f"[INFO] Batch files of this generation found: {names}")
    return dataclasses.replace(options, offset=chosen)


def describe_generation(cfg: LoadedConfig, options: GenerationOptions, shown: str) -> list[str]:
    """The plan lines: mode and seed, what is varied, where it goes."""
    bases = len(cfg.input.base_inputs or []) if cfg.input else 0
    personas = len(options.personas)
    jobs = bases * max(personas, 1) * len(options.strategies)
    lines = [
        f"[INFO] Mode: {options.mode}, seed {options.seed} ({options.seed_source})",
        f"[INFO] {bases} base input(s) × {personas or 'no'} persona(s) × "
        f"{len(options.strategies)} strateg{'y' if len(options.strategies) == 1 else 'ies'} "
        f"({', '.join(options.strategies)}) × {options.count} variation(s): {jobs} job(s)",
    ]
    if options.llm is not None:
        lines.append(
            f"[INFO] Model: {options.llm.provider} {options.llm.model}, "
            f"{jobs} request(s), {options.concurrency} at a time"
        )
    if options.limit is not None:
        first = options.offset + 1
        lines.append(f"[INFO] Batch: inputs {first}-{options.offset + options.limit}")
    lines.append(f"[INFO] Output: {shown}")
    return lines


def describe_result(
    result: GenerationResult, shown: str, cfg: LoadedConfig, options: GenerationOptions
) -> list[str]:
    """What was written, by strategy, and how to use it."""
    stats = result.stats
    by_strategy = ", ".join(f"{k} {v}" for k, v in (stats.get("by_strategy") or {}).items())
    lines = [f"[INFO] Wrote {len(result.entries)} input(s) to {shown} ({by_strategy})"]
    removed = int(stats.get("duplicates_removed") or 0) + int(
        stats.get("equal_to_base_removed") or 0
    )
    if removed:
        lines.append(f"[INFO] {removed} duplicate variation(s) removed")
    if options.limit is not None and result.next_offset is not None:
        lines.append(f"[INFO] Next batch starts at --offset {result.next_offset}")
    configured = cfg.input.inputs_file if cfg.input else None
    if configured is None or cfg.resolve(configured) != options.output:
        lines.append(f"Run them: fluxloop run experiment --inputs {shown}")
    return lines


@contextmanager
def _progress(display: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr, opened at the first report (the total is known then)."""
    if not display:
        yield None
        return
    bars: list[Any] = []

    def report(done: int, total: int) -> None:
        if not bars:
            opened: Any = click.progressbar(length=total, label="Generating", file=sys.stderr)
            bars.append(opened.__enter__())
        current = bars[0]
        current.update(done - current.pos)

    try:
        yield report
    finally:
        if bars:
            bars[0].__exit__(None, None, None)
