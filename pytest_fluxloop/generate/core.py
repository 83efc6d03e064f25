"""The generation core: plan the jobs, run them in either mode, dedupe, slice, describe.

Whatever the mode, entries come out in job order (base input, persona, strategy, then the
job's own order), each base input first (as strategy ``base``) when ``include_base`` is on.
Deduplication keeps the first occurrence of a text per persona (compared case-folded, with
whitespace runs collapsed) and drops any variation equal to a base input. ``--offset`` and
``--limit`` cut the final, deduplicated list, so batches ``--limit 50 --offset 0``,
``--limit 50 --offset 50`` ... partition the full list exactly (deterministic mode: jobs do
not depend on one another, see :mod:`.jobs`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ..config.loader import LoadedConfig
from ..config.models import BaseInput
from ..jsonsafe import to_jsonable
from ..llm.client import LLMClient
from .deterministic import ApplyFn, check_strategies, run_deterministic
from .errors import GenerationError
from .jobs import Job, JobOutcome, plan_jobs
from .options import GenerationOptions, relative_to_project

__all__ = ["BASE_STRATEGY", "GenerationResult", "generate_inputs", "normalized_text"]

#: The ``strategy`` of an entry that is a base input itself.
BASE_STRATEGY = "base"
# How many failed / short jobs a notice quotes (the stats list them all).
_QUOTED = 3

Progress = Callable[[int, int], None]


def normalized_text(text: str) -> str:
    """The form inputs are compared in for deduplication: whitespace runs collapsed,
    case-folded (the operators compare variations the same way)."""
    return " ".join(text.split()).casefold()


@dataclass
class GenerationResult:
    """What a generation made: the entries and how they were made.

    Attributes:
        entries: the inputs-file entries, in order: ``{input, persona,
            persona_description, strategy, base_index, metadata}``.
        stats: counts (per strategy and persona, removed duplicates, short and failed
            jobs, LLM requests and tokens).
        generation_config: how the file was made (mode, strategies, seed and its source,
            limit/offset, versions ...); no wall-clock time, so it is reproducible.
        notices: things the user should read (settings not acted on, failed jobs, the
            next batch's offset); the CLI shows them.
        output: where the options say the file goes.
        total_before_limit: entries before ``--offset``/``--limit``; None when an LLM
            generation stopped early because the limit was reached.
        next_offset: the ``--offset`` of the next batch, None when nothing is left.
    """

    entries: list[dict[str, Any]]
    stats: dict[str, Any]
    generation_config: dict[str, Any]
    output: Path
    notices: list[str] = field(default_factory=list)
    total_before_limit: int | None = None
    next_offset: int | None = None

    def document(self) -> dict[str, Any]:
        """The inputs file's content: ``inputs``, ``stats``, ``generation_config``."""
        return {
            "inputs": self.entries,
            "stats": self.stats,
            "generation_config": self.generation_config,
        }


def generate_inputs(
    cfg: LoadedConfig,
    options: GenerationOptions,
    *,
    progress: Progress | None = None,
    operator: ApplyFn | None = None,
    client: LLMClient | None = None,
) -> GenerationResult:
    """Generate the inputs ``options`` describe from ``cfg``'s base inputs and personas.

    Args:
        cfg: the loaded config (``configs/input.yaml`` holds the base inputs).
        options: resolved options (:meth:`GenerationOptions.from_config`).
        progress: called with (jobs done, jobs in all) as each job finishes; when an LLM
            generation stops early at ``--limit``, once more with (all, all).
        operator: deterministic mode's operator entry point (default
            :func:`.operators.apply`; for tests).
        client: LLM mode's provider client (default: one made from ``options.llm``).

    Raises:
        GenerationError: no base inputs, a strategy without a deterministic operator, a
            fatal LLM error, or nothing generated ("generation produced no inputs: ...").
    """
    base_inputs = cfg.input.base_inputs if cfg.input else None
    if not base_inputs:
        raise GenerationError("no base_inputs in input.yaml: generation varies them")
    jobs = plan_jobs(base_inputs, options.personas, options.strategies, options.seed)
    outcomes: Iterator[JobOutcome]
    stop_at: int | None = None
    if options.mode == "deterministic":
        if operator is None:
            check_strategies(options.strategies)
        outcomes = run_deterministic(jobs, options, progress=progress, operator=operator)
    else:
        from .llm_mode import run_llm  # the LLM layer's clients load only in LLM mode

        outcomes = run_llm(jobs, options, progress=progress, client=client)
        # Requests cost money: stop once the batch is complete. Offline, every job runs so
        # the total (and the next batch's offset) is known.
        if options.limit is not None:
            stop_at = options.offset + options.limit
    collector = _Collector(base_inputs, options)
    ran = 0
    try:
        for outcome in outcomes:
            collector.add(outcome)
            ran += 1
            if stop_at is not None and len(collector.entries) >= stop_at:
                break
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()
    complete = ran == len(jobs)
    if not complete and progress is not None:
        progress(len(jobs), len(jobs))
    return _result(cfg, options, jobs, collector, complete)


class _Collector:
    """Turns outcomes (in job order) into deduplicated entries, counting what it drops."""

    def __init__(self, base_inputs: Sequence[BaseInput], options: GenerationOptions) -> None:
        self.base_inputs = base_inputs
        self.include_base = options.include_base
        self.base_keys = {normalized_text(base.input) for base in base_inputs}
        self.seen: set[tuple[str, str | None]] = set()
        self.groups: set[tuple[int, str | None]] = set()
        self.entries: list[dict[str, Any]] = []
        self.duplicates = 0
        self.equal_to_base = 0
        self.empty = 0
        self.made = 0
        self.jobs_run = 0
        self.kept = 0
        self.short: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.attempts = 0
        self.usage: dict[str, int] = {}

    def add(self, outcome: JobOutcome) -> None:
        job = outcome.job
        self.jobs_run += 1
        if self.include_base and job.group not in self.groups:
            self.groups.add(job.group)
            self._add_base(job)
        kept = duplicates = equal = empty = 0
        for variation in outcome.variations:
            text = variation.text.strip()
            key = normalized_text(text)
            if not text:
                empty += 1
            elif key in self.base_keys:
                equal += 1
            elif (key, job.persona_name) in self.seen:
                duplicates += 1
            else:
                self.seen.add((key, job.persona_name))
                provenance = {
                    **variation.provenance,
                    "source_input": job.base.input,
                    "base_index": job.base_index,
                    "strategy": job.strategy,
                }
                self.entries.append(_entry(text, job, job.strategy, provenance))
                kept += 1
        self.kept += kept
        self.made += len(outcome.variations)
        self.duplicates += duplicates
        self.equal_to_base += equal
        self.empty += empty
        self.attempts += outcome.attempts
        for name, value in (outcome.usage or {}).items():
            self.usage[name] = self.usage.get(name, 0) + value
        if outcome.error is not None:
            self.failed.append({**job.describe(), "error": outcome.error})
        elif kept < outcome.asked:
            reasons = [outcome.note] if outcome.note else []
            reasons += [
                f"{n} {what} removed"
                for n, what in (
                    (duplicates, "duplicate(s)"),
                    (equal, "equal to a base input"),
                    (empty, "empty"),
                )
                if n
            ]
            self.short.append(
                {
                    **job.describe(),
                    "asked": outcome.asked,
                    "made": len(outcome.variations),
                    "kept": kept,
                    "reason": "; ".join(reasons) or "fewer variations than asked",
                }
            )

    def _add_base(self, job: Job) -> None:
        key = (normalized_text(job.base.input), job.persona_name)
        if key in self.seen:
            self.duplicates += 1  # the same base input listed twice
            return
        self.seen.add(key)
        provenance = {
            "operator": BASE_STRATEGY,
            "source_input": job.base.input,
            "base_index": job.base_index,
            "strategy": BASE_STRATEGY,
        }
        self.entries.append(_entry(job.base.input, job, BASE_STRATEGY, provenance))


def _entry(text: str, job: Job, strategy: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """One inputs-file entry: the provenance, then the base input's own metadata (nested
    under ``base_metadata`` when one of its keys would hide a provenance key)."""
    base = job.base
    own: dict[str, Any] = to_jsonable(dict(base.metadata))
    if base.expected_intent is not None:
        own.setdefault("expected_intent", base.expected_intent)
    metadata = dict(provenance)
    if own and set(own) & set(metadata):
        metadata["base_metadata"] = own
    else:
        metadata.update(own)
    persona = job.persona
    return {
        "input": text,
        "persona": persona.name if persona is not None else None,
        "persona_description": persona.description if persona is not None else None,
        "strategy": strategy,
        "base_index": job.base_index,
        "metadata": metadata,
    }


def _result(
    cfg: LoadedConfig,
    options: GenerationOptions,
    jobs: list[Job],
    collector: _Collector,
    complete: bool,
) -> GenerationResult:
    everything = collector.entries
    total = len(everything) if complete else None
    end = options.offset + options.limit if options.limit is not None else None
    selected = everything[options.offset : end]
    # Base entries alone are not a generation: a file of them would hide that every
    # request failed or every variation was removed.
    if not selected or collector.kept == 0:
        raise GenerationError(f"generation produced no inputs: {_why_empty(options, collector)}")
    next_offset = end if end is not None and (not complete or end < len(everything)) else None
    notices = list(options.notices)
    if collector.failed:
        quoted = "; ".join(
            f"base {f['base_index']}, {f['strategy']}: {f['error']}"
            for f in collector.failed[:_QUOTED]
        )
        notices.append(
            f"{len(collector.failed)} of {len(jobs)} generation job(s) failed and made "
            f"nothing (listed under stats.failed_jobs): {quoted}"
        )
    if next_offset is not None:
        same = (
            "same config, seed and --limit"
            if options.mode == "deterministic"
            # A new run asks the model again: its batches are not parts of one generation.
            else "LLM answers differ from run to run, so batches may overlap in meaning"
        )
        notices.append(
            f"more inputs remain: the next batch starts at --offset {next_offset} ({same})"
        )
    stats = _stats(options, jobs, collector, selected, total, next_offset)
    config = _generation_config(cfg, options, jobs, total)
    return GenerationResult(
        entries=selected,
        stats=stats,
        generation_config=config,
        output=options.output,
        notices=notices,
        total_before_limit=total,
        next_offset=next_offset,
    )


def _why_empty(options: GenerationOptions, collector: _Collector) -> str:
    total = len(collector.entries)
    if collector.kept and options.offset >= total:
        return (
            f"--offset {options.offset} is past the end: the generation makes {total} "
            f"input(s), so offsets 0 to {total - 1} are valid"
        )
    if collector.failed and collector.made == 0:
        first = collector.failed[0]["error"]
        return f"every job failed ({len(collector.failed)}); the first: {first}"
    if collector.made:
        return (
            f"all {collector.made} variation(s) were removed ({collector.duplicates} "
            f"duplicate(s), {collector.equal_to_base} equal to a base input, "
            f"{collector.empty} empty)"
        )
    return (
        f"the {', '.join(options.strategies)} strategy(ies) made no variation of any base "
        "input; try other strategies, a higher variation_temperature, or --mode llm"
    )


def _stats(
    options: GenerationOptions,
    jobs: list[Job],
    collector: _Collector,
    selected: list[dict[str, Any]],
    total: int | None,
    next_offset: int | None,
) -> dict[str, Any]:
    strategies = [BASE_STRATEGY] if options.include_base else []
    by_strategy = {name: 0 for name in [*strategies, *options.strategies]}
    by_persona = {persona.name: 0 for persona in options.personas}
    for entry in selected:
        by_strategy[entry["strategy"]] += 1
        if entry["persona"] is not None:
            by_persona[entry["persona"]] += 1
    stats: dict[str, Any] = {
        "entries": len(selected),
        "total_before_limit": total,
        "next_offset": next_offset,
        "by_strategy": by_strategy,
    }
    if by_persona:
        stats["by_persona"] = by_persona
    stats.update(
        {
            "duplicates_removed": collector.duplicates,
            "equal_to_base_removed": collector.equal_to_base,
            "empty_removed": collector.empty,
            "jobs": {
                "planned": len(jobs),
                "run": collector.jobs_run,
                "short": len(collector.short),
                "failed": len(collector.failed),
            },
            "short_jobs": collector.short,
            "failed_jobs": collector.failed,
        }
    )
    if options.mode == "llm":
        stats["llm"] = {"calls": collector.attempts, "tokens": dict(collector.usage)}
    return stats


def fingerprint(cfg: LoadedConfig, options: GenerationOptions) -> dict[str, Any]:
    """What makes two generations the same list (everything but limit and offset): two
    batch files with equal fingerprints are slices of one generation
    (:mod:`.batches` matches them)."""
    source = cfg.sources.get("input") or cfg.config_path
    config: dict[str, Any] = {
        "mode": options.mode,
        "strategies": list(options.strategies),
        "personas": [persona.name for persona in options.personas],
        "variation_count": options.count,
        "temperature": options.temperature,
        "seed": options.seed,
        "include_base": options.include_base,
        "config_file": relative_to_project(cfg, source),
    }
    if options.llm is not None:
        config["llm"] = {
            "provider": options.llm.provider,
            "model": options.llm.model,
            "temperature": options.llm.temperature,
            "variations_per_request": options.ask_count,
        }
    return config


def _generation_config(
    cfg: LoadedConfig, options: GenerationOptions, jobs: list[Job], total: int | None
) -> dict[str, Any]:
    config = fingerprint(cfg, options)
    config.update(
        {
            "seed_source": options.seed_source,
            "limit": options.limit,
            "offset": options.offset,
            "total_before_limit": total,
            "jobs": len(jobs),
        }
    )
    config["generator"] = f"pytest-fluxloop {_version()}"
    return config


@functools.lru_cache(maxsize=1)
def _version() -> str:
    try:
        return importlib_metadata.version("pytest-fluxloop")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"
