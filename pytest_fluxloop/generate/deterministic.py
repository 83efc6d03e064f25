"""Deterministic mode: the rule-based operators of :mod:`.operators`, offline.

Each job calls the operator with its own ``random.Random(job.seed)``; nothing here touches
the global ``random`` generator. So the same config and seed give the same variations, and a
job's variations do not depend on which other jobs ran (batches stay consistent).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..jsonsafe import to_jsonable
from .errors import GenerationError
from .jobs import Job, JobOutcome, Produced

if TYPE_CHECKING:
    from .options import GenerationOptions

__all__ = ["ApplyFn", "VariationLike", "check_strategies", "run_deterministic"]


class VariationLike(Protocol):
    """What an operator returns per variation (:class:`.operators.Variation`)."""

    @property
    def text(self) -> str: ...

    @property
    def operator(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...


ApplyFn = Callable[..., Sequence[VariationLike]]
"""``apply(strategy, text, *, persona, count, rng, temperature, language) -> variations``."""


def check_strategies(strategies: Sequence[str]) -> None:
    """Check that every strategy has a deterministic operator, before any job runs.

    Raises:
        GenerationError: naming the strategies without one and what to do instead.
    """
    from .operators import STRATEGIES

    missing = [name for name in strategies if name not in STRATEGIES]
    if missing:
        raise GenerationError(
            f"strategy(ies) {', '.join(map(repr, missing))} have no deterministic operator "
            f"(deterministic strategies: {', '.join(sorted(STRATEGIES))}); use --mode llm, or "
            "remove them from --strategies / the config"
        )


def run_deterministic(
    jobs: Sequence[Job],
    options: GenerationOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
    operator: ApplyFn | None = None,
) -> Iterator[JobOutcome]:
    """Run ``jobs`` in order, yielding one outcome per job.

    Args:
        jobs: the plan (:func:`.jobs.plan_jobs`).
        options: count, temperature (and the rest) of this generation.
        progress: called with (jobs done, jobs in all) after each job.
        operator: the operator entry point; default :func:`.operators.apply` (tests inject
            a stand-in).

    Raises:
        GenerationError: an operator rejected its strategy (``persona_based`` without a
            persona, ``multilingual`` for a language without tables ...).
    """
    from .operators import UnsupportedStrategy, apply

    apply_fn: ApplyFn = operator if operator is not None else apply
    total = len(jobs)
    for done, job in enumerate(jobs, start=1):
        persona = job.persona
        try:
            made = apply_fn(
                job.strategy,
                job.base.input,
                persona=persona,
                count=options.count,
                rng=random.Random(job.seed),
                temperature=options.temperature,
                language=persona.language if persona is not None else None,
            )
        except UnsupportedStrategy as exc:
            # Its message names the strategy and the way out (LLM mode, another language);
            # the job says which input and persona hit it.
            persona_name = job.persona_name or "none"
            raise GenerationError(
                f"{exc} (base input {job.base_index}, persona {persona_name})"
            ) from None
        variations = [
            Produced(
                text=variation.text,
                provenance={
                    "operator": variation.operator,
                    "params": to_jsonable(dict(variation.params)),
                    "seed": job.seed,
                },
            )
            for variation in list(made)[: options.count]
        ]
        note = None
        if len(variations) < options.count:
            note = f"the {job.strategy} operator made {len(variations)} of {options.count}"
        yield JobOutcome(job=job, asked=options.count, variations=variations, note=note)
        if progress is not None:
            progress(done, total)
