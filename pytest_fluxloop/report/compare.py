"""``fluxloop compare``: how a new run of an experiment differs from a base run.

Both runs are read from their ``trace_summary.jsonl`` lines (the latest line of each case)
and grouped by input × persona, as the run's own reliability figures are. Per group: the
pass rate, pass^1 and pass^k (k: the largest iteration count both runs have), mean and p95
latency and mean agent tokens. Per case (matched by input, persona and iteration, so adding
or reordering inputs does not shift the match): newly failing, newly passing, still failing.
The run-level figures come from :func:`.figures.run_figures` with the same k's for both runs.

A :class:`Tolerance` says how much worse the new run may be; each breach is a
:class:`Regression`, and ``fluxloop compare`` exits 1 when there is one. :meth:`Comparison.
to_json` is the one form every view is rendered from (Markdown and the terminal table in
:mod:`.compare_text`, the HTML report's baseline section).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..artifacts.reader import ExperimentFolder
from ..evaluation.gates import latency_stats
from ..evaluation.reliability import EXCLUDED_JUDGE, FAIL, PASS, case_outcome, group_key
from ..evaluation.reliability import pass_hat_k as _pass_hat_k
from . import compare_text
from .compare_tolerance import (
    TOLERANCE_KEYS,
    Regression,
    Tolerance,
    ToleranceError,
    beyond,
    find_regressions,
    parse_tolerance,
)
from .figures import run_figures

__all__ = [
    "COMPARE_FORMAT",
    "TOLERANCE_KEYS",
    "Comparison",
    "Regression",
    "Tolerance",
    "ToleranceError",
    "compare_experiments",
    "parse_tolerance",
]

COMPARE_FORMAT = 1
"""``format`` of :meth:`Comparison.to_json`: raised only by a change a reader would misread."""


# ---------------------------------------------------------------------- one run's figures


@dataclass
class _Group:
    """One input × persona of one run, while its lines are read."""

    n: int = 0
    c: int = 0
    excluded: int = 0
    latencies: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)

    def figures(self, k: int) -> dict[str, Any]:
        stats = latency_stats(self.latencies)
        return {
            "n": self.n,
            "passed": self.c,
            "excluded": self.excluded,
            "pass_rate": self.c / self.n if self.n else None,
            "pass_hat_1": _pass_hat_k(self.n, self.c, 1),
            "pass_hat_k": _pass_hat_k(self.n, self.c, k),
            "flaky": 0 < self.c < self.n,
            "latency_mean_ms": stats["avg"],
            "latency_p95_ms": stats["p95"],
            # Unknown, never 0, when the agent reported no token counts.
            "tokens_mean": sum(self.tokens) / len(self.tokens) if self.tokens else None,
        }


@dataclass
class _Run:
    folder: ExperimentFolder
    groups: dict[tuple[str, str], _Group]
    cases: dict[tuple[str, str, int, int], tuple[str, str]]
    """(input, persona, iteration, rank) -> (case id, outcome)."""
    iterations: int


def _agent_tokens(usage: Any) -> float | None:
    agent = usage.get("agent") if isinstance(usage, dict) else None
    total = agent.get("total_tokens") if isinstance(agent, dict) else None
    return float(total) if isinstance(total, int | float) and math.isfinite(total) else None


def _read_run(folder: ExperimentFolder) -> _Run:
    groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
    by_case: dict[tuple[str, str, int], list[tuple[str, str]]] = defaultdict(list)
    iterations = 0
    for line in folder.summary_lines():
        key = group_key(line)
        outcome = case_outcome(line)
        group = groups[key]
        if outcome in (PASS, FAIL):
            group.n += 1
            group.c += outcome == PASS
        else:
            group.excluded += 1
        # As in the run's own figures: latency and tokens count every run the agent made.
        if outcome in (PASS, FAIL, EXCLUDED_JUDGE):
            duration = line.get("duration_ms")
            if isinstance(duration, int | float) and math.isfinite(duration):
                group.latencies.append(float(duration))
            tokens = _agent_tokens(line.get("token_usage"))
            if tokens is not None:
                group.tokens.append(tokens)
        raw = line.get("iteration")
        iteration = raw if isinstance(raw, int) and raw >= 0 else 0
        iterations = max(iterations, iteration + 1)
        case_id = str(line.get("case_id") or line.get("trace_id") or "")
        by_case[(key[0], key[1], iteration)].append((case_id, outcome))
    # The same input twice under one persona (two entries of the inputs file) shares a
    # (input, persona, iteration): pair such cases by the order of their case ids.
    cases = {
        (key[0], key[1], key[2], rank): item
        for key, items in by_case.items()
        for rank, item in enumerate(sorted(items))
    }
    return _Run(folder, dict(groups), cases, iterations)


def _experiment_name(folder: ExperimentFolder) -> str | None:
    config = folder.config
    simulation = config.get("simulation")
    for source in (simulation if isinstance(simulation, dict) else {}, config):
        if source.get("name"):
            return str(source["name"])
    name = folder.summary.get("experiment_name") or folder.metadata.get("experiment_name")
    return str(name) if name else None


# ---------------------------------------------------------------------- the comparison


def _change(base: Any, new: Any, *, relative: bool = False) -> dict[str, Any]:
    """``{base, new, delta, relative}``: delta and relative change are None when unknown
    (relative also when the base is 0: a rise from nothing has no ratio)."""
    known = isinstance(base, int | float) and isinstance(new, int | float)
    delta = new - base if known else None
    out: dict[str, Any] = {"base": base, "new": new, "delta": delta}
    if relative:
        out["relative"] = delta / base if known and base else None
    return out


_GROUP_FIGURES = (
    ("pass_rate", False),
    ("pass_hat_1", False),
    ("pass_hat_k", False),
    ("latency_mean_ms", True),
    ("latency_p95_ms", True),
    ("tokens_mean", True),
)


@dataclass
class Comparison:
    """What :func:`compare_experiments` found; render it with the ``to_*`` methods."""

    base: dict[str, Any]
    new: dict[str, Any]
    k: int
    tolerance: Tolerance
    overall: dict[str, dict[str, Any]]
    groups: list[dict[str, Any]]
    cases: dict[str, list[dict[str, Any]]]
    regressions: list[Regression] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        """Whether the new run breached any tolerance."""
        return bool(self.regressions)

    def to_json(self) -> dict[str, Any]:
        """A plain, JSON-safe dict (the schema is in docs/compare.md)."""
        groups = self.groups

        def keys(status: str) -> list[dict[str, str]]:
            return [
                {"input": g["input"], "persona": g["persona"]}
                for g in groups
                if g["status"] == status
            ]

        return _json_safe(
            {
                "format": COMPARE_FORMAT,
                "base": self.base,
                "new": self.new,
                "k": self.k,
                "tolerance": self.tolerance.to_json(),
                "regressed": self.regressed,
                "regressions": [r.to_json() for r in self.regressions],
                "unchecked": list(self.unchecked),
                "warnings": list(self.warnings),
                "overall": self.overall,
                "cases": self.cases,
                "newly_flaky": [
                    {"input": g["input"], "persona": g["persona"]}
                    for g in groups
                    if g["newly_flaky"]
                ],
                "added_groups": keys("added"),
                "removed_groups": keys("removed"),
                "groups": groups,
            }
        )

    def to_markdown(self) -> str:
        """A pull-request comment: verdict, overall figures, newly failing and flaky cases,
        the biggest per-group changes, the rest folded away."""
        return compare_text.render_markdown(self.to_json())

    def to_table(self) -> str:
        """Aligned plain text for a terminal."""
        return compare_text.render_table(self.to_json())


def _json_safe(value: Any) -> Any:
    """Floats rounded for reading (no 0.30000000000000004), NaN/inf as None."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def compare_experiments(
    base: ExperimentFolder, new: ExperimentFolder, tolerance: Tolerance | None = None
) -> Comparison:
    """Compare ``new`` with ``base``; runs of different experiments are compared too, with
    a warning."""
    tolerance = tolerance or Tolerance()
    base_run, new_run = _read_run(base), _read_run(new)
    k = max(1, min(base_run.iterations, new_run.iterations))
    comparison = Comparison(
        base=_describe(base_run),
        new=_describe(new_run),
        k=k,
        tolerance=tolerance,
        overall=_overall(base, new, k),
        groups=_groups(base_run, new_run, k, tolerance),
        cases=_cases(base_run, new_run),
    )
    comparison.warnings = _warnings(base_run, new_run, comparison)
    comparison.regressions, comparison.unchecked = find_regressions(
        tolerance, comparison.overall, k, len(comparison.cases["newly_failing"])
    )
    return comparison


def _describe(run: _Run) -> dict[str, Any]:
    folder = run.folder
    return {
        "path": str(folder.path),
        "folder": folder.path.name,
        "experiment": _experiment_name(folder),
        "status": folder.summary.get("status"),
        "started_at": folder.summary.get("started_at") or folder.metadata.get("started_at"),
        "cases": len(folder.summary_lines()),
        "iterations": run.iterations,
    }


def _overall(base: ExperimentFolder, new: ExperimentFolder, k: int) -> dict[str, Any]:
    ks = tuple(sorted({1, k}))
    figures = [run_figures(folder, ks=ks) for folder in (base, new)]

    def pick(block: dict[str, Any], *path: str) -> Any:
        value: Any = block
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def figure(*path: str, relative: bool = False) -> dict[str, Any]:
        return _change(*(pick(b, *path) for b in figures), relative=relative)

    excluded = [
        sum((pick(b, "reliability", "overall", "excluded") or {}).values()) for b in figures
    ]
    return {
        "cases": _change(len(base.summary_lines()), len(new.summary_lines())),
        "runs": figure("reliability", "overall", "runs"),
        "excluded": _change(*excluded),
        "pass_rate": figure("reliability", "overall", "success_rate"),
        "pass_hat_1": figure("reliability", "overall", "pass_hat_k", "1"),
        "pass_hat_k": figure("reliability", "overall", "pass_hat_k", str(k)),
        "flaky_groups": figure("reliability", "overall", "flaky_groups"),
        "latency_mean_ms": figure("latency_ms", "avg", relative=True),
        "latency_p95_ms": figure("latency_ms", "p95", relative=True),
        "tokens_mean": figure("tokens_per_case", relative=True),
    }


def _groups(base: _Run, new: _Run, k: int, tolerance: Tolerance) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in {**base.groups, **new.groups}:
        old = base.groups[key].figures(k) if key in base.groups else None
        now = new.groups[key].figures(k) if key in new.groups else None
        status = "added" if old is None else "removed" if now is None else "compared"
        changes = {
            name: _change(old[name] if old else None, now[name] if now else None, relative=relative)
            for name, relative in _GROUP_FIGURES
        }
        out.append(
            {
                "input": key[0],
                "persona": key[1],
                "status": status,
                "base": old,
                "new": now,
                "changes": changes,
                "newly_flaky": bool(old and now and now["flaky"] and not old["flaky"]),
                "no_longer_flaky": bool(old and now and old["flaky"] and not now["flaky"]),
                "size": _size(changes, tolerance),
            }
        )
    # The biggest change first; of two as big, the one that got worse (what a reviewer
    # must see) before the one that got better.
    out.sort(
        key=lambda g: (
            -g["size"],
            g["changes"]["pass_rate"]["delta"] or 0.0,
            g["persona"],
            g["input"],
        )
    )
    return out


def _size(changes: dict[str, dict[str, Any]], tolerance: Tolerance) -> float:
    """How much a group changed, to show the biggest first: the largest pass-rate or pass^k
    move; latency and token rises count only beyond their tolerance, scaled down so a
    pass-rate change always comes first."""
    size = max(abs(changes[n]["delta"] or 0.0) for n in ("pass_rate", "pass_hat_k"))
    floor = tolerance.latency_floor_ms or 0.0
    for name, allowed, minimum in (
        ("latency_p95_ms", tolerance.latency_increase, floor),
        ("tokens_mean", tolerance.tokens_increase, 0.0),
    ):
        change = changes[name]
        if beyond(change, allowed or 0.0, minimum, both_ways=True):
            size = max(size, min(abs(change["relative"]), 1.0) * 1e-3)
    return size


def _cases(base: _Run, new: _Run) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {
        "newly_failing": [],
        "newly_passing": [],
        "still_failing": [],
    }
    for key, (case_id, outcome) in new.cases.items():
        if key not in base.cases:
            continue
        base_id, before = base.cases[key]
        if before == PASS and outcome == FAIL:
            bucket = "newly_failing"
        elif before == FAIL and outcome == PASS:
            bucket = "newly_passing"
        elif before == FAIL and outcome == FAIL:
            bucket = "still_failing"
        else:
            continue  # unchanged pass, or excluded (no evidence about the agent) in either
        entry = {"case_id": case_id, "input": key[0], "persona": key[1], "iteration": key[2]}
        if base_id != case_id:
            entry["base_case_id"] = base_id
        out[bucket].append(entry)
    for items in out.values():
        items.sort(key=lambda c: (c["persona"], c["input"], c["iteration"], c["case_id"]))
    return out


def _warnings(base: _Run, new: _Run, comparison: Comparison) -> list[str]:
    warnings = []
    names = comparison.base["experiment"], comparison.new["experiment"]
    if all(names) and names[0] != names[1]:
        warnings.append(
            f"different experiments: base is {names[0]!r}, new is {names[1]!r}; "
            "figures are compared as they are"
        )
    if base.groups and new.groups and not set(base.groups) & set(new.groups):
        warnings.append(
            "no input × persona in common: the runs test different things; only the "
            "overall figures are comparable"
        )
    for label, run in (("base", base), ("new", new)):
        if not run.groups:
            warnings.append(f"the {label} run has no cases ({run.folder.path})")
        status = run.folder.summary.get("status")
        if status not in (None, "complete"):
            warnings.append(f"the {label} run is {status}, not complete ({run.folder.path})")
    excluded = comparison.overall["excluded"]
    if (excluded["delta"] or 0) > 0:
        warnings.append(
            f"the new run left out {excluded['new']} case(s) that say nothing about the agent "
            f"(crashes, simulated-user or judge failures; base: {excluded['base']}): they "
            "count in no pass rate"
        )
    if base.iterations != new.iterations and base.iterations and new.iterations:
        warnings.append(
            f"base ran {base.iterations} iteration(s), new {new.iterations}: "
            f"pass^k uses k={comparison.k}"
        )
    return warnings
