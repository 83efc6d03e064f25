"""Run-level gates: ``pass^3>=0.8``, ``success_rate>=90%``, ``p95_latency_ms<2000`` ...

A gate is one comparison of a figure of the whole run with a threshold. :func:`parse_gate`
reads its text (rejecting anything it cannot read, with the reason), the caller gathers the
figures in :class:`RunFigures`, and :func:`evaluate_gates` says which gates hold. A gate
whose figure could not be measured (no counted run, too few iterations for its k, no token
counts) fails: a gate never passes on missing data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config.errors import suggest_key
from .reliability import pass_at_k, pass_hat_k

__all__ = [
    "METRICS",
    "OPERATORS",
    "Gate",
    "GateResult",
    "Metric",
    "RunFigures",
    "evaluate_gates",
    "gate_ks",
    "latency_stats",
    "parse_gate",
]

Metric = Literal[
    "pass_at_k",
    "pass_hat_k",
    "success_rate",
    "error_rate",
    "avg_latency_ms",
    "p95_latency_ms",
    "max_latency_ms",
    "tokens_per_case",
    "flaky",
    "unscored",
]

METRICS = (
    "pass@K",
    "pass^K",
    "success_rate",
    "error_rate",
    "avg_latency_ms",
    "p95_latency_ms",
    "max_latency_ms",
    "tokens_per_case",
    "flaky",
    "unscored",
)
"""The metrics a gate may name, as written (K a positive integer; ``pass_at_K`` and
``pass_hat_K`` are accepted for ``pass@K`` and ``pass^K``)."""

OPERATORS = (">=", ">", "<=", "<", "==")

_RATES = frozenset({"pass_at_k", "pass_hat_k", "success_rate", "error_rate"})
_PLAIN: dict[str, Metric] = {
    "success_rate": "success_rate",
    "error_rate": "error_rate",
    "avg_latency_ms": "avg_latency_ms",
    "p95_latency_ms": "p95_latency_ms",
    "max_latency_ms": "max_latency_ms",
    "tokens_per_case": "tokens_per_case",
    "flaky": "flaky",
    "unscored": "unscored",
}
_PER_K = re.compile(r"(?:pass@|pass_at_)(?P<at>\S*)|(?:pass\^|pass_hat_)(?P<hat>\S*)")
_OPERATOR = re.compile(r"[<>=!]+")
_NUMBER = re.compile(r"[+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_EXAMPLE = "e.g. 'pass^3>=0.8', 'success_rate >= 90%' or 'p95_latency_ms<2000'"

# Within this relative distance two figures are equal: a mean of ratios may land a rounding
# error below a threshold it meets exactly, and that must not flip a gate.
_REL_TOL = 1e-9


@dataclass(frozen=True)
class Gate:
    """One parsed gate: ``metric`` (with ``k`` for pass@k / pass^k) ``op`` ``threshold``."""

    text: str
    metric: Metric
    k: int | None
    op: str
    threshold: float

    @property
    def metric_name(self) -> str:
        """The metric as shown: ``pass@3``, ``pass^3``, ``success_rate`` ..."""
        if self.metric == "pass_at_k":
            return f"pass@{self.k}"
        if self.metric == "pass_hat_k":
            return f"pass^{self.k}"
        return self.metric

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the comparison (equal within a rounding error)."""
        close = math.isclose(value, self.threshold, rel_tol=_REL_TOL, abs_tol=1e-12)
        if self.op == "==":
            return close
        if self.op == ">=":
            return close or value > self.threshold
        if self.op == "<=":
            return close or value < self.threshold
        if self.op == ">":
            return not close and value > self.threshold
        return not close and value < self.threshold


def _invalid(text: str, problem: str) -> ValueError:
    return ValueError(
        f"invalid gate {text!r}: {problem}. Write <metric><operator><number>, {_EXAMPLE}. "
        f"Metrics: {', '.join(METRICS)} (K a positive integer). "
        f"Operators: {', '.join(OPERATORS)}."
    )


def parse_gate(text: str) -> Gate:
    """Read one gate such as ``pass^3>=0.8``; raises ``ValueError`` saying what is wrong.

    Spaces around the parts are allowed and the metric is case-insensitive. A rate
    (pass@K, pass^K, success_rate, error_rate) is a fraction from 0 to 1 or a percentage
    (``90%`` is 0.9); other thresholds are non-negative numbers.
    """
    stripped = text.strip()
    if not stripped:
        raise _invalid(text, "it is empty")
    found = _OPERATOR.search(stripped)
    if found is None:
        raise _invalid(text, "no comparison operator")
    op = found.group()
    if op not in OPERATORS:
        hint = " (use '==' to compare for equality)" if op == "=" else ""
        raise _invalid(text, f"unknown operator {op!r}{hint}")
    name = stripped[: found.start()].strip().lower()
    number = stripped[found.end() :].strip()
    if not name:
        raise _invalid(text, "the metric is missing before the operator")
    metric, k = _parse_metric(text, name)
    percent = number.endswith("%")
    if percent:
        number = number[:-1].rstrip()
    if not number:
        raise _invalid(text, "the threshold is missing after the operator")
    if number.startswith("-"):
        raise _invalid(text, f"the threshold {number} is negative; no metric is")
    if not _NUMBER.fullmatch(number):
        raise _invalid(text, f"the threshold {number!r} is not a number")
    threshold = float(number)
    label = name if k is None else name.replace("_at_", "@").replace("_hat_", "^")
    if metric in _RATES:
        if percent:
            threshold /= 100.0
        if threshold > 1.0:
            suggestion = f"; write {threshold / 100:g} or {threshold:g}%" if not percent else ""
            raise _invalid(text, f"{label} is a fraction from 0 to 1{suggestion}")
    elif percent:
        raise _invalid(text, f"{label} is not a rate, so it takes no percentage")
    return Gate(text=stripped, metric=metric, k=k, op=op, threshold=threshold)


def _parse_metric(text: str, name: str) -> tuple[Metric, int | None]:
    if name in _PLAIN:
        return _PLAIN[name], None
    per_k = _PER_K.fullmatch(name)
    if per_k is not None:
        raw = per_k.group("at") if per_k.group("at") is not None else per_k.group("hat")
        if not raw.isdigit() or int(raw) < 1:
            shown = raw or "nothing"
            raise _invalid(text, f"K in pass@K / pass^K must be a positive integer, got {shown}")
        return ("pass_at_k" if per_k.group("at") is not None else "pass_hat_k"), int(raw)
    known = {**{m: m for m in _PLAIN}, "pass@k": "pass@K", "pass^k": "pass^K"}
    # "pass3", "pass_3": a pass^K with its operator missing is the likeliest meaning.
    close = suggest_key(name, known) or ("pass^k" if name.startswith("pass") else None)
    hint = f" (did you mean {known[close]}?)" if close else ""
    raise _invalid(text, f"unknown metric {name!r}{hint}")


def gate_ks(gates: Sequence[Gate]) -> list[int]:
    """The k's the gates need, to pass to the reliability report (sorted, unique)."""
    return sorted({g.k for g in gates if g.k is not None})


def latency_stats(latencies: Sequence[float]) -> dict[str, Any]:
    """``{count, avg, p50, p95, max}`` of durations in ms; the statistics are None when empty.

    Percentiles by nearest rank (the smallest value with at least p% of values at or below
    it): always a duration that occurred, and no interpolation between two runs.
    """
    values = sorted(float(v) for v in latencies)
    if not values:
        return {"count": 0, "avg": None, "p50": None, "p95": None, "max": None}

    def rank(p: float) -> float:
        return values[max(math.ceil(p / 100.0 * len(values)), 1) - 1]

    return {
        "count": len(values),
        "avg": sum(values) / len(values),
        "p50": rank(50),
        "p95": rank(95),
        "max": values[-1],
    }


@dataclass
class RunFigures:
    """What the gates measure, gathered by the caller from the run's records.

    ``reliability`` is :meth:`ReliabilityTally.report`; ``latencies_ms`` the durations of
    the counted runs; ``tokens_per_case`` the mean agent tokens per case (None when no case
    reported counts); ``unscored`` the cases without a verdict; ``error_rate`` the share of
    cases that ended in an error (None when there were none to count).
    """

    reliability: Mapping[str, Any]
    latencies_ms: list[float] = field(default_factory=list)
    tokens_per_case: float | None = None
    unscored: int = 0
    error_rate: float | None = None


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: the measured ``value`` (None when unmeasurable) and why."""

    gate: Gate
    value: float | None
    passed: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for ``summary.json``."""
        return {
            "gate": self.gate.text,
            "metric": self.gate.metric_name,
            "op": self.gate.op,
            "threshold": self.gate.threshold,
            "value": self.value,
            "passed": self.passed,
            "message": self.message,
        }


WORST_GROUPS_SHOWN = 3
"""Groups named in a failed reliability gate's message."""


def evaluate_gates(gates: Sequence[Gate], figures: RunFigures) -> list[GateResult]:
    """Check each gate against the run's figures, in the given order."""
    return [_evaluate(gate, figures) for gate in gates]


def _groups(figures: RunFigures) -> list[Mapping[str, Any]]:
    return list(figures.reliability.get("groups") or [])


def _evaluate(gate: Gate, figures: RunFigures) -> GateResult:
    if gate.metric in ("pass_at_k", "pass_hat_k"):
        return _evaluate_per_k(gate, figures)
    overall = figures.reliability.get("overall") or {}
    value: float | None
    missing = ""
    if gate.metric == "success_rate":
        value = overall.get("success_rate")
        missing = "no counted runs"
    elif gate.metric == "error_rate":
        value = figures.error_rate
        missing = "no cases to count errors in"
    elif gate.metric in ("avg_latency_ms", "p95_latency_ms", "max_latency_ms"):
        stats = latency_stats(figures.latencies_ms)
        value = stats[gate.metric.removesuffix("_latency_ms")]
        missing = "no counted runs to time"
    elif gate.metric == "tokens_per_case":
        value = figures.tokens_per_case
        missing = "no token counts were reported by the agent"
    elif gate.metric == "flaky":
        value = float(overall.get("flaky_groups", 0))
    else:
        value = float(figures.unscored)
    if value is None:
        return GateResult(gate, None, False, f"{gate.text}: not measurable: {missing}")
    return _verdict(gate, float(value), figures, "")


def _evaluate_per_k(gate: Gate, figures: RunFigures) -> GateResult:
    k = gate.k or 1
    groups = _groups(figures)
    sufficient = [g for g in groups if g["n"] >= k]
    if not sufficient:
        most = max((g["n"] for g in groups), default=0)
        return GateResult(
            gate,
            None,
            False,
            f"{gate.text}: insufficient runs: {gate.metric_name} needs at least {k} "
            f"iterations per input and persona; the most any has is {most}",
        )
    key = "pass_at_k" if gate.metric == "pass_at_k" else "pass_hat_k"
    value = (figures.reliability.get("overall") or {}).get(key, {}).get(str(k))
    if value is None:
        # The report was made for other k's: the groups' counts give the same mean.
        values = [_estimate(gate, g) for g in sufficient]
        value = sum(values) / len(values)
    note = ""
    if len(sufficient) < len(groups):
        short = len(groups) - len(sufficient)
        note = f" ({short} of {len(groups)} groups with fewer than {k} runs left out)"
    return _verdict(gate, float(value), figures, note)


def _estimate(gate: Gate, group: Mapping[str, Any]) -> float:
    fn = pass_at_k if gate.metric == "pass_at_k" else pass_hat_k
    value = fn(group["n"], group["c"], gate.k or 1)
    return 0.0 if value is None else value


def _verdict(gate: Gate, value: float, figures: RunFigures, note: str) -> GateResult:
    shown = _format(gate, value)
    if gate.holds(value):
        return GateResult(gate, value, True, f"{gate.text}: measured {shown}{note}")
    message = f"{gate.text} failed: measured {shown}{note}"
    worst = _worst_groups(gate, figures)
    if worst:
        message += "; worst: " + ", ".join(worst)
    return GateResult(gate, value, False, message)


def _format(gate: Gate, value: float) -> str:
    if gate.metric in _RATES:
        return f"{value:.3g}"
    if gate.metric in ("flaky", "unscored"):
        return f"{value:g}"
    return f"{value:.1f}"


def _worst_groups(gate: Gate, figures: RunFigures) -> list[str]:
    """The groups that pulled a reliability figure down, worst first, as text."""
    groups = _groups(figures)
    if gate.metric in ("pass_at_k", "pass_hat_k"):
        candidates = [(_estimate(gate, g), g) for g in groups if g["n"] >= (gate.k or 1)]
    elif gate.metric == "success_rate":
        candidates = [(g["c"] / g["n"], g) for g in groups if g["n"]]
    elif gate.metric == "flaky":
        candidates = [(g["c"] / g["n"], g) for g in groups if g.get("flaky")]
    else:
        return []
    candidates.sort(key=lambda pair: (pair[0], pair[1]["persona"], pair[1]["input"]))
    return [_describe(g) for _, g in candidates[:WORST_GROUPS_SHOWN]]


def _describe(group: Mapping[str, Any]) -> str:
    text = " ".join(str(group["input"]).split())
    if len(text) > 40:
        text = text[:39] + "…"
    persona = group["persona"] or "-"
    return f"{persona} / {text!r} {group['c']} of {group['n']}"
