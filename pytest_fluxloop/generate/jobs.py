"""The job plan: one job per base input × persona × strategy, in a fixed order.

Jobs run in base-input order, then persona order, then strategy order, and each job draws
from its own seed, derived from the generation seed and the job's coordinates only. So a job
makes the same variations whichever other jobs run, in whatever order or batch: that is what
lets ``--limit`` / ``--offset`` batches partition one full list exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config.models import BaseInput, Persona

__all__ = ["Job", "JobOutcome", "Produced", "job_seed", "plan_jobs"]


def job_seed(seed: int, base_index: int, persona: str | None, strategy: str) -> int:
    """The seed of one job: the first 8 bytes of
    ``sha256(f"{seed}:{base_index}:{persona}:{strategy}")`` as an unsigned integer
    (``persona`` is ``None`` for a job without one)."""
    digest = hashlib.sha256(f"{seed}:{base_index}:{persona}:{strategy}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class Job:
    """One base input, one persona (or none) and one strategy: one operator call or request.

    ``index`` is the job's place in the plan; ``seed`` its own seed (:func:`job_seed`).
    """

    index: int
    base_index: int
    base: BaseInput
    persona: Persona | None
    strategy: str
    seed: int

    @property
    def persona_name(self) -> str | None:
        """The persona's name, None without one."""
        return self.persona.name if self.persona is not None else None

    @property
    def group(self) -> tuple[int, str | None]:
        """(base index, persona name): the jobs varying one base input for one persona."""
        return self.base_index, self.persona_name

    def describe(self) -> dict[str, Any]:
        """The job's coordinates, for stats and messages."""
        return {
            "base_index": self.base_index,
            "persona": self.persona_name,
            "strategy": self.strategy,
        }


def plan_jobs(
    base_inputs: Sequence[BaseInput],
    personas: Sequence[Persona],
    strategies: Sequence[str],
    seed: int,
) -> list[Job]:
    """Every job, in base order, persona order (one ``None`` persona when there are none)
    and strategy order."""
    played: list[Persona | None] = list(personas) if personas else [None]
    jobs: list[Job] = []
    for base_index, base in enumerate(base_inputs):
        for persona in played:
            name = persona.name if persona is not None else None
            for strategy in strategies:
                jobs.append(
                    Job(
                        index=len(jobs),
                        base_index=base_index,
                        base=base,
                        persona=persona,
                        strategy=strategy,
                        seed=job_seed(seed, base_index, name, strategy),
                    )
                )
    return jobs


@dataclass(frozen=True)
class Produced:
    """One variation a job made: its text and its provenance (the entry's ``metadata``)."""

    text: str
    provenance: dict[str, Any]


@dataclass
class JobOutcome:
    """What one job made, whatever the mode.

    ``error`` is set when the job failed without stopping the generation (an LLM answer
    that stayed invalid, a server error that outlasted the retries); ``note`` says why it
    made fewer variations than ``asked`` when the runner knows; ``attempts`` and ``usage``
    are the LLM calls it cost (0 / None offline).
    """

    job: Job
    asked: int
    variations: list[Produced] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    attempts: int = 0
    usage: dict[str, int] | None = None
