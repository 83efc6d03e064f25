"""evaluation.yaml, in every layout, compiled into one plan with every problem at once:
``pytest_fluxloop.evaluation.spec.compile_evaluation`` on configs read by ``load_config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.config_helpers import EVALUATION, SIMULATION, write_project, yaml_text

from pytest_fluxloop.config import load_config
from pytest_fluxloop.config.loader import LoadedConfig
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.evaluation.judge import JudgeSettings
from pytest_fluxloop.evaluation.judge_prompt import BUILTIN_RUBRICS, DEFAULT_TEMPLATE
from pytest_fluxloop.evaluation.spec import (
    DEFAULT_JUDGE_MODEL,
    EfficiencySpec,
    MetricSpec,
    RuleEvaluatorSpec,
    compile_evaluation,
)
from pytest_fluxloop.plan.cases import Case

KEY = "sk-judge-test-0123456789abcdefghij"

RULES = {
    "name": "answered",
    "type": "rule_based",
    "rules": [{"check": "output_not_empty"}],
}


def judge(name: str = "helpful", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "llm_judge",
        "prompt_template": "Question: {input}\nAnswer: {output}\nScore it.",
        **fields,
    }


def simulation(iterations: int = 1) -> str:
    return f"name: exp\niterations: {iterations}\nrunner:\n  target: 'my_agent:run'\n"


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("FLUXLOOP_JUDGE_API_KEY", raising=False)


def loaded(tmp_path: Path, evaluation: Any = None, iterations: int = 1) -> LoadedConfig:
    files = {SIMULATION: simulation(iterations)}
    if evaluation is not None:
        files[EVALUATION] = evaluation if isinstance(evaluation, str) else yaml_text(evaluation)
    return load_config(write_project(tmp_path, files))


def problems_of(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [line[2:] for line in str(exc.value).splitlines() if line.startswith("- ")]


# ------------------------------------------------------------------------ basics


def test_no_evaluation_file_is_an_empty_plan(tmp_path: Path) -> None:
    spec = compile_evaluation(loaded(tmp_path))
    assert spec.evaluators == [] and spec.gates == [] and spec.notices == []
    assert spec.source is None
    assert not spec.evaluates_traces
    assert spec.ks == (1,)


def test_a_plain_file_compiles_with_its_aggregate_and_limits(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        {
            "evaluation_goal": "Short and right",
            "evaluators": [
                {**RULES, "weight": 2, "pass_score": 0.5},
                {**RULES, "name": "off", "enabled": False},
            ],
            "aggregate": {"method": "average", "threshold": 0.8, "by_persona": True},
            "limits": {"sample_rate": 0.25, "max_llm_calls": 10, "max_tokens": 999},
        },
    )
    spec = compile_evaluation(cfg)
    assert spec.source == tmp_path / EVALUATION
    [rules] = spec.evaluators
    assert isinstance(rules, RuleEvaluatorSpec)
    assert (rules.name, rules.weight, rules.pass_score) == ("answered", 2.0, 0.5)
    assert [r.check for r in rules.rules] == ["output_not_empty"]
    assert spec.disabled == ["off"]
    assert (spec.method, spec.threshold, spec.by_persona) == ("average", 0.8, True)
    assert (spec.sample_rate, spec.max_llm_calls, spec.max_tokens) == (0.25, 10, 999)
    assert spec.evaluation_goal == "Short and right"
    assert spec.cache_path is None  # no judge, no cache
    assert spec.evaluates_traces


# ------------------------------------------------------------ every problem at once


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        {
            "evaluators": [
                RULES,
                {**RULES},  # a second "answered"
                judge("typo", prompt_template="Answer: {ouput}"),
                judge("regex", parser="regex_score"),
                judge("odd_parser", parser="first_letter"),
                {"name": "empty", "type": "rule_based", "rules": []},
            ],
            "gates": ["pass^3>=0.8", "speed>9"],
            "success_criteria": {"quality": {"ghost": True}},
            "advanced": {"overall_success": {"custom_rules": [{"if": "x"}]}},
        },
    )
    with pytest.raises(ConfigError) as exc:
        compile_evaluation(cfg, gates=["nonsense"])
    message = str(exc.value)
    source = str(tmp_path / EVALUATION)
    problems = problems_of(exc)
    assert message.startswith(f"{len(problems)} evaluation problems:\n")
    # The file's problems are named after the file; the command line's after the option.
    expected = [
        f"{source}: evaluators[2] (typo).prompt_template: unknown placeholder {{ouput}} "
        "(did you mean {output}?)",
        f"{source}: evaluators[2] (typo): the openai judge needs an API key",
        f"{source}: evaluators[3] (regex): parser regex_score needs parser_pattern",
        f"{source}: evaluators[4] (odd_parser).parser: unknown parser 'first_letter'",
        f"{source}: evaluators[5] (empty): a rule_based evaluator needs rules",
        f"{source}: evaluators: names must be unique; repeated: answered",
        f"{source}: success_criteria.quality.ghost: no enabled evaluator is named 'ghost'",
        f"{source}: advanced.overall_success.custom_rules: custom rules are not supported",
        f"{source}: gates[1]: invalid gate 'speed>9'",
        "--fluxloop-gate (--gate): invalid gate 'nonsense'",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert not any(p.startswith(f"{source}: gates[0]") for p in problems)  # the good gate is fine
    assert len(problems) == len(expected)  # the key is asked for once, not per judge


def test_a_single_problem_is_one_line(tmp_path: Path) -> None:
    cfg = loaded(tmp_path, {"evaluators": [RULES], "gates": ["pass^3=>0.8"]})
    with pytest.raises(ConfigError) as exc:
        compile_evaluation(cfg)
    assert str(exc.value).startswith(f"{tmp_path / EVALUATION}: gates[0]: invalid gate")
    assert "problems" not in str(exc.value).splitlines()[0]


def test_a_bad_command_line_gate_alone_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        compile_evaluation(loaded(tmp_path), gates=["pass^x>=1"])
    text = str(exc.value)
    assert text.startswith("--fluxloop-gate (--gate): ")
    assert "invalid gate 'pass^x>=1'" in text
    assert "evaluation.yaml" not in text


def test_unknown_placeholder_suggests_and_literal_braces_are_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = loaded(
        tmp_path,
        {"evaluators": [judge(prompt_template='{{"json": true}} {input} {persona_descriptio}')]},
    )
    with pytest.raises(ConfigError) as exc:
        compile_evaluation(cfg)
    text = str(exc.value)
    assert "unknown placeholder {persona_descriptio} (did you mean {persona_description}?)" in text
    assert "{json" not in text.split("valid:")[0]  # {{ ... }} is a literal, not a placeholder
    ok = loaded(tmp_path, {"evaluators": [judge(prompt_template='{{"a": 1}} {conversation}')]})
    assert [j.name for j in compile_evaluation(ok).judges] == ["helpful"]


# --------------------------------------------------------------------------- keys


def test_a_judge_without_a_key_is_an_error_naming_where_to_set_one(tmp_path: Path) -> None:
    cfg = loaded(tmp_path, {"evaluators": [RULES, judge()]})
    with pytest.raises(ConfigError) as exc:
        compile_evaluation(cfg)
    text = str(exc.value)
    assert "evaluators[1] (helpful)" in text
    assert "FLUXLOOP_JUDGE_API_KEY" in text and "OPENAI_API_KEY" in text


def test_judge_keys_come_from_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-fallback-0123456789abcdef")
    monkeypatch.setenv("FLUXLOOP_JUDGE_API_KEY", KEY)
    cfg = loaded(
        tmp_path, {"evaluators": [judge("a"), judge("b", api_key="sk-own-key-0123456789abc")]}
    )
    a, b = compile_evaluation(cfg).judges
    assert a.api_key == KEY
    assert b.api_key == "sk-own-key-0123456789abc"


def test_check_keys_false_defers_the_key(tmp_path: Path) -> None:
    cfg = loaded(tmp_path, {"evaluators": [judge("a"), judge("b", api_key="sk-own-abcdefghijkl")]})
    a, b = compile_evaluation(cfg, check_keys=False).judges
    assert a.api_key == ""  # read when the first call is made
    assert b.api_key == "sk-own-abcdefghijkl"


def test_judge_settings_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = loaded(
        tmp_path,
        {
            "evaluators": [
                judge("plain"),
                judge(
                    "legacy",
                    parser="first_number_1_10",
                    model="m-1",
                    temperature=0.4,
                    max_tokens=50,
                    model_parameters={"reasoning": {"effort": "low"}},
                    base_url="http://127.0.0.1:9/v1",
                    pass_score=0.6,
                    weight=2,
                ),
            ],
            "limits": {"timeout_seconds": 12, "concurrency": 3},
        },
    )
    spec = compile_evaluation(cfg)
    plain, legacy = spec.judges
    assert (plain.model, plain.max_score, plain.parser, plain.temperature) == (
        DEFAULT_JUDGE_MODEL,
        1.0,
        "structured",
        0.0,
    )
    assert (legacy.model, legacy.max_score, legacy.temperature, legacy.max_tokens) == (
        "m-1",
        10.0,
        0.4,
        50,
    )
    assert legacy.model_parameters == {"reasoning": {"effort": "low"}}
    assert (legacy.base_url, legacy.pass_score, legacy.weight) == ("http://127.0.0.1:9/v1", 0.6, 2)
    assert plain.timeout_seconds == legacy.timeout_seconds == 12
    assert spec.concurrency == 3
    assert spec.cache_path == tmp_path / ".fluxloop" / "judge_cache.jsonl"


# --------------------------------------------------------------- the 0.2.36 layout


def test_the_0_2_36_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    evaluation = """\
evaluation_goal:
  text: Resolve the user's issue.
metrics:
  task_completion:
    enabled: true
    thresholds: {good: 80, fair: 60}
  hallucination:
    enabled: false
  relevance: {}
efficiency:
  latency: {enabled: true, outlier_mode: statistical, std_multiplier: 3}
  output_tokens: {enabled: true, outlier_mode: absolute, absolute_threshold: 500}
  conversation_depth: {enabled: false}
  persona_gap: {enabled: true}
advanced:
  llm_judge: {model: judge-x, temperature: 0.3, max_tokens: 300}
  llm_concurrency: 7
  llm_retries: 5
  filters:
    personas: [novice]
    include_trace_ids: [t-1]
    exclude_trace_ids: [t-2]
output:
  summary_file: my_report.md
"""
    spec = compile_evaluation(loaded(tmp_path, evaluation))
    assert [j.name for j in spec.judges] == ["task_completion", "relevance"]
    for settings in spec.judges:
        assert isinstance(settings, JudgeSettings)
        assert settings.prompt_template == BUILTIN_RUBRICS[settings.name]
        assert (settings.model, settings.temperature, settings.max_tokens) == ("judge-x", 0.3, 300)
        assert settings.transport_retries == 5
        assert settings.evaluation_goal == "Resolve the user's issue."
        assert settings.api_key == KEY
    assert spec.metrics == [
        MetricSpec("task_completion", good=80, fair=60),
        MetricSpec("relevance", good=None, fair=None),
    ]
    assert spec.efficiency == [
        EfficiencySpec("latency", mode="statistical", std_multiplier=3.0),
        EfficiencySpec("output_tokens", mode="absolute", absolute_threshold=500.0),
    ]
    assert spec.persona_gap
    assert spec.concurrency == 7
    assert spec.filter_personas == ("novice",)
    assert (spec.include_trace_ids, spec.exclude_trace_ids) == (("t-1",), ("t-2",))
    assert spec.report_file == "my_report.md"
    assert spec.notices == []  # summary_file is acted on


def test_explicit_judge_fields_beat_advanced_llm_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = loaded(
        tmp_path,
        {
            "evaluators": [judge("own", model="m-own", temperature=1.0), judge("inherits")],
            "advanced": {"llm_judge": {"model": "m-default", "temperature": 0.5}},
        },
    )
    own, inherits = compile_evaluation(cfg).judges
    assert (own.model, own.temperature) == ("m-own", 1.0)
    assert (inherits.model, inherits.temperature) == ("m-default", 0.5)


def test_an_absolute_outlier_mode_needs_its_threshold(tmp_path: Path) -> None:
    cfg = loaded(tmp_path, {"efficiency": {"latency": {"outlier_mode": "absolute"}}})
    with pytest.raises(ConfigError, match=r"efficiency\.latency: outlier_mode absolute needs"):
        compile_evaluation(cfg)


# -------------------------------------------------------------- the 0.2.21 blocks


LEGACY_BLOCKS: dict[str, Any] = {
    "evaluators": [RULES],
    "success_criteria": {
        "performance": {
            "all_traces_successful": True,
            "avg_response_time": {"enabled": True, "threshold_ms": 2000},
            "max_response_time": {"enabled": False, "threshold_ms": 10},
            "error_rate": {"enabled": True, "threshold_percent": 5},
        },
        "quality": {"answered": True, "not_there_but_off": False},
    },
    "advanced": {
        "statistical_tests": {"enabled": True, "confidence_interval": 0.9},
        "outliers": {"detection": True, "handling": "remove"},
        "alerts": {
            "enabled": True,
            "conditions": [
                {"metric": "error_rate", "threshold": 10, "operator": ">"},
                {"metric": "avg_response_time", "threshold": 3000, "operator": ">="},
            ],
        },
    },
    "additional_analysis": {
        "persona": {"enabled": True, "focus_personas": ["novice"]},
        "performance": {"detect_outliers": True, "trend_analysis": True},
        "failures": {"enabled": True, "categorize_causes": True},
    },
}


def test_the_0_2_21_blocks_are_acted_on(tmp_path: Path) -> None:
    spec = compile_evaluation(loaded(tmp_path, LEGACY_BLOCKS))
    assert [g.text for g in spec.gates] == [
        "error_rate<=0",
        "avg_latency_ms<=2000",
        "error_rate<=5%",
    ]
    assert spec.gates[2].threshold == pytest.approx(0.05)
    # An alert fires when its condition holds: as a gate it is the negation.
    assert [a.text for a in spec.alerts] == ["error_rate<=10%", "avg_latency_ms<3000"]
    assert spec.required == ("answered",)
    assert spec.confidence == 0.9
    assert spec.outlier_handling == "remove"
    assert [e.metric for e in spec.efficiency] == ["latency"]  # asked for twice, kept once
    assert spec.by_persona and spec.focus_personas == ("novice",)
    assert spec.trend_analysis and spec.categorize_failures
    assert spec.baseline_path is None


def test_a_performance_criterion_without_its_threshold_is_an_error(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        {"success_criteria": {"performance": {"avg_response_time": {"enabled": True}}}},
    )
    with pytest.raises(ConfigError, match="avg_latency_ms needs threshold_ms"):
        compile_evaluation(cfg)


def test_an_unknown_alert_metric_is_an_error(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        {
            "advanced": {
                "alerts": {"enabled": True, "conditions": [{"metric": "mood", "threshold": 1}]}
            }
        },
    )
    with pytest.raises(ConfigError, match=r"conditions\[0\].metric: unknown metric 'mood'"):
        compile_evaluation(cfg)
    off = loaded(
        tmp_path,
        {
            "advanced": {
                "alerts": {"enabled": False, "conditions": [{"metric": "mood", "threshold": 1}]}
            }
        },
    )
    assert compile_evaluation(off).alerts == []


def test_the_comparison_baseline_must_exist(tmp_path: Path) -> None:
    block = {
        "additional_analysis": {"comparison": {"enabled": True, "baseline_path": "b/summary.json"}}
    }
    with pytest.raises(ConfigError) as exc:
        compile_evaluation(loaded(tmp_path, block))
    assert f"baseline_path: {tmp_path / 'b' / 'summary.json'} does not exist" in str(exc.value)
    with pytest.raises(ConfigError, match="comparison: enabled needs baseline_path"):
        compile_evaluation(
            loaded(tmp_path, {"additional_analysis": {"comparison": {"enabled": True}}})
        )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "summary.json").write_text("{}")
    assert (
        compile_evaluation(loaded(tmp_path, block)).baseline_path == tmp_path / "b" / "summary.json"
    )


def test_tool_calling_criteria(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        {
            "success_criteria": {
                "functionality": {
                    "tool_calling": {
                        "enabled": True,
                        "all_calls_successful": True,
                        "appropriate_selection": True,
                    }
                }
            }
        },
    )
    spec = compile_evaluation(cfg)
    assert spec.tool_calls_must_succeed and spec.evaluates_traces
    [notice] = spec.notices
    assert "appropriate_selection are judgements, not checks" in notice
    bad = loaded(tmp_path, {"success_criteria": {"functionality": {"apis": {"enabled": True}}}})
    with pytest.raises(ConfigError, match="unknown block"):
        compile_evaluation(bad)


def test_report_and_unused_output_keys_are_a_notice(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        {
            "evaluators": [RULES],
            "report": {"style": "detailed", "output": "html"},
            "output": {"summary_file": "r.md", "deep_analysis_file": "deep.md"},
        },
    )
    spec = compile_evaluation(cfg)
    assert spec.report_file == "r.md"
    [notice] = spec.notices
    for key in ("output.deep_analysis_file", "report.output", "report.style"):
        assert key in notice
    assert "summary_file" not in notice
    assert "does not write yet" in notice


# ------------------------------------------------------------------- ks and gates


@pytest.mark.parametrize(
    ("iterations", "reliability_k", "gates", "ks"),
    [
        (1, None, [], (1,)),
        (2, None, [], (1, 2)),
        (3, None, [], (1, 3)),
        (5, None, [], (1, 3, 5)),
        (5, None, ["pass@7>=0.5"], (1, 3, 5, 7)),
        (5, [2, 1, 2], [], (1, 2)),
        (5, [1, 2, 5], ["pass^4>=0.9", "success_rate>=0.5"], (1, 2, 4, 5)),
    ],
)
def test_reliability_ks(
    tmp_path: Path,
    iterations: int,
    reliability_k: list[int] | None,
    gates: list[str],
    ks: tuple[int, ...],
) -> None:
    evaluation: dict[str, Any] = {"evaluators": [RULES]}
    if reliability_k is not None:
        evaluation["reliability_k"] = reliability_k
    cfg = loaded(tmp_path, evaluation, iterations=iterations)
    assert compile_evaluation(cfg, gates=gates).ks == ks


def test_gate_ks_from_the_file_join_the_ks(tmp_path: Path) -> None:
    cfg = loaded(tmp_path, {"gates": ["pass^2>=0.5"], "reliability_k": [1]})
    spec = compile_evaluation(cfg, gates=["pass@6>=0.9"])
    assert spec.ks == (1, 2, 6)
    assert [g.text for g in spec.gates] == ["pass^2>=0.5", "pass@6>=0.9"]


# -------------------------------------------------------------------- no-evaluate


def test_evaluate_false_keeps_command_line_gates_and_says_so(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        {"evaluators": [RULES, judge()], "gates": ["pass^3>=0.8"], "reliability_k": [4]},
        iterations=2,
    )
    spec = compile_evaluation(cfg, gates=["success_rate>=0.5"], evaluate=False)
    assert spec.evaluators == [] and not spec.evaluates_traces  # no key was needed either
    assert [g.text for g in spec.gates] == ["success_rate>=0.5"]
    assert spec.ks == (1, 2)  # evaluation.yaml's reliability_k is not read
    [notice] = spec.notices
    assert str(tmp_path / EVALUATION) in notice
    assert "--fluxloop-no-evaluate" in notice and "fluxloop evaluate experiment" in notice


def test_evaluate_false_without_an_evaluation_file_has_no_notice(tmp_path: Path) -> None:
    spec = compile_evaluation(loaded(tmp_path), gates=["flaky<=0"], evaluate=False)
    assert spec.notices == []
    assert [g.text for g in spec.gates] == ["flaky<=0"]


# --------------------------------------------------------------- similarity cases


def case(metadata: dict[str, Any]) -> Case:
    return Case(case_id="in00-q-it0", input_index=0, input="q", metadata=metadata)


def test_a_similarity_path_in_no_case_is_a_notice(tmp_path: Path) -> None:
    rule = {"check": "similarity", "expected_path": "metadata.expected"}
    cfg = loaded(
        tmp_path, {"evaluators": [{"name": "same", "type": "rule_based", "rules": [rule]}]}
    )
    spec = compile_evaluation(cfg, cases=[case({}), case({"other": 1})])
    [notice] = spec.notices
    assert notice.startswith(
        f"{tmp_path / EVALUATION}: evaluators[0] (same).rules[0]: expected_path "
        "'metadata.expected' is in none of the cases"
    )
    assert [e.name for e in spec.evaluators] == ["same"]  # kept: it applies to no trace
    assert compile_evaluation(cfg, cases=[case({}), case({"expected": "yes"})]).notices == []
    assert compile_evaluation(cfg).notices == []  # without cases: not checked


def test_a_judge_without_a_template_gets_the_default_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = loaded(tmp_path, {"evaluators": [{"name": "j", "type": "llm_judge"}]})
    [settings] = compile_evaluation(cfg).judges
    assert settings.prompt_template == DEFAULT_TEMPLATE
