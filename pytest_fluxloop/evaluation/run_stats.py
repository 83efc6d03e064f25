"""The run's evaluation: what ``summary.json`` says under ``evaluation``, and the gates.

:class:`RunEvaluation` is fed every record of a run as it is written (or the
``trace_summary.jsonl`` lines of the run being resumed) and keeps only counts, sums and one
float per trace, so it stays small at tens of thousands of cases. :meth:`RunEvaluation.finish`
computes the block: verdict counts, scores by evaluator and persona, reliability (pass@k,
pass^k, Wilson interval, flaky groups), efficiency outliers, the 0.2.36 metric ratings,
failure categories, a latency trend, the baseline comparison, and the gates and alerts.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..records import TraceRecord
from .gates import GateResult, RunFigures, evaluate_gates, latency_stats
from .reliability import EXCLUDED_JUDGE, Outcome, ReliabilityTally

if TYPE_CHECKING:
    from .spec import EvaluationSpec

__all__ = ["EvaluationOutcome", "RunEvaluation"]

_OUTLIERS_KEPT = 20
GROUPS_KEPT = 500
"""At most this many input × persona groups (the worst) are listed in ``summary.json``; the
overall figures and the gates count them all."""
_CATEGORY_IDS_KEPT = 5


@dataclass
class EvaluationOutcome:
    """What :meth:`RunEvaluation.finish` found: the summary block and the run-level verdict."""

    block: dict[str, Any]
    gates: list[GateResult] = field(default_factory=list)
    alerts: list[GateResult] = field(default_factory=list)
    unscored: int = 0
    strict_judges: bool = False

    @property
    def failed_gates(self) -> list[GateResult]:
        """The gates that failed."""
        return [g for g in self.gates if not g.passed]

    @property
    def fails_run(self) -> bool:
        """A gate failed, or a judge could not score under ``--fluxloop-strict-judges``."""
        return bool(self.failed_gates) or (self.strict_judges and self.unscored > 0)

    def notes(self) -> list[str]:
        """Things to tell that fail nothing: the judge budget ran out."""
        refused = self.block.get("judge", {}).get("budget_refused", 0)
        if not refused:
            return []
        return [
            f"judge budget reached (limits.max_llm_calls / limits.max_tokens): {refused} "
            "judgement(s) were not made and are unscored (budget); raise the limits to judge "
            "them, or re-run: cached verdicts cost nothing"
        ]

    def messages(self) -> list[str]:
        """One line per failed gate (and the strict-judges failure)."""
        lines = [f"gate failed: {g.message}" for g in self.failed_gates]
        if self.strict_judges and self.unscored:
            lines.append(
                f"--fluxloop-strict-judges: {self.unscored} evaluator result(s) unscored "
                "(judges that could not give a verdict); see summary.json evaluation.evaluators"
            )
        return lines


class RunEvaluation:
    """Accumulates one run's evaluation figures (thread-safe)."""

    def __init__(self, spec: EvaluationSpec, *, strict_judges: bool = False) -> None:
        self.spec = spec
        self.strict_judges = strict_judges
        self._lock = threading.Lock()
        self.reliability = ReliabilityTally()
        self.verdicts: Counter[str] = Counter()
        self.evaluators: dict[str, dict[str, Any]] = {}
        self.personas: dict[str, Counter[str]] = defaultdict(Counter)
        self.persona_scores: dict[str, list[float]] = defaultdict(list)
        self.latencies: list[float] = []
        self.latency_ids: list[str] = []
        self.tokens: list[float] = []
        self.depths: list[float] = []
        self.errors = 0
        self.counted = 0
        self.unscored = 0
        self.judge_cached = 0
        self.judge_budget = 0
        self.categories: dict[str, list[str]] = defaultdict(list)
        self.category_counts: Counter[str] = Counter()

    # ------------------------------------------------------------------ feeding

    def add(self, record: TraceRecord) -> None:
        """Count one written record."""
        # Read from the attributes: no serialisation on the per-record path.
        error = record.error
        multi = record.multi_turn
        evaluation = record.evaluation
        line: dict[str, Any] = {
            "case_id": record.case_id,
            "persona": record.persona,
            "input": record.input,
            "duration_ms": record.duration_ms,
            "success": record.success,
            "status": record.status,
            "error_kind": error.kind if error is not None else None,
            "error_type": error.type if error is not None else None,
            "token_usage": record.token_usage,
            "multi_turn": {"enabled": multi.enabled, "turn_count": multi.turn_count}
            if multi is not None
            else None,
            "evaluation": {
                "verdict": evaluation.verdict,
                "score": evaluation.score,
                "evaluators": [
                    {
                        "name": e.name,
                        "status": e.status,
                        "score": e.score,
                        "unscored_reason": e.unscored_reason,
                        "cached": e.cached,
                    }
                    for e in evaluation.evaluators
                ],
            }
            if evaluation is not None
            else None,
        }
        outcome = self.reliability.add(record)  # from the attributes, not the dict
        with self._lock:
            self._add(line, outcome)

    def add_line(self, line: dict[str, Any]) -> None:
        """Count one record in JSON form (a ``traces.jsonl`` record or a ``trace_summary.jsonl``
        line, as read when resuming)."""
        error = line.get("error")
        if isinstance(error, dict):  # a full record: its summary-line spelling
            line = {**line, "error_kind": error.get("kind"), "error_type": error.get("type")}
        with self._lock:
            self._add(line)

    def _add(self, line: dict[str, Any], outcome: Outcome | None = None) -> None:
        """Count ``line``; ``outcome``: the reliability tally's answer when it counted the run
        already (from the record), else it counts ``line`` now."""
        if outcome is None:
            outcome = self.reliability.add(line)  # its case_outcome, computed once
        case_id = str(line.get("case_id") or "")
        persona = str(line.get("persona") or "-")
        evaluation = line.get("evaluation")
        verdict = evaluation.get("verdict") if isinstance(evaluation, dict) else None
        self.verdicts[verdict or "none"] += 1
        self.personas[persona][outcome if outcome in ("pass", "fail") else "excluded"] += 1
        if isinstance(evaluation, dict):
            score = evaluation.get("score")
            if isinstance(score, int | float):
                self.persona_scores[persona].append(float(score))
            self._add_evaluators(evaluation.get("evaluators"))
        # The agent's own figures (latency, tokens, errors) count every run the agent made,
        # judged or not; only runs the harness broke (infrastructure, supervisor) are out.
        if outcome in ("pass", "fail", EXCLUDED_JUDGE):
            self.counted += 1
            duration = line.get("duration_ms")
            if isinstance(duration, int | float) and math.isfinite(duration):
                self.latencies.append(float(duration))
                self.latency_ids.append(case_id)
            tokens = _agent_tokens(line.get("token_usage"))
            if tokens is not None:
                self.tokens.append(tokens)
            if not line.get("success"):
                self.errors += 1
            depth = _depth(line)
            if depth is not None:
                self.depths.append(depth)
        if self.spec.categorize_failures and outcome == "fail":
            self._categorize(case_id, line, evaluation)

    def _add_evaluators(self, evaluators: Any) -> None:
        # A full record lists evaluators; a summary line maps name -> {status, score}.
        if isinstance(evaluators, dict):
            items = [{"name": k, **v} for k, v in evaluators.items() if isinstance(v, dict)]
        else:
            items = [e for e in evaluators or [] if isinstance(e, dict)]
        for item in items:
            name = str(item.get("name"))
            stats = self.evaluators.setdefault(
                name, {"statuses": Counter(), "scores": 0.0, "scored": 0, "unscored": Counter()}
            )
            status = str(item.get("status"))
            stats["statuses"][status] += 1
            score = item.get("score")
            if status in ("passed", "failed") and isinstance(score, int | float):
                stats["scores"] += float(score)
                stats["scored"] += 1
            if status == "unscored":
                self.unscored += 1
                stats["unscored"][str(item.get("unscored_reason") or "unknown")] += 1
                if item.get("unscored_reason") == "budget":
                    self.judge_budget += 1
            if item.get("cached"):
                self.judge_cached += 1

    def _categorize(self, case_id: str, line: dict[str, Any], evaluation: Any) -> None:
        if not line.get("success"):
            kind = line.get("error_type") or line.get("error_kind") or line.get("status")
            category = f"agent: {kind}"
        else:
            failing = []
            if isinstance(evaluation, dict):
                evaluators = evaluation.get("evaluators")
                items = (
                    [{"name": k, **v} for k, v in evaluators.items()]
                    if isinstance(evaluators, dict)
                    else evaluators or []
                )
                failing = [str(e.get("name")) for e in items if e.get("status") == "failed"]
            category = f"evaluation: {', '.join(sorted(failing)) or 'below threshold'}"
        self.category_counts[category] += 1
        if len(self.categories[category]) < _CATEGORY_IDS_KEPT:
            self.categories[category].append(case_id)

    # ------------------------------------------------------------------ the end

    def figures(self) -> RunFigures:
        """What the gates measure."""
        report = self.reliability.report(self.spec.ks, self.spec.confidence)
        latencies = self._latencies_for_figures()
        return RunFigures(
            reliability=report,
            latencies_ms=latencies,
            tokens_per_case=statistics.fmean(self.tokens) if self.tokens else None,
            unscored=self.unscored,
            error_rate=self.errors / self.counted if self.counted else None,
        )

    def _latencies_for_figures(self) -> list[float]:
        if self.spec.outlier_handling != "remove" or len(self.latencies) < 3:
            return list(self.latencies)
        flagged = set(_outliers(self.latencies, self._latency_spec()))
        return [v for i, v in enumerate(self.latencies) if i not in flagged]

    def _latency_spec(self) -> Any:
        from .spec import EfficiencySpec

        return next(
            (e for e in self.spec.efficiency if e.metric == "latency"), EfficiencySpec("latency")
        )

    def finish(self) -> EvaluationOutcome:
        """The ``evaluation`` block of ``summary.json`` and the gate results."""
        with self._lock:
            figures = self.figures()
            gates = evaluate_gates(self.spec.gates, figures)
            alerts = evaluate_gates(self.spec.alerts, figures)
            block: dict[str, Any] = {
                "evaluators": self._evaluator_block(),
                "disabled_evaluators": list(self.spec.disabled),
                "verdicts": dict(self.verdicts),
                "threshold": self.spec.threshold,
                "method": self.spec.method,
                "reliability": figures.reliability,
                "latency_ms": latency_stats(figures.latencies_ms),
                "tokens_per_case": figures.tokens_per_case,
                "error_rate": figures.error_rate,
                "unscored": self.unscored,
                "judge": {"cached": self.judge_cached, "budget_refused": self.judge_budget},
                "gates": [g.to_json() for g in gates],
                "alerts": [a.to_json() for a in alerts if not a.passed],
            }
            if self.spec.evaluation_goal:
                block["evaluation_goal"] = self.spec.evaluation_goal
            if self.spec.by_persona:
                block["by_persona"] = self._persona_block()
            if self.spec.efficiency:
                block["efficiency"] = self._efficiency_block()
            if self.spec.metrics:
                block["metrics"] = self._metrics_block()
            if self.spec.categorize_failures:
                block["failure_categories"] = {
                    name: {"count": count, "case_ids": self.categories[name]}
                    for name, count in self.category_counts.most_common()
                }
            if self.spec.trend_analysis:
                block["latency_trend"] = _trend(self.latencies)
            if self.spec.persona_gap:
                block["persona_gap"] = self._persona_gap()
            if self.spec.baseline_path is not None:
                block["baseline"] = self._baseline(figures)
            groups = figures.reliability.get("groups") or []
            if len(groups) > GROUPS_KEPT:
                # summary.json stays small at any size: the worst groups, and the count.
                block["reliability"] = {
                    **figures.reliability,
                    "groups": groups[:GROUPS_KEPT],
                    "groups_total": len(groups),
                }
        return EvaluationOutcome(
            block=block,
            gates=gates,
            alerts=alerts,
            unscored=self.unscored,
            strict_judges=self.strict_judges,
        )

    def _evaluator_block(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, stats in self.evaluators.items():
            scored = stats["scored"]
            out[name] = {
                **{
                    k: stats["statuses"].get(k, 0)
                    for k in ("passed", "failed", "unscored", "skipped")
                },
                "mean_score": round(stats["scores"] / scored, 4) if scored else None,
                "unscored_reasons": dict(stats["unscored"]),
            }
        return out

    def _persona_block(self) -> dict[str, Any]:
        names = sorted(self.personas, key=lambda p: (p not in self.spec.focus_personas, p))
        out: dict[str, Any] = {}
        for persona in names:
            counts = self.personas[persona]
            runs = counts["pass"] + counts["fail"]
            scores = self.persona_scores.get(persona) or []
            out[persona] = {
                "passed": counts["pass"],
                "failed": counts["fail"],
                "excluded": counts["excluded"],
                "success_rate": round(counts["pass"] / runs, 4) if runs else None,
                "mean_score": round(statistics.fmean(scores), 4) if scores else None,
                "focus": persona in self.spec.focus_personas,
            }
        return out

    def _persona_gap(self) -> dict[str, Any]:
        rates = {
            p: v["success_rate"]
            for p, v in self._persona_block().items()
            if v["success_rate"] is not None
        }
        if len(rates) < 2:
            return {"gap": None, "best": None, "worst": None}
        best = max(rates, key=lambda p: rates[p])
        worst = min(rates, key=lambda p: rates[p])
        return {"gap": round(rates[best] - rates[worst], 4), "best": best, "worst": worst}

    def _efficiency_block(self) -> dict[str, Any]:
        values = {
            "latency": self.latencies,
            "output_tokens": self.tokens,
            "conversation_depth": self.depths,
        }
        out: dict[str, Any] = {}
        for item in self.spec.efficiency:
            series = values[item.metric]
            flagged = _outliers(series, item)
            ids = [self.latency_ids[i] for i in flagged] if item.metric == "latency" else []
            out[item.metric] = {
                "mean": round(statistics.fmean(series), 3) if series else None,
                "std": round(statistics.pstdev(series), 3) if len(series) > 1 else None,
                "mode": item.mode,
                "outliers": len(flagged),
                "outlier_case_ids": ids[:_OUTLIERS_KEPT],
                "handling": self.spec.outlier_handling if item.metric == "latency" else "include",
            }
        return out

    def _metrics_block(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for metric in self.spec.metrics:
            stats = self.evaluators.get(metric.name)
            passed = stats["statuses"].get("passed", 0) if stats else 0
            failed = stats["statuses"].get("failed", 0) if stats else 0
            rate = 100.0 * passed / (passed + failed) if passed + failed else None
            if rate is None:
                rating = "insufficient data"
            elif metric.good is not None and rate >= metric.good:
                rating = "good"
            elif metric.fair is not None and rate >= metric.fair:
                rating = "fair"
            elif metric.good is None and metric.fair is None:
                rating = "unrated"
            else:
                rating = "poor"
            out[metric.name] = {
                "pass_rate_percent": None if rate is None else round(rate, 2),
                "rating": rating,
                "thresholds": {"good": metric.good, "fair": metric.fair},
            }
        return out

    def _baseline(self, figures: RunFigures) -> dict[str, Any]:
        path = self.spec.baseline_path
        assert path is not None
        try:
            base = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return {"path": str(path), "error": f"could not read it: {exc}"}
        overall = figures.reliability.get("overall", {})
        rate = overall.get("success_rate")
        total = base.get("total_traces") or 0
        base_rate = (base.get("successful", 0) / total) if total else None
        base_eval = base.get("evaluation") or {}
        base_rel = (base_eval.get("reliability") or {}).get("overall") or {}
        if base_rel.get("success_rate") is not None:
            base_rate = base_rel["success_rate"]
        latency = latency_stats(figures.latencies_ms).get("avg")
        base_latency = base.get("avg_duration_ms")
        return {
            "path": str(path),
            "success_rate": {
                "baseline": base_rate,
                "current": rate,
                "delta": _delta(rate, base_rate),
            },
            "avg_latency_ms": {
                "baseline": base_latency,
                "current": latency,
                "delta": _delta(latency, base_latency),
            },
        }


def _delta(current: Any, base: Any) -> float | None:
    if isinstance(current, int | float) and isinstance(base, int | float):
        return round(float(current) - float(base), 4)
    return None


def _depth(line: dict[str, Any]) -> float | None:
    """A multi-turn trace's agent turns: ``multi_turn.turn_count``, or, on a
    ``trace_summary.jsonl`` line (a resumed run), its transcript's agent messages."""
    multi = line.get("multi_turn")
    if isinstance(multi, dict):
        return float(multi.get("turn_count") or 0) if multi.get("enabled") else None
    conversation = line.get("conversation")
    if not isinstance(conversation, list):
        return None
    if line.get("termination_reason") is None and len(conversation) <= 2:
        return None  # single-turn: the input and the answer
    return float(sum(isinstance(e, dict) and e.get("source") == "agent" for e in conversation))


def _agent_tokens(usage: Any) -> float | None:
    agent = usage.get("agent") if isinstance(usage, dict) else None
    total = agent.get("total_tokens") if isinstance(agent, dict) else None
    return float(total) if isinstance(total, int | float) else None


def _outliers(series: list[float], item: Any) -> list[int]:
    """Indices of ``series`` beyond mean + k·std (statistical) or the absolute threshold."""
    if not series:
        return []
    if item.mode == "absolute":
        limit = item.absolute_threshold
        return [i for i, v in enumerate(series) if limit is not None and v > limit]
    if len(series) < 3:
        return []
    mean = statistics.fmean(series)
    std = statistics.pstdev(series)
    if std == 0:
        return []
    return [i for i, v in enumerate(series) if v > mean + item.std_multiplier * std]


def _trend(latencies: list[float]) -> dict[str, Any]:
    """First half of the run against the second (in the order records were written)."""
    if len(latencies) < 4:
        return {"first_half_avg_ms": None, "second_half_avg_ms": None, "change_percent": None}
    half = len(latencies) // 2
    first = statistics.fmean(latencies[:half])
    second = statistics.fmean(latencies[half:])
    change = 100.0 * (second - first) / first if first else None
    return {
        "first_half_avg_ms": round(first, 3),
        "second_half_avg_ms": round(second, 3),
        "change_percent": None if change is None else round(change, 2),
    }
