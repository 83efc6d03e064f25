"""Remove the recordings a run never used from its cassettes: ``fluxloop cassettes prune``.

Each trace of a run made with cassettes says which recordings of its case's cassette the
case never asked for (``cassette.unused_keys``: match keys, one per unused recording). Replay
uses the recordings of one key front to back, so the unused ones of a key are its last ones
in the file: for each key, that many of its last occurrences are removed.

Only what the run can vouch for is touched:

* a case that missed a call is skipped (it stopped before asking for the rest);
* a cassette whose number of interactions is not what the run left (replayed + unused +
  recorded) changed since the run (pruned already, re-recorded, edited): skipped, so pruning
  twice never removes recordings that were used;
* a key the file no longer holds as often as the run saw it, or whose last recordings are
  not at the positions the run reported (``cassette.unused``), is skipped.

Everything is planned (every file read) before anything is written; each file is written
with :func:`~pytest_fluxloop.cassettes.files.write_cassette` (secret scan, atomic).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts.paths import folder_inside
from ..artifacts.reader import ExperimentFolder
from ..cassettes.errors import CassetteError
from ..cassettes.files import read_cassette, write_cassette
from ..cassettes.model import Cassette, Interaction
from ..errors import ConfigError
from ..redact import Redactor

__all__ = ["CasePrune", "PrunePlan", "apply_prune", "plan_prune"]


@dataclass
class CasePrune:
    """What pruning does to one case's cassette."""

    case_id: str
    path: Path
    cassette: Cassette
    removed: list[Interaction] = field(default_factory=list)
    skipped_keys: list[str] = field(default_factory=list)
    """Unused keys the file no longer holds as often as the run saw them (positions)."""

    @property
    def before(self) -> int:
        return len(self.cassette.interactions)

    @property
    def after(self) -> int:
        return self.before - len(self.removed)

    def pruned(self) -> Cassette:
        """The cassette without the removed interactions."""
        gone = {id(i) for i in self.removed}
        return Cassette(
            experiment=self.cassette.experiment,
            case_id=self.cassette.case_id,
            iteration=self.cassette.iteration,
            interactions=[i for i in self.cassette.interactions if id(i) not in gone],
            recorded_with=dict(self.cassette.recorded_with),
        )


@dataclass
class PrunePlan:
    """What ``prune`` found in one results folder (nothing written yet)."""

    results: Path
    experiment: str
    mode: str
    folder: Path
    cases: list[CasePrune] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    """Cases skipped because they missed calls."""
    notes: list[str] = field(default_factory=list)
    """Cassettes skipped (gone, changed since the run): one sentence each."""
    redact_keys: list[str] = field(default_factory=list)
    redact_patterns: list[str] = field(default_factory=list)
    """The run's ``capture.redact_keys`` / ``redact_patterns``: the secret scan of the
    files written uses them too."""

    def redactor(self) -> Redactor:
        """The scan's redactor: every credential shape, the environment's secrets and the
        run's own redaction settings."""
        try:
            return Redactor(extra_keys=self.redact_keys, extra_patterns=self.redact_patterns)
        except re.error:
            return Redactor(extra_keys=self.redact_keys)

    @property
    def removed(self) -> int:
        return sum(len(case.removed) for case in self.cases)

    @property
    def files(self) -> list[CasePrune]:
        """The cases whose cassette loses interactions."""
        return [case for case in self.cases if case.removed]


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _cassette_block(folder: ExperimentFolder) -> Mapping[str, Any]:
    block = folder.summary.get("cassettes")
    if not isinstance(block, Mapping):
        if not folder.summary:
            raise ConfigError(
                f"{folder.path}: no summary.json (the run did not finish, or kept no "
                "aggregated metrics): prune needs the run's cassettes figures"
            )
        raise ConfigError(
            f"{folder.path}: this run was not made with cassettes (summary.json has no "
            "cassettes block); prune the results folder of a run made with "
            "--fluxloop-cassettes replay, new or record"
        )
    if not folder.has_traces:
        raise ConfigError(
            f"{folder.path}: no traces.jsonl (save_traces: false): the unused recordings of "
            "each case are listed there; run again with save_traces: true"
        )
    return block


def _plan_case(
    case_id: str, use: Mapping[str, Any], folder: Path, notes: list[str]
) -> CasePrune | None:
    keys = [str(k) for k in use.get("unused_keys") or []]
    path = folder_inside(folder, f"{case_id}.json", "case id", inside="the cassette folder")
    if not path.is_file():
        notes.append(f"{case_id}: no cassette {path} any more: skipped")
        return None
    cassette = read_cassette(path)
    if cassette.case_id != case_id:
        notes.append(f"{case_id}: {path} is the cassette of {cassette.case_id}: skipped")
        return None
    expected = _int(use.get("replayed")) + len(keys) + _int(use.get("recorded"))
    if len(cassette.interactions) != expected:
        notes.append(
            f"{case_id}: the cassette changed since the run ({len(cassette.interactions)} "
            f"interactions, the run left {expected}; pruned already, or recorded again): "
            "skipped"
        )
        return None
    case = CasePrune(case_id=case_id, path=path, cassette=cassette)
    positions = [str(p) for p in use.get("unused") or []]
    paired = len(positions) == len(keys)
    for key, count in Counter(keys).items():
        holding = [i for i in cassette.interactions if i.key == key]
        where = [p for p, k in zip(positions, keys, strict=True) if k == key] if paired else []
        chosen = holding[-count:] if len(holding) >= count else []
        # The recordings the run did not use are these very ones: same key, same positions.
        if not chosen or (paired and sorted(i.position for i in chosen) != sorted(where)):
            case.skipped_keys.extend(where or [f"key {key[:12]}"])
            continue
        case.removed.extend(chosen)
    order = {id(i): n for n, i in enumerate(cassette.interactions)}
    case.removed.sort(key=lambda i: order[id(i)])
    if case.skipped_keys:
        notes.append(
            f"{case_id}: the cassette no longer holds {', '.join(case.skipped_keys)} as the "
            "run saw them (changed since the run): those skipped"
        )
    return case


def plan_prune(results: Path, folder: Path | None = None) -> PrunePlan:
    """Read the run in ``results`` and every cassette it names; decide what to remove.

    ``folder``: the experiment's cassette folder (default: the one in ``summary.json``).

    Raises:
        ConfigError: not an experiment folder, a run without cassettes or without
            ``traces.jsonl``, a cassette folder that does not exist, a case id leading out
            of the folder.
        CassetteError: a cassette that cannot be read.
    """
    experiment = ExperimentFolder.open(results)
    block = _cassette_block(experiment)
    if folder is None:
        recorded = block.get("folder")
        if not isinstance(recorded, str) or not recorded:
            raise ConfigError(
                f"{experiment.path}: summary.json names no cassette folder: give --dir"
            )
        folder = Path(recorded)
    folder = folder.expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"cassette folder {folder} does not exist: give the experiment's cassette folder "
            "with --dir"
        )
    plan = PrunePlan(
        results=experiment.path,
        experiment=experiment.name,
        mode=str(block.get("mode") or "?"),
        folder=folder.resolve(),
    )
    simulation = experiment.config.get("simulation")
    capture = simulation.get("capture") if isinstance(simulation, Mapping) else None
    if isinstance(capture, Mapping):
        plan.redact_keys = _strings(capture.get("redact_keys"))
        plan.redact_patterns = _strings(capture.get("redact_patterns"))
    for record in experiment.iter_traces():
        use = record.get("cassette")
        if not isinstance(use, Mapping):
            continue
        case_id = str(record.get("case_id") or "")
        if _int(use.get("missed")) > 0:
            plan.missed.append(case_id)
            continue
        if not use.get("unused_keys") or not case_id:
            if use.get("unused") and case_id:
                plan.notes.append(
                    f"{case_id}: the run lists unused recordings without their keys (an "
                    "older pytest-fluxloop made it): skipped"
                )
            continue
        case = _plan_case(case_id, use, plan.folder, plan.notes)
        if case is not None:
            plan.cases.append(case)
    plan.cases.sort(key=lambda case: case.case_id)
    return plan


def apply_prune(plan: PrunePlan, redactor: Redactor | None = None) -> list[str]:
    """Write every cassette of ``plan`` that loses interactions; the problems of those
    that could not be written (the others are written all the same)."""
    redactor = redactor or plan.redactor()
    problems: list[str] = []
    for case in plan.files:
        try:
            write_cassette(case.path, case.pruned(), redactor)
        except CassetteError as exc:
            problems.append(str(exc))
    return problems
