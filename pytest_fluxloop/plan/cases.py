"""Expand inputs × personas × iterations into cases with stable ids and a seeded order."""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..config.loader import LoadedConfig
from ..errors import ConfigError
from ..records import unvalidated
from .inputs import InputSet, load_inputs

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")


class Case(BaseModel):
    """One run of the agent: an input, as a persona, in an iteration.

    ``case_id`` is stable across runs and machines (it does not depend on the order or the
    seed), unique within an experiment, and safe for ``pytest -k``.
    """

    model_config = ConfigDict(frozen=True)

    case_id: str
    input_index: int
    input: str
    persona: str | None = None
    persona_description: str | None = None
    persona_profile: dict[str, Any] | None = Field(
        default=None,
        description=(
            "The persona's profile from configs/input.yaml (name, description, characteristics, "
            "language, expertise_level, goals), when a persona of that name is configured"
        ),
    )
    iteration: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(default=None, description="Per-case seed derived from the run seed")


@dataclass
class ExperimentPlan:
    """What an experiment will run."""

    cases: list[Case]
    n_inputs: int
    n_personas: int
    iterations: int
    seed: int
    shuffled: bool
    source: str
    factored: bool
    shard: str | None = None
    """``"K/N"`` when only shard K of N runs (``--shard``); None: every case."""
    experiment_total: int | None = None
    """Cases of the whole experiment (all shards); None: :attr:`total` (not sharded)."""
    _by_id: dict[str, Case] | None = field(default=None, repr=False)

    @property
    def total(self) -> int:
        """Number of cases."""
        return len(self.cases)

    def case(self, case_id: str) -> Case | None:
        """The case with ``case_id``, or None."""
        if self._by_id is None or len(self._by_id) != len(self.cases):
            self._by_id = {case.case_id: case for case in self.cases}
        return self._by_id.get(case_id)

    @property
    def full_total(self) -> int:
        """Cases of the whole experiment (every shard)."""
        return self.total if self.experiment_total is None else self.experiment_total

    def run_metadata(self) -> dict[str, Any]:
        """What ``metadata.json`` records about the plan's shard: ``{"shard": "1/3",
        "experiment_total_cases": 12}``, or nothing when every case runs."""
        if self.shard is None:
            return {}
        return {"shard": self.shard, "experiment_total_cases": self.full_total}

    def describe(self) -> str:
        """``3 inputs × 2 personas × 2 iterations = 12 runs`` (or pairs when not a product);
        a shard adds ``; shard 1/3: 4 runs``."""
        text = self._describe_all()
        if self.shard is not None:
            text += f"; shard {self.shard}: {self.total} run{'s' * (self.total != 1)}"
        return text

    def _describe_all(self) -> str:
        total = self.full_total
        runs = f"{total} run{'s' * (total != 1)}"
        its = f"{self.iterations} iteration{'s' * (self.iterations != 1)}"
        if self.factored:
            personas = max(self.n_personas, 1)
            return (
                f"{self.n_inputs} input{'s' * (self.n_inputs != 1)} × {personas} "
                f"persona{'s' * (personas != 1)} × {its} = {runs}"
            )
        pairs = total // max(self.iterations, 1)
        return f"{pairs} input/persona pair{'s' * (pairs != 1)} × {its} = {runs}"


def slug(text: str, limit: int = 24) -> str:
    """ASCII slug for ids: ``"How do I start?"`` → ``how_do_i_start``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = _SLUG_CHARS.sub("_", ascii_text.lower()).strip("_")
    if len(cleaned) > limit:
        cut = cleaned[:limit]
        cleaned = cut.rsplit("_", 1)[0] if "_" in cut[limit // 2 :] else cut
    return cleaned.strip("_")


def case_seed(run_seed: int, case_id: str) -> int:
    """Per-case seed: a hash of the run seed and the case id (not Python's salted ``hash``)."""
    digest = hashlib.sha256(f"{run_seed}:{case_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def plan_experiment(cfg: LoadedConfig, run_seed: int | None = None) -> ExperimentPlan:
    """Expand ``cfg`` into cases.

    ``run_seed`` is used when the config's ``seed`` is null (so every xdist worker gets the
    same "random" order); when both are None a fresh seed is drawn and reported.
    """
    inputs = load_inputs(cfg)
    iterations = cfg.simulation.iterations
    configured = cfg.simulation.seed
    seed = configured if configured is not None else run_seed
    if seed is None:
        seed = secrets.randbits(31)
    cases = expand_cases(inputs, iterations, seed)
    if not cases:
        raise ConfigError(f"experiment '{cfg.experiment_name}' has no cases to run")
    # seed: null still shuffles: with the fresh seed, so the order differs run to run.
    random.Random(seed).shuffle(cases)
    experiment_total = len(cases)
    shard_text = cfg.overrides.text("shard")
    shard = None
    if shard_text is not None:
        from .shards import parse_shard, select_shard

        option = cfg.overrides.option("shard")
        shard = parse_shard(shard_text, option)
        # Chosen by case ids only (not the seed or the order): every machine, and every
        # xdist worker, keeps the same cases.
        cases = select_shard(cases, shard, option)
    return ExperimentPlan(
        cases=cases,
        n_inputs=inputs.n_inputs,
        n_personas=inputs.n_personas,
        iterations=iterations,
        seed=seed,
        shuffled=True,
        source=inputs.source,
        factored=inputs.factored,
        shard=str(shard) if shard is not None else None,
        experiment_total=experiment_total if shard is not None else None,
    )


def expand_cases(inputs: InputSet, iterations: int, seed: int) -> list[Case]:
    """Cases in canonical order (iteration-major: each iteration cycles through all inputs)."""
    width = max(2, len(str(max((item.index for item in inputs.items), default=0))))
    seen: dict[str, int] = {}
    cases: list[Case] = []
    # The cases of one input share its (read-only) metadata and persona profile, and are
    # built without validating again what the input set validated: a validated Case costs
    # ~1.4 KB, this one ~0.5 KB, which matters at tens of thousands of cases.
    shared = [
        (
            dict(item.metadata),
            dict(item.persona_profile) if item.persona_profile else None,
            slug(item.persona, 32) if item.persona else "default",
            slug(item.input) or "input",
        )
        for item in inputs.items
    ]
    for iteration in range(iterations):
        for item, (metadata, profile, persona, text) in zip(inputs.items, shared, strict=True):
            base = f"in{item.index:0{width}d}-{text}-{persona}-it{iteration}"
            count = seen.get(base, 0) + 1
            seen[base] = count
            # Duplicate personas or inputs still give distinct ids, so JUnit drops no case.
            case_id = base if count == 1 else f"{base}-dup{count}"
            cases.append(
                unvalidated(
                    Case,
                    dict(
                        case_id=case_id,
                        input_index=item.index,
                        input=item.input,
                        persona=item.persona,
                        persona_description=item.persona_description,
                        persona_profile=profile,
                        iteration=iteration,
                        metadata=metadata,
                        seed=case_seed(seed, case_id),
                    ),
                    _CASE_FIELDS,
                )
            )
    return cases


_CASE_FIELDS = set(Case.model_fields)
"""The fields set of every planned case: one set for all (a set per case is ~0.7 KB;
cases are frozen, so pydantic never changes it)."""
