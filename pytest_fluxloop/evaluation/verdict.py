"""One trace's evaluator results aggregated into its verdict, and the text a failure shows.

The aggregate is ``aggregate.method`` over the scored evaluators (``weighted_sum``:
``Σ score·weight / Σ weight``; ``average``: the plain mean). An evaluator that could not
score (a judge whose answer was unusable, the budget) is never counted as 0: the verdict is
``passed`` only if the case would pass whatever it had scored, ``failed`` only if it would
fail whatever it had scored, and ``unscored`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..records import CaseEvaluation, EvaluatorResult, TraceRecord

if TYPE_CHECKING:
    from .spec import EvaluationSpec

__all__ = ["aggregate", "describe_evaluation"]

_SCORED = ("passed", "failed")
_MARK = {"passed": "PASS", "failed": "FAIL", "unscored": "UNSCORED", "skipped": "SKIP"}
_QUOTE = 160


def _combine(results: Sequence[EvaluatorResult], scores: Sequence[float], method: str) -> float:
    if method == "average":
        return sum(scores) / len(scores)
    weights = [r.weight for r in results]
    total = sum(weights)
    if total <= 0:  # every weight 0: the plain mean, never a division by zero
        return sum(scores) / len(scores)
    return sum(s * w for s, w in zip(scores, weights, strict=True)) / total


def aggregate(
    spec: EvaluationSpec, results: Sequence[EvaluatorResult], record: TraceRecord
) -> CaseEvaluation:
    """The verdict of one trace from its evaluators' results (see the module docstring).

    A trace whose agent did not succeed is ``failed`` when ``require_success`` (the default
    rules of the earlier tool), whatever its evaluators say.
    """
    base = {"threshold": spec.threshold, "method": spec.method, "evaluators": list(results)}
    if spec.require_success and not record.success:
        return CaseEvaluation(
            verdict="failed", reason=f"the agent did not succeed ({record.status})", **base
        )
    counted = [r for r in results if r.status in (*_SCORED, "unscored")]
    # A result's score, or None while unknown: decided once, by status, not by model equality.
    known = [r.score if r.status in _SCORED else None for r in counted]
    scored = [r for r, value in zip(counted, known, strict=True) if value is not None]
    unscored = [r for r, value in zip(counted, known, strict=True) if value is None]
    if not counted:
        return CaseEvaluation(verdict="skipped", reason="no evaluator applied", **base)
    required_failed = [r.name for r in results if r.name in spec.required and r.status == "failed"]
    required_open = [r.name for r in unscored if r.name in spec.required]
    # The lowest and highest score the case could have had, were the unscored known.
    low = _combine(counted, [0.0 if v is None else v for v in known], spec.method)
    high = _combine(counted, [1.0 if v is None else v for v in known], spec.method)
    values = [v for v in known if v is not None]
    score = _combine(scored, values, spec.method) if scored else None
    if required_failed:
        return CaseEvaluation(
            verdict="failed",
            score=score,
            reason=f"required evaluator(s) failed: {', '.join(required_failed)}",
            **base,
        )
    if high < spec.threshold:
        reason = f"score {_fmt(score)} < threshold {spec.threshold:g}"
        if unscored:
            reason += f" (even if {_names(unscored)} had scored full marks)"
        return CaseEvaluation(verdict="failed", score=score, reason=reason, **base)
    if low >= spec.threshold and not required_open:
        reason = f"score {_fmt(score)} >= threshold {spec.threshold:g}"
        if unscored:
            reason += f" (whatever {_names(unscored)} would have scored)"
        return CaseEvaluation(verdict="passed", score=score, reason=reason, **base)
    return CaseEvaluation(
        verdict="unscored",
        score=score,
        reason=f"no verdict: {_names(unscored)} could not score, and the case passes or "
        "fails depending on them",
        **base,
    )


def _names(results: Sequence[EvaluatorResult]) -> str:
    return ", ".join(r.name for r in results)


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.2f}"


def _cut(text: str, limit: int = _QUOTE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_evaluation(record: TraceRecord, evaluation: CaseEvaluation) -> str:
    """Readable failure text: the verdict and reason, then each evaluator (failing ones first)
    with its score and reason, like an assertion diff."""
    lines = [
        f"FluxLoop case {record.case_id} {evaluation.verdict} evaluation: {evaluation.reason}",
        f"  input: {_cut(record.input)!r}",
        f"  persona: {record.persona or '-'}, iteration: {record.iteration}",
        f"  output: {_cut(_as_text(record.output))!r}",
    ]
    order = {"failed": 0, "unscored": 1, "passed": 2, "skipped": 3}
    for result in sorted(evaluation.evaluators, key=lambda r: order.get(r.status, 9)):
        lines.extend(_evaluator_lines(result))
    return "\n".join(lines)


def _evaluator_lines(result: EvaluatorResult) -> list[str]:
    what = result.type if result.model is None else f"{result.type} {result.model}"
    if result.status in _SCORED and result.score is not None:
        score = f"score {result.score:.2f}"
        if result.raw_score is not None and result.max_score not in (None, 1.0):
            score += f" ({result.raw_score:g}/{result.max_score:g})"
    elif result.status == "unscored":
        score = f"unscored ({result.unscored_reason or 'unknown'})"
    else:
        score = result.status
    cached = ", cached" if result.cached else ""
    head = f"  {_MARK[result.status]:<8} {result.name} ({what}, weight {result.weight:g}{cached}): "
    lines = [head + score + (f" - {_cut(result.reason, 300)}" if result.reason else "")]
    for rule in result.rules:
        if rule.passed is False:
            lines.append(f"             - {rule.check}: {_cut(rule.reason)}")
    for item in result.evidence[:3]:
        turn = item.get("turn")
        quote = _cut(str(item.get("quote", "")), 100)
        lines.append(
            f"             evidence{f' (turn {turn})' if turn is not None else ''}: {quote!r}"
        )
    return lines


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False, default=str)
