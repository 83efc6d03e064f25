"""The evaluator of one trace: rules, then (sampled) judges, then the verdict.

One :class:`CaseEvaluator` serves every case of a run in one process (thread-safe: the
judges share a concurrency cap, a budget and a cache). It never raises for a trace: a
problem inside an evaluator makes that evaluator ``unscored`` with the reason.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING

from ..records import EvaluatorResult, RuleResult, TraceRecord
from ..sdk.usage import add_role_usage
from .rules import evaluate_rule_based
from .targets import tool_calls
from .verdict import aggregate

if TYPE_CHECKING:
    from ..records import CaseEvaluation
    from .judge import JudgeRuntime, LLMJudge
    from .spec import EvaluationSpec

__all__ = ["CaseEvaluator", "sampled"]


def sampled(case_id: str, rate: float) -> bool:
    """Whether LLM judges see ``case_id`` at ``limits.sample_rate`` ``rate``.

    Decided by the case id alone, so a re-run samples the same cases (and its judge cache
    hits) and every xdist worker agrees.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(case_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


class CaseEvaluator:
    """Evaluates traces as ``spec`` says.

    Args:
        spec: the compiled evaluation plan.
        budget_share: the share of ``limits.max_llm_calls`` / ``max_tokens`` this process may
            spend (1 / the number of xdist workers), so the run as a whole stays within them.
    """

    def __init__(self, spec: EvaluationSpec, *, budget_share: float = 1.0) -> None:
        self.spec = spec
        self.budget_share = budget_share
        self._lock = threading.Lock()
        self._runtime: JudgeRuntime | None = None
        self._judges: dict[str, LLMJudge] = {}

    @property
    def runtime(self) -> JudgeRuntime | None:
        """The judges' shared state, once a judge ran (None before, or without judges)."""
        return self._runtime

    def _judge(self, name: str) -> LLMJudge:
        with self._lock:
            judge = self._judges.get(name)
            if judge is not None:
                return judge
            from .budget import JudgeBudget
            from .judge import JudgeRuntime, LLMJudge
            from .judge_cache import JudgeCache

            if self._runtime is None:
                spec = self.spec
                self._runtime = JudgeRuntime(
                    concurrency=spec.concurrency,
                    budget=JudgeBudget(
                        _share(spec.max_llm_calls, self.budget_share),
                        _share(spec.max_tokens, self.budget_share),
                    ),
                    cache=JudgeCache(spec.cache_path) if spec.cache_path is not None else None,
                )
            settings = next(j for j in self.spec.judges if j.name == name)
            judge = self._judges[name] = LLMJudge(settings, self._runtime)
            return judge

    def skip_reason(self, record: TraceRecord) -> str | None:
        """Why ``record`` is not evaluated at all (``advanced.filters``), or None."""
        spec = self.spec
        if spec.filter_personas and record.persona not in spec.filter_personas:
            return f"persona {record.persona!r} is not in advanced.filters.personas"
        if spec.include_trace_ids and not (
            {record.trace_id, record.case_id} & set(spec.include_trace_ids)
        ):
            return "not in advanced.filters.include_trace_ids"
        if {record.trace_id, record.case_id} & set(spec.exclude_trace_ids):
            return "in advanced.filters.exclude_trace_ids"
        return None

    def evaluate(self, record: TraceRecord) -> CaseEvaluation | None:
        """The evaluation of ``record`` (None when nothing evaluates traces). Judge token
        usage is added to ``record.token_usage`` under the role ``judge``."""
        spec = self.spec
        if not spec.evaluates_traces:
            return None
        skip = self.skip_reason(record)
        if skip is not None:
            from ..records import CaseEvaluation

            return CaseEvaluation(
                verdict="skipped", reason=skip, threshold=spec.threshold, method=spec.method
            )
        answered = record.success
        judge_skip = None
        if not answered:
            judge_skip = "the agent did not answer"
        elif not sampled(record.case_id, spec.sample_rate):
            judge_skip = f"not sampled (limits.sample_rate {spec.sample_rate:g})"
        results: list[EvaluatorResult] = []
        for evaluator in spec.evaluators:
            if evaluator.type == "rule_based":
                results.append(_safe_rules(evaluator.name, evaluator, record))
            elif judge_skip is not None:
                results.append(_skipped(evaluator.name, judge_skip, evaluator.weight))
            else:
                results.append(self._run_judge(evaluator.name, record))
        if spec.tool_calls_must_succeed:
            results.append(_tool_calls_result(record))
        return aggregate(spec, results, record)

    def _run_judge(self, name: str, record: TraceRecord) -> EvaluatorResult:
        outcome = self._judge(name).judge(record)
        if outcome.calls or outcome.usage is not None:
            usage = outcome.usage
            raw = {
                "calls": outcome.calls,
                "calls_without_usage": outcome.calls if usage is None else 0,
                "prompt_tokens": usage.prompt_tokens if usage is not None else None,
                "completion_tokens": usage.completion_tokens if usage is not None else None,
                "total_tokens": usage.total_tokens if usage is not None else None,
            }
            record.token_usage = add_role_usage(record.token_usage, {"judge": raw})
        return outcome.result

    def apply(self, record: TraceRecord) -> TraceRecord:
        """Evaluate ``record`` and store the result on it (``record.evaluation``)."""
        record.evaluation = self.evaluate(record)
        return record


def _share(limit: int | None, share: float) -> int | None:
    if limit is None:
        return None
    return max(0, int(limit * share))


def _skipped(name: str, reason: str, weight: float) -> EvaluatorResult:
    return EvaluatorResult(
        name=name, type="llm_judge", status="skipped", reason=reason, weight=weight
    )


def _safe_rules(name: str, evaluator: object, record: TraceRecord) -> EvaluatorResult:
    from .spec import RuleEvaluatorSpec

    assert isinstance(evaluator, RuleEvaluatorSpec)
    try:
        return evaluate_rule_based(
            name,
            list(evaluator.rules),
            record,
            weight=evaluator.weight,
            pass_score=evaluator.pass_score,
        )
    except Exception as exc:  # an evaluator's bug must not lose the trace
        return EvaluatorResult(
            name=name,
            type="rule_based",
            status="unscored",
            unscored_reason="error",
            reason=f"{type(exc).__name__}: {exc}",
            weight=evaluator.weight,
        )


def _tool_calls_result(record: TraceRecord) -> EvaluatorResult:
    """``success_criteria.functionality.tool_calling.all_calls_successful`` on one trace."""
    calls = tool_calls(record)
    ended = {
        o.observation_id: o
        for o in record.observations
        if o.kind == "tool" and o.type == "span_end" and o.observation_id
    }
    failed = [
        c.name
        for c in calls
        if c.error or (c.observation_id in ended and ended[c.observation_id].error)
    ]
    passed = not failed
    rule = RuleResult(
        check="tool_calls_successful",
        passed=passed if calls else None,
        score=(1.0 if passed else 0.0) if calls else None,
        reason=f"{len(calls)} tool call(s)"
        + (f"; failed: {', '.join(failed)}" if failed else ", none failed"),
    )
    if not calls:
        return EvaluatorResult(
            name="tool_calling",
            type="rule_based",
            status="skipped",
            reason="no tool calls",
            rules=[rule],
        )
    return EvaluatorResult(
        name="tool_calling",
        type="rule_based",
        status="passed" if passed else "failed",
        score=rule.score,
        reason="" if passed else rule.reason,
        rules=[rule],
    )
