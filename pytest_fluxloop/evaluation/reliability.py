"""Reliability of an agent over repeated runs: pass@k, pass^k, Wilson interval, flaky groups.

Runs are grouped by (input, persona): the iterations of one group are repeated attempts at
the same task. For a group of ``n`` counted runs with ``c`` passes, the unbiased estimators
(Chen et al. 2021 for pass@k, Yao et al. 2024 "tau-bench" for pass^k) are

* ``pass@k = 1 − C(n−c, k) / C(n, k)``: the chance that at least one of k runs drawn
  without replacement passes;
* ``pass^k = C(c, k) / C(n, k)``: the chance that all k of them pass — what a user who
  asks the same thing k times experiences.

Neither exists for ``n < k``: such a group is *insufficient*, reported as ``None``, never
as 0 or NaN. Runs that say nothing about the agent (the harness or the simulated user broke,
the judge gave no verdict) are *excluded* from ``n`` and counted by reason instead.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

from pytest_fluxloop.records import TraceRecord

__all__ = [
    "EXCLUDED_INFRASTRUCTURE",
    "EXCLUDED_JUDGE",
    "EXCLUDED_SUPERVISOR",
    "EXCLUSION_REASONS",
    "FAIL",
    "MAX_FAILED_CASE_IDS",
    "PASS",
    "Outcome",
    "ReliabilityTally",
    "case_outcome",
    "group_key",
    "pass_at_k",
    "pass_hat_k",
    "reliability_table",
    "wilson_interval",
]

PASS: Literal["pass"] = "pass"
"""A counted run the agent got right."""
FAIL: Literal["fail"] = "fail"
"""A counted run the agent got wrong: it raised, timed out, or its evaluation failed."""

EXCLUDED_INFRASTRUCTURE: Literal["infrastructure"] = "infrastructure"
"""Not counted: the harness or host broke (status ``crashed``, error kind ``infrastructure``)."""
EXCLUDED_SUPERVISOR: Literal["supervisor"] = "supervisor"
"""Not counted: the simulated user broke (status ``supervisor_error``, kind ``supervisor``)."""
EXCLUDED_JUDGE: Literal["judge"] = "judge"
"""Not counted: the evaluation gave no verdict (``unscored``: judge output unusable, budget)."""

EXCLUSION_REASONS = (EXCLUDED_INFRASTRUCTURE, EXCLUDED_SUPERVISOR, EXCLUDED_JUDGE)
"""Why a run is left out of ``n``: none of them is evidence about the agent."""

Outcome = Literal["pass", "fail", "infrastructure", "supervisor", "judge"]
"""What :func:`case_outcome` returns: :data:`PASS`, :data:`FAIL` or an exclusion reason."""

MAX_FAILED_CASE_IDS = 5
"""Failed case ids kept per group: enough to open a few traces, bounded for huge runs."""

RecordOrLine = TraceRecord | Mapping[str, Any]


def _check_counts(n: int, c: int) -> None:
    """Impossible counts are a caller's bug: raise rather than return a meaningless figure."""
    if n < 0 or not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased pass@k of ``c`` passes in ``n`` runs; None when ``n < k`` or ``k < 1``."""
    _check_counts(n, c)
    if k < 1 or n < k:
        return None
    # One integer division of exact binomials: correctly rounded, no loss for large n.
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float | None:
    """Unbiased pass^k (tau-bench) of ``c`` passes in ``n`` runs; None when ``n < k``/``k < 1``."""
    _check_counts(n, c)
    if k < 1 or n < k:
        return None
    return math.comb(c, k) / math.comb(n, k)


def wilson_interval(c: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of the success rate ``c / n``; None when ``n == 0``.

    Unlike the normal approximation it stays inside [0, 1] and is not zero-width at
    ``c == 0`` or ``c == n``, which matters for the small ``n`` of repeated agent runs.
    """
    _check_counts(n, c)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if n == 0:
        return None
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    p = c / n
    z2n = z * z / n
    center = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, center - half), min(1.0, center + half)


def _fields(item: RecordOrLine) -> tuple[str | None, bool, str | None, str | None]:
    """(status, success, error kind, evaluation verdict) of a record or a JSON line."""
    # dict first: TraceRecord's metaclass is an ABCMeta, whose isinstance check is slow.
    if not isinstance(item, dict) and isinstance(item, TraceRecord):
        kind = item.error.kind if item.error is not None else None
        verdict = item.evaluation.verdict if item.evaluation is not None else None
        return item.status, item.success, kind, verdict
    kind = item.get("error_kind")
    error = item.get("error")
    if kind is None and isinstance(error, Mapping):
        # A traces.jsonl line (full record as JSON) keeps the kind inside ``error``.
        kind = error.get("kind")
    evaluation = item.get("evaluation")
    verdict = evaluation.get("verdict") if isinstance(evaluation, Mapping) else None
    return item.get("status"), bool(item.get("success")), kind, verdict


def case_outcome(item: RecordOrLine) -> Outcome:
    """Whether one run counts as a pass, a fail, or is excluded (and why).

    ``item`` is a :class:`TraceRecord`, a ``traces.jsonl`` line or a ``trace_summary.jsonl``
    line. In order: a crash or an infrastructure error is :data:`EXCLUDED_INFRASTRUCTURE`; a
    supervisor error is :data:`EXCLUDED_SUPERVISOR`; an agent error or timeout is
    :data:`FAIL`; an ``unscored`` evaluation is :data:`EXCLUDED_JUDGE`; a ``failed``
    evaluation is :data:`FAIL`; anything else (no evaluation, ``passed``, ``skipped``) is
    :data:`PASS`.
    """
    status, success, kind, verdict = _fields(item)
    if status == "crashed" or kind == "infrastructure":
        return EXCLUDED_INFRASTRUCTURE
    if status == "supervisor_error" or kind == "supervisor":
        return EXCLUDED_SUPERVISOR
    # The agent's own failure comes before the judge's: a run whose agent raised is a fail
    # whatever the judge made of it, and excluding it would flatter the pass rates.
    if not success:
        return FAIL
    if verdict == "unscored":
        return EXCLUDED_JUDGE
    if verdict == "failed":
        return FAIL
    return PASS


def group_key(item: RecordOrLine) -> tuple[str, str]:
    """``(input, persona or "")``: the runs that are repeated attempts at the same task.

    A summary line whose input was cut (``input_truncated``) gets the full input's hash
    appended, so two long inputs with the same beginning stay two groups.
    """
    if not isinstance(item, dict) and isinstance(item, TraceRecord):
        return item.input, item.persona or ""
    text = item.get("input")
    text = "" if text is None else str(text)
    truncated = item.get("input_truncated")
    if isinstance(truncated, Mapping) and truncated.get("sha256"):
        text = f"{text}… (sha256 {str(truncated['sha256'])[:12]})"
    persona = item.get("persona")
    return text, "" if persona is None else str(persona)


def _case_id(item: RecordOrLine) -> str:
    if not isinstance(item, dict) and isinstance(item, TraceRecord):
        return item.case_id
    return str(item.get("case_id") or item.get("trace_id") or "")


@dataclass
class _Group:
    n: int = 0
    c: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    failed_case_ids: list[str] = field(default_factory=list)


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


class ReliabilityTally:
    """Counts passes per (input, persona) group as runs finish; safe to feed from threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, str], _Group] = {}

    def add(self, item: RecordOrLine) -> Outcome:
        """Count one run (a record or a JSON line); returns its :func:`case_outcome`."""
        outcome = case_outcome(item)
        key = group_key(item)
        with self._lock:
            group = self._groups.setdefault(key, _Group())
            if outcome == PASS:
                group.n += 1
                group.c += 1
            elif outcome == FAIL:
                group.n += 1
                if len(group.failed_case_ids) < MAX_FAILED_CASE_IDS:
                    group.failed_case_ids.append(_case_id(item))
            else:
                group.excluded[outcome] += 1
        return outcome

    def report(self, ks: Sequence[int], confidence: float = 0.95) -> dict[str, Any]:
        """The JSON-ready reliability block: per group and overall, for each k in ``ks``.

        Per-k dicts are keyed by ``str(k)``. The overall pass@k / pass^k is the mean over the
        groups with ``n >= k`` (None when there is none); ``insufficient`` counts the others.
        Groups come worst first: lowest pass^k at the largest k, then lowest success rate.
        """
        if any(k < 1 for k in ks):
            raise ValueError(f"every k must be a positive integer, got {list(ks)}")
        k_list = sorted(set(ks))
        with self._lock:
            snapshot = [
                (key, g.n, g.c, dict(g.excluded), list(g.failed_case_ids))
                for key, g in self._groups.items()
            ]
        groups = [
            _group_report(key, n, c, excluded, failed, k_list, confidence)
            for key, n, c, excluded, failed in snapshot
        ]
        groups.sort(key=lambda g: _worst_first(g, k_list))
        runs = sum(g["n"] for g in groups)
        passes = sum(g["c"] for g in groups)
        excluded_total: Counter[str] = Counter()
        for g in groups:
            excluded_total.update(g["excluded"])
        wilson = wilson_interval(passes, runs, confidence)
        overall = {
            "groups": len(groups),
            "runs": runs,
            "passes": passes,
            "success_rate": passes / runs if runs else None,
            "wilson": list(wilson) if wilson else None,
            "pass_at_k": {str(k): _mean([g["pass_at_k"][str(k)] for g in groups]) for k in k_list},
            "pass_hat_k": {
                str(k): _mean([g["pass_hat_k"][str(k)] for g in groups]) for k in k_list
            },
            "insufficient": {str(k): sum(1 for g in groups if g["n"] < k) for k in k_list},
            "flaky_groups": sum(1 for g in groups if g["flaky"]),
            "excluded": dict(sorted(excluded_total.items())),
        }
        return {"k": k_list, "confidence": confidence, "groups": groups, "overall": overall}


def _group_report(
    key: tuple[str, str],
    n: int,
    c: int,
    excluded: dict[str, int],
    failed: list[str],
    ks: list[int],
    confidence: float,
) -> dict[str, Any]:
    wilson = wilson_interval(c, n, confidence)
    return {
        "input": key[0],
        "persona": key[1],
        "n": n,
        "c": c,
        "success_rate": c / n if n else None,
        "wilson": list(wilson) if wilson else None,
        "pass_at_k": {str(k): pass_at_k(n, c, k) for k in ks},
        "pass_hat_k": {str(k): pass_hat_k(n, c, k) for k in ks},
        "flaky": 0 < c < n,
        "excluded": dict(sorted(excluded.items())),
        "failed_case_ids": failed,
    }


def _worst_first(group: dict[str, Any], ks: list[int]) -> tuple[Any, ...]:
    rate = group["success_rate"]
    if rate is None:
        # Nothing counted (every run excluded): nothing to say about the agent, so last.
        return (2.0, 2.0, group["persona"], group["input"])
    hat = group["pass_hat_k"][str(ks[-1])] if ks else None
    # Too few runs for the largest k: rank by the success rate (the pass^1 estimate), the
    # best figure the group has, rather than hiding a 0-of-2 group below a 9-of-10 one.
    primary = rate if hat is None else hat
    return (primary, rate, group["persona"], group["input"])


INPUT_WIDTH = 40
"""Characters of an input shown in :func:`reliability_table`."""


def _cut(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _rate_cell(rate: float | None, wilson: Sequence[float] | None) -> str:
    if rate is None:
        return "—"
    if not wilson:
        return _pct(rate)
    return f"{_pct(rate)} [{wilson[0] * 100:.0f}–{_pct(wilson[1])}]"


def reliability_table(report: Mapping[str, Any], limit: int = 10) -> list[str]:
    """Plain-text lines for the terminal: the ``limit`` worst groups, then one overall line.

    Columns: persona, input (cut to :data:`INPUT_WIDTH` characters), n, c, success rate with
    its Wilson interval, pass^k for each k (``n<k`` when the group is too small) and a flaky
    mark. No colour codes: the caller decides how to show it.
    """
    ks: list[int] = list(report.get("k", []))
    groups: list[dict[str, Any]] = list(report.get("groups", []))
    header = ["persona", "input", "n", "c", "success", *(f"pass^{k}" for k in ks), ""]
    rows = [header]
    for g in groups[: max(limit, 0)]:
        hats = [g["pass_hat_k"].get(str(k)) for k in ks]
        rows.append(
            [
                _cut(g["persona"], 20) or "-",
                _cut(g["input"], INPUT_WIDTH),
                str(g["n"]),
                str(g["c"]),
                _rate_cell(g["success_rate"], g["wilson"]),
                *(f"n<{k}" if h is None else f"{h:.2f}" for k, h in zip(ks, hats, strict=True)),
                "flaky" if g["flaky"] else "",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    left = {0, 1}  # text columns; the numbers are right-aligned
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i in left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    if len(groups) > limit:
        lines.append(f"… {len(groups) - max(limit, 0)} more groups")
    lines.append(_overall_line(report.get("overall", {}), ks))
    return lines


def _overall_line(overall: Mapping[str, Any], ks: list[int]) -> str:
    parts = [
        f"overall: {overall.get('groups', 0)} groups, {overall.get('runs', 0)} runs, "
        f"{overall.get('passes', 0)} passed "
        f"({_rate_cell(overall.get('success_rate'), overall.get('wilson'))})"
    ]
    for k in ks:
        value = overall.get("pass_hat_k", {}).get(str(k))
        short = overall.get("insufficient", {}).get(str(k), 0)
        text = f"pass^{k} " + ("—" if value is None else f"{value:.2f}")
        if short:
            text += f" ({short} with n<{k})"
        parts.append(text)
    parts.append(f"{overall.get('flaky_groups', 0)} flaky")
    excluded = overall.get("excluded") or {}
    if excluded:
        parts.append(
            "excluded: " + ", ".join(f"{reason} {count}" for reason, count in excluded.items())
        )
    return "; ".join(parts)
