"""The evaluation plan: every ``evaluation.yaml`` layout compiled into one, checked up front.

Users' files come in the layouts the earlier FluxLoop releases wrote (see
``docs/evaluation.md``): ``evaluators`` + ``aggregate`` + ``limits`` + ``success_criteria``
(all versions), the 0.2.21-0.2.29 blocks (``additional_analysis``, ``report``,
``advanced.statistical_tests|outliers|alerts``) and the 0.2.36 layout (``metrics``,
``efficiency``, ``advanced.llm_judge|llm_concurrency|llm_retries|filters|overall_success``).
:func:`compile_evaluation` turns any of them into one :class:`EvaluationSpec`, and reports
every problem at once (unknown checks with a suggestion, missing fields, unknown template
placeholders, an unparseable gate, a judge without an API key) before any case runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError
from .gates import Gate, parse_gate
from .judge import JudgeSettings, judge_api_key
from .judge_prompt import BUILTIN_RUBRICS, DEFAULT_TEMPLATE, check_template
from .rules import check_rule_config
from .targets import lookup_path

if TYPE_CHECKING:
    from ..config.loader import LoadedConfig
    from ..config.models import EvaluationConfig, Evaluator, Rule
    from ..plan.cases import Case

__all__ = ["DEFAULT_JUDGE_MODEL", "EvaluationSpec", "RuleEvaluatorSpec", "compile_evaluation"]

#: The judge model when neither the evaluator nor ``advanced.llm_judge`` names one.
DEFAULT_JUDGE_MODEL = "gpt-4o-mini"
#: The earlier tool's alert metric names -> gate metrics (percentages stay percentages).
_ALERT_METRICS = {
    "error_rate": "error_rate",
    "success_rate": "success_rate",
    "avg_response_time": "avg_latency_ms",
    "avg_latency_ms": "avg_latency_ms",
    "p95_response_time": "p95_latency_ms",
    "p95_latency_ms": "p95_latency_ms",
    "max_response_time": "max_latency_ms",
    "max_latency_ms": "max_latency_ms",
    "tokens_per_case": "tokens_per_case",
    "flaky": "flaky",
    "unscored": "unscored",
}
_PERCENT_METRICS = frozenset({"error_rate", "success_rate"})
_TOOL_CALLING_JUDGED = (
    "appropriate_selection",
    "correct_parameters",
    "proper_timing",
    "handles_failures",
)


@dataclass(frozen=True)
class RuleEvaluatorSpec:
    """A ``rule_based`` evaluator, ready to run."""

    name: str
    rules: tuple[Rule, ...]
    weight: float = 1.0
    pass_score: float | None = None
    type: Literal["rule_based"] = "rule_based"


EvaluatorSpec = RuleEvaluatorSpec | JudgeSettings


@dataclass(frozen=True)
class EfficiencySpec:
    """One measured figure whose outliers are reported (0.2.36 ``efficiency``,
    ``additional_analysis.performance.detect_outliers``, ``advanced.outliers``)."""

    metric: Literal["latency", "output_tokens", "conversation_depth"]
    mode: Literal["statistical", "absolute"] = "statistical"
    std_multiplier: float = 2.0
    absolute_threshold: float | None = None


@dataclass(frozen=True)
class MetricSpec:
    """A 0.2.36 ``metrics`` entry: judged per trace; its pass rate is rated good / fair / poor."""

    name: str
    good: float | None = None
    fair: float | None = None


@dataclass
class EvaluationSpec:
    """What to evaluate on each trace and on the run."""

    evaluators: list[EvaluatorSpec] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    method: Literal["weighted_sum", "average"] = "weighted_sum"
    threshold: float = 0.5
    by_persona: bool = False
    focus_personas: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    """Evaluators that must pass on their own (``success_criteria.quality``)."""
    require_success: bool = True
    """A trace whose agent failed is a failed case (``overall_success.use_default_rules``)."""
    sample_rate: float = 1.0
    max_llm_calls: int | None = None
    max_tokens: int | None = None
    concurrency: int = 4
    cache_path: Path | None = None
    gates: list[Gate] = field(default_factory=list)
    alerts: list[Gate] = field(default_factory=list)
    ks: tuple[int, ...] = (1,)
    confidence: float = 0.95
    filter_personas: tuple[str, ...] = ()
    include_trace_ids: tuple[str, ...] = ()
    exclude_trace_ids: tuple[str, ...] = ()
    efficiency: list[EfficiencySpec] = field(default_factory=list)
    outlier_handling: Literal["remove", "analyze_separately", "include"] = "include"
    persona_gap: bool = False
    metrics: list[MetricSpec] = field(default_factory=list)
    categorize_failures: bool = False
    trend_analysis: bool = False
    tool_calls_must_succeed: bool = False
    baseline_path: Path | None = None
    evaluation_goal: str | None = None
    report_file: str | None = None
    source: Path | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def judges(self) -> list[JudgeSettings]:
        """The ``llm_judge`` evaluators."""
        return [e for e in self.evaluators if isinstance(e, JudgeSettings)]

    @property
    def evaluates_traces(self) -> bool:
        """Whether any evaluator or per-trace criterion runs on each trace."""
        return bool(self.evaluators or self.tool_calls_must_succeed)


def compile_evaluation(
    cfg: LoadedConfig,
    *,
    gates: Sequence[str] = (),
    cases: Sequence[Case] = (),
    check_keys: bool = True,
    evaluate: bool = True,
) -> EvaluationSpec:
    """The evaluation plan of ``cfg`` plus command-line ``gates``.

    ``evaluate=False`` (``--fluxloop-no-evaluate``) leaves evaluation.yaml out (a notice says
    so when it has settings); the command-line gates still apply.

    ``cases`` are checked for every ``similarity`` rule's ``expected_path`` (at least one case
    must have it); ``check_keys`` resolves every enabled judge's API key now.

    Raises:
        ConfigError: every problem found, at once, each naming the file and key.
    """
    source = cfg.sources.get("evaluation", cfg.config_path)
    spec = EvaluationSpec(source=source if cfg.evaluation is not None else None)
    problems: list[str] = []
    evaluation = cfg.evaluation
    if evaluation is not None and not evaluate:
        if evaluation.model_fields_set:
            spec.notices.append(
                f"{source}: not evaluated in this run (--fluxloop-no-evaluate); evaluate the "
                "results later with `fluxloop evaluate experiment DIR`"
            )
        evaluation = None
    if evaluation is not None:
        _compile_file(spec, evaluation, cfg, problems, cases=cases, check_keys=check_keys)
    # The file's problems are named after the file; the command line's after the option.
    problems = [f"{source}: {problem}" for problem in problems]
    for text in gates:
        gate = _gate(text, "--fluxloop-gate (--gate)", problems)
        if gate is not None:
            spec.gates.append(gate)
    if evaluation is None or not evaluation.reliability_k:
        iterations = max(1, int(cfg.simulation.iterations))
        spec.ks = tuple(sorted({1, *([3] if iterations >= 3 else []), iterations}))
    for gate in spec.gates:
        if gate.k is not None and gate.k not in spec.ks:
            spec.ks = tuple(sorted({*spec.ks, gate.k}))
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        listed = "\n".join(f"- {problem}" for problem in problems)
        raise ConfigError(f"{len(problems)} evaluation problems:\n{listed}")
    return spec


def _compile_file(
    spec: EvaluationSpec,
    evaluation: EvaluationConfig,
    cfg: LoadedConfig,
    problems: list[str],
    *,
    cases: Sequence[Case],
    check_keys: bool,
) -> None:
    advanced = evaluation.advanced
    judge_defaults = advanced.llm_judge if advanced is not None else None
    spec.evaluation_goal = evaluation.evaluation_goal.text if evaluation.evaluation_goal else None
    aggregate = evaluation.aggregate
    spec.method = aggregate.method
    spec.threshold = aggregate.threshold
    spec.by_persona = aggregate.by_persona
    limits = evaluation.limits
    spec.sample_rate = limits.sample_rate
    spec.max_llm_calls = limits.max_llm_calls
    spec.max_tokens = limits.max_tokens
    concurrency = limits.concurrency or (advanced.llm_concurrency if advanced else None)
    spec.concurrency = concurrency or 4
    retries = advanced.llm_retries if advanced is not None else None
    common: dict[str, Any] = {
        "timeout_seconds": limits.timeout_seconds or 60.0,
        "evaluation_goal": spec.evaluation_goal,
        "service_context": cfg.service_context,
    }
    if retries is not None:
        common["transport_retries"] = retries
    keys: dict[str | None, str] = {}

    def key_for(explicit: str | None, where: str) -> str:
        if not check_keys:
            return explicit or ""
        if explicit not in keys:
            try:
                keys[explicit] = judge_api_key(explicit)
            except ConfigError as exc:
                problems.append(
                    f"{where}: {exc} Or set enabled: false, or run the agent alone with "
                    "--no-evaluate (pytest: --fluxloop-no-evaluate)."
                )
                keys[explicit] = ""
        return keys[explicit]

    spec.source = cfg.sources.get("evaluation", cfg.config_path)
    for index, evaluator in enumerate(evaluation.evaluators):
        where = f"evaluators[{index}] ({evaluator.name})"
        if not evaluator.enabled:
            spec.disabled.append(evaluator.name)
            continue
        if evaluator.type == "rule_based":
            _rule_evaluator(spec, evaluator, where, problems, cfg, cases)
            continue
        template = evaluator.prompt_template or DEFAULT_TEMPLATE
        for problem in check_template(template):
            problems.append(f"{where}.prompt_template: {problem}")
        parser = evaluator.parser or "structured"
        if parser not in ("structured", "first_number_1_10", "json_score", "regex_score"):
            problems.append(
                f"{where}.parser: unknown parser {parser!r}; use structured (default), "
                "first_number_1_10, json_score or regex_score"
            )
        if parser == "regex_score" and not evaluator.parser_pattern:
            problems.append(f"{where}: parser regex_score needs parser_pattern")
        model = evaluator.model or (judge_defaults.model if judge_defaults else None)
        max_score = evaluator.max_score or (10.0 if parser == "first_number_1_10" else 1.0)
        spec.evaluators.append(
            JudgeSettings(
                name=evaluator.name,
                model=model or DEFAULT_JUDGE_MODEL,
                prompt_template=template,
                max_score=max_score,
                parser=parser,
                parser_pattern=evaluator.parser_pattern,
                pass_score=evaluator.pass_score,
                weight=evaluator.weight,
                temperature=_first(
                    evaluator.temperature, judge_defaults.temperature if judge_defaults else None
                ),
                max_tokens=_first(
                    evaluator.max_tokens, judge_defaults.max_tokens if judge_defaults else None
                ),
                model_parameters=dict(evaluator.model_parameters or {}),
                api_key=key_for(evaluator.api_key, where),
                base_url=evaluator.base_url,
                target=evaluator.target,
                **common,
            )
        )
    _legacy_metrics(spec, evaluation, judge_defaults, common, key_for)
    names = [e.name for e in spec.evaluators]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"evaluators: names must be unique; repeated: {', '.join(duplicates)}")
    _criteria(spec, evaluation, problems, names)
    _analysis(spec, evaluation, cfg, problems)
    for index, text in enumerate(evaluation.gates):
        gate = _gate(text, f"gates[{index}]", problems)
        if gate is not None:
            spec.gates.append(gate)
    if evaluation.reliability_k:
        spec.ks = tuple(sorted(set(evaluation.reliability_k)))
    smallest = min((1 + j.transport_retries for j in spec.judges), default=0)
    if spec.max_llm_calls is not None and spec.judges and spec.max_llm_calls < smallest:
        spec.notices.append(
            f"limits.max_llm_calls ({spec.max_llm_calls}) is below what one judgement may "
            f"take with its retries ({smallest} calls): no judge will be called and every "
            "judge result will be unscored (budget); raise it or lower advanced.llm_retries"
        )
    if spec.judges:
        from .judge_cache import resolve_cache_path

        try:
            spec.cache_path = resolve_cache_path(cfg.project_root, limits.cache)
        except ConfigError as exc:
            problems.append(str(exc))


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _rule_evaluator(
    spec: EvaluationSpec,
    evaluator: Evaluator,
    where: str,
    problems: list[str],
    cfg: LoadedConfig,
    cases: Sequence[Case],
) -> None:
    rules = evaluator.rules or []
    if not rules:
        problems.append(f"{where}: a rule_based evaluator needs rules: [{{check: ...}}]")
        return
    for position, rule in enumerate(rules):
        for problem in check_rule_config(rule):
            problems.append(f"{where}.rules[{position}]: {problem}")
        path = rule.expected_path if rule.check == "similarity" else None
        if path and cases and not any(_case_has(case, path) for case in cases):
            # A warning, not an error: the earlier releases' generated templates carry this
            # rule while their generated inputs never hold the expected text.
            spec.notices.append(
                f"{spec.source}: {where}.rules[{position}]: expected_path {path!r} is in none "
                "of the cases, so this similarity rule applies to no trace (it is left out, "
                "never scored 0); put the expected text in each input's metadata (e.g. "
                "metadata: {expected: ...}) and use expected_path: metadata.expected"
            )
    spec.evaluators.append(
        RuleEvaluatorSpec(
            name=evaluator.name,
            rules=tuple(rules),
            weight=evaluator.weight,
            pass_score=evaluator.pass_score,
        )
    )


def _case_has(case: Case, path: str) -> bool:
    from ..records import TraceRecord, utcnow

    now = utcnow()
    probe = TraceRecord(
        trace_id="probe",
        case_id=case.case_id,
        iteration=case.iteration,
        persona=case.persona,
        input=case.input,
        input_index=case.input_index,
        duration_ms=0.0,
        success=True,
        status="success",
        started_at=now,
        completed_at=now,
        metadata=dict(case.metadata),
    )
    found, value = lookup_path(probe, path)
    return found and value is not None


def _legacy_metrics(
    spec: EvaluationSpec,
    evaluation: EvaluationConfig,
    judge_defaults: Any,
    common: dict[str, Any],
    key_for: Any,
) -> None:
    """0.2.36 ``metrics``: each enabled one is an LLM judge with a built-in rubric."""
    metrics = evaluation.metrics
    if metrics is None:
        return
    for name in type(metrics).model_fields:
        setting = getattr(metrics, name)
        if setting is None or not setting.enabled:
            continue
        thresholds = setting.thresholds
        spec.metrics.append(
            MetricSpec(
                name=name,
                good=thresholds.good if thresholds else None,
                fair=thresholds.fair if thresholds else None,
            )
        )
        model = judge_defaults.model if judge_defaults is not None else None
        spec.evaluators.append(
            JudgeSettings(
                name=name,
                model=model or DEFAULT_JUDGE_MODEL,
                prompt_template=BUILTIN_RUBRICS[name],
                max_score=1.0,
                parser="structured",
                parser_pattern=None,
                pass_score=None,
                weight=1.0,
                temperature=judge_defaults.temperature if judge_defaults is not None else None,
                max_tokens=judge_defaults.max_tokens if judge_defaults is not None else None,
                model_parameters={},
                api_key=key_for(None, f"metrics.{name}"),
                base_url=None,
                target=None,
                **common,
            )
        )


def _criteria(
    spec: EvaluationSpec, evaluation: EvaluationConfig, problems: list[str], names: list[str]
) -> None:
    """``success_criteria`` and ``advanced.overall_success``."""
    criteria = evaluation.success_criteria
    advanced = evaluation.advanced
    overall = advanced.overall_success if advanced is not None else None
    if overall is not None:
        spec.require_success = overall.use_default_rules
        if overall.custom_rules:
            problems.append(
                "advanced.overall_success.custom_rules: custom rules are not supported; express "
                "them as rule_based evaluators and gates (docs/evaluation.md)"
            )
    if criteria is None:
        return
    performance = criteria.performance
    if performance is not None:
        if performance.all_traces_successful:
            spec.gates.append(parse_gate("error_rate<=0"))
        for block, metric in (
            (performance.avg_response_time, "avg_latency_ms"),
            (performance.max_response_time, "max_latency_ms"),
        ):
            if block is not None and block.enabled:
                if block.threshold_ms is None:
                    problems.append(f"success_criteria.performance: {metric} needs threshold_ms")
                else:
                    spec.gates.append(parse_gate(f"{metric}<={block.threshold_ms:g}"))
        rate = performance.error_rate
        if rate is not None and rate.enabled:
            if rate.threshold_percent is None:
                problems.append("success_criteria.performance.error_rate needs threshold_percent")
            else:
                spec.gates.append(parse_gate(f"error_rate<={rate.threshold_percent:g}%"))
    required = []
    for name, wanted in criteria.quality.items():
        if not wanted:
            continue
        if name not in names:
            problems.append(
                f"success_criteria.quality.{name}: no enabled evaluator is named {name!r} "
                f"(evaluators: {', '.join(names) or 'none'})"
            )
        required.append(name)
    spec.required = tuple(required)
    tool_calling = criteria.functionality.get("tool_calling")
    if isinstance(tool_calling, dict) and tool_calling.get("enabled"):
        unknown = sorted(
            set(tool_calling) - {"enabled", "all_calls_successful", *_TOOL_CALLING_JUDGED}
        )
        if unknown:
            problems.append(
                f"success_criteria.functionality.tool_calling: unknown key(s) {', '.join(unknown)}"
            )
        spec.tool_calls_must_succeed = bool(tool_calling.get("all_calls_successful", True))
        judged = [k for k in _TOOL_CALLING_JUDGED if tool_calling.get(k)]
        if judged:
            spec.notices.append(
                "success_criteria.functionality.tool_calling: "
                f"{', '.join(judged)} are judgements, not checks: enable the "
                "tool_usage_appropriateness metric or an llm_judge evaluator for them; only "
                "all_calls_successful is checked on each trace"
            )
    other = sorted(set(criteria.functionality) - {"tool_calling"})
    if other:
        problems.append(
            f"success_criteria.functionality: unknown block(s) {', '.join(other)}; "
            "only tool_calling is known"
        )


def _analysis(
    spec: EvaluationSpec, evaluation: EvaluationConfig, cfg: LoadedConfig, problems: list[str]
) -> None:
    """Run-level analysis: statistics, outliers, alerts, filters, persona focus, baseline."""
    advanced = evaluation.advanced
    if advanced is not None:
        stats = advanced.statistical_tests
        if stats is not None:
            spec.confidence = stats.confidence_interval
        outliers = advanced.outliers
        if outliers is not None and outliers.detection:
            spec.outlier_handling = outliers.handling
            _add_efficiency(spec, EfficiencySpec("latency"))
        alerts = advanced.alerts
        if alerts is not None and alerts.enabled:
            for index, condition in enumerate(alerts.conditions):
                metric = _ALERT_METRICS.get(condition.metric)
                if metric is None:
                    problems.append(
                        f"advanced.alerts.conditions[{index}].metric: unknown metric "
                        f"{condition.metric!r}; use one of {', '.join(sorted(_ALERT_METRICS))}"
                    )
                    continue
                # An alert fires when its condition holds; as a gate it passes otherwise.
                negated = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}[condition.operator]
                suffix = "%" if metric in _PERCENT_METRICS else ""
                spec.alerts.append(parse_gate(f"{metric}{negated}{condition.threshold:g}{suffix}"))
        filters = advanced.filters
        if filters is not None:
            spec.filter_personas = tuple(filters.personas)
            spec.include_trace_ids = tuple(filters.include_trace_ids)
            spec.exclude_trace_ids = tuple(filters.exclude_trace_ids)
    efficiency = evaluation.efficiency
    if efficiency is not None:
        for metric in ("latency", "output_tokens", "conversation_depth"):
            setting = getattr(efficiency, metric)
            if setting is None or not setting.enabled:
                continue
            if setting.outlier_mode == "absolute" and setting.absolute_threshold is None:
                problems.append(
                    f"efficiency.{metric}: outlier_mode absolute needs absolute_threshold"
                )
                continue
            _add_efficiency(
                spec,
                EfficiencySpec(
                    metric,  # type: ignore[arg-type]
                    mode=setting.outlier_mode,
                    std_multiplier=setting.std_multiplier or 2.0,
                    absolute_threshold=setting.absolute_threshold,
                ),
            )
        spec.persona_gap = bool(efficiency.persona_gap and efficiency.persona_gap.enabled)
    analysis = evaluation.additional_analysis
    if analysis is not None:
        if analysis.persona is not None and analysis.persona.enabled:
            spec.by_persona = True
            spec.focus_personas = tuple(analysis.persona.focus_personas)
        performance = analysis.performance
        if performance is not None:
            if performance.detect_outliers:
                _add_efficiency(spec, EfficiencySpec("latency"))
            spec.trend_analysis = performance.trend_analysis
        failures = analysis.failures
        if failures is not None and failures.enabled:
            spec.categorize_failures = True
        comparison = analysis.comparison
        if comparison is not None and comparison.enabled:
            if not comparison.baseline_path:
                problems.append("additional_analysis.comparison: enabled needs baseline_path")
            else:
                path = cfg.resolve(comparison.baseline_path)
                if not path.is_file():
                    problems.append(
                        f"additional_analysis.comparison.baseline_path: {path} does not exist "
                        "(point it at an earlier run's summary.json)"
                    )
                spec.baseline_path = path
    output = evaluation.output
    if output is not None and output.summary_file:
        spec.report_file = output.summary_file
    unused = sorted((output.model_fields_set if output is not None else set()) - {"summary_file"})
    report = evaluation.report
    if report is not None:
        unused += [f"report.{name}" for name in sorted(report.model_fields_set)]
    if unused:
        spec.notices.append(
            f"{', '.join(f'output.{u}' if '.' not in u else u for u in unused)}: these shape "
            "a report this version does not write yet (the HTML and deep-analysis reports); "
            "`fluxloop evaluate experiment` writes summary.json, per_trace.jsonl and report.md"
        )


def _add_efficiency(spec: EvaluationSpec, item: EfficiencySpec) -> None:
    if all(existing.metric != item.metric for existing in spec.efficiency):
        spec.efficiency.append(item)


def _gate(text: str, where: str, problems: list[str]) -> Gate | None:
    try:
        return parse_gate(text)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None
