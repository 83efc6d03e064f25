"""The ``rule_based`` checks, their config checks and the evaluator's score and status:
``pytest_fluxloop.evaluation.rules``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from support import eval_helpers

from pytest_fluxloop.config.models import RULE_CHECKS, Rule
from pytest_fluxloop.evaluation import rules as rules_module
from pytest_fluxloop.evaluation.rules import CHECKS, check_rule_config, evaluate_rule_based
from pytest_fluxloop.records import Observation, RuleResult, TraceRecord


def make_record(**fields: Any) -> TraceRecord:
    """The shared successful single-turn trace, about a refund, that took 820 ms."""
    defaults = {
        "input": "Can I get a refund?",
        "output": "Yes, your Refund is on its way.",
        "duration_ms": 820.0,
    }
    return eval_helpers.make_record(**{**defaults, **fields})


def conversation_record(**fields: Any) -> TraceRecord:
    turns = [
        {"role": "user", "content": "I want a refund"},
        {"role": "assistant", "content": "Which order?"},
        {"role": "user", "content": "A-17, and please hurry"},
        {"role": "assistant", "content": "Done."},
    ]
    return make_record(
        multi_turn={"enabled": True, "turn_count": 2},
        conversation_state={"turns": turns},
        output="Done.",
        **fields,
    )


def rule(**fields: Any) -> Rule:
    return Rule.model_validate(fields)


def check(record: TraceRecord, **fields: Any) -> RuleResult:
    """One rule's result, through the evaluator (as a run gets it)."""
    result = evaluate_rule_based("e", [rule(**fields)], record)
    assert len(result.rules) == 1
    return result.rules[0]


def test_every_configurable_check_has_a_function() -> None:
    assert set(CHECKS) == set(RULE_CHECKS)


# --------------------------------------------------------------------------- single checks


def test_output_not_empty() -> None:
    passed = check(make_record(), check="output_not_empty")
    assert (passed.passed, passed.score, passed.reason) == (True, 1.0, "output is not empty")
    for output in ("   \n", None, ""):
        failed = check(make_record(output=output), check="output_not_empty")
        assert (failed.passed, failed.score, failed.reason) == (False, 0.0, "output is empty")
    on_input = check(make_record(output=None), check="output_not_empty", target="input")
    assert on_input.passed is True
    assert on_input.reason == "input is not empty"


def test_success() -> None:
    assert check(make_record(), check="success").passed is True
    failed = check(
        make_record(
            success=False,
            status="error",
            output=None,
            error={"kind": "agent", "type": "KeyError", "message": "'order'"},
        ),
        check="success",
    )
    assert failed.passed is False and failed.score == 0.0
    assert failed.reason == "the agent did not succeed (status error): KeyError: 'order'"


def test_contains_any_keyword_case_insensitive_by_default() -> None:
    record = make_record()
    result = check(record, check="contains", keywords=["nothing", "refund"])
    assert (result.passed, result.score) == (True, 1.0)
    assert result.reason == "output contains 'refund'"
    sensitive = check(record, check="contains", keywords=["refund"], case_sensitive=True)
    assert sensitive.passed is False
    assert sensitive.reason == "output contains none of ['refund']"
    assert check(record, check="contains", keywords=["Refund"], case_sensitive=True).passed


def test_contains_reads_its_target() -> None:
    record = conversation_record()
    assert check(record, check="contains", keywords=["hurry"], target="user").passed is True
    assert check(record, check="contains", keywords=["hurry"]).passed is False
    assert check(record, check="contains", keywords=["which order"], target="agent").passed
    assert not check(record, check="contains", keywords=["which"], target="supervisor").passed
    transcript = check(record, check="contains", keywords=["assistant: done."], target="transcript")
    assert transcript.passed is True


def test_not_contains_names_what_it_found() -> None:
    record = make_record()
    result = check(record, check="not_contains", keywords=["sorry", "REFUND", "way"])
    assert (result.passed, result.score) == (False, 0.0)
    assert result.reason == "output contains 'REFUND', 'way'"
    clean = check(record, check="not_contains", keywords=["sorry"])
    assert clean.passed is True
    assert clean.reason == "output contains none of ['sorry']"
    assert check(record, check="not_contains", keywords=["REFUND"], case_sensitive=True).passed


def test_matches_regex_with_flags() -> None:
    record = make_record(output="Hello there\nStep 2: done")
    assert check(record, check="matches_regex", pattern=r"step \d").passed is False
    assert check(record, check="matches_regex", pattern=r"step \d", flags="ignorecase").passed
    assert check(record, check="matches_regex", pattern=r"^Step", flags=["MULTILINE"]).passed
    assert not check(record, check="matches_regex", pattern=r"^Step").passed
    dotall = check(record, check="matches_regex", pattern="there.Step", flags=["DOTALL"])
    assert dotall.passed is True
    assert dotall.reason == "output matches /there.Step/"


def test_matches_regex_failure_quotes_the_text_cut_short() -> None:
    result = check(make_record(output="x" * 500), check="matches_regex", pattern="^y")
    assert result.passed is False
    assert result.reason.startswith("output 'xxxx")
    assert result.reason.endswith("...' does not match /^y/")
    assert len(result.reason) < 120


def test_latency_under() -> None:
    passed = check(make_record(duration_ms=820.0), check="latency_under", budget_ms=1000.0)
    assert (passed.passed, passed.reason) == (True, "latency 820 ms < budget 1000 ms")
    failed = check(make_record(duration_ms=1520.0), check="latency_under", budget_ms=1000.0)
    assert (failed.passed, failed.score) == (False, 0.0)
    assert failed.reason == "latency 1520 ms >= budget 1000 ms"
    at_budget = check(make_record(duration_ms=1000.0), check="latency_under", budget_ms=1000.0)
    assert at_budget.passed is False
    near = check(make_record(duration_ms=999.96), check="latency_under", budget_ms=1000.0)
    assert near.reason == "latency 999.96 ms < budget 1000 ms"


def _usage(**agent: Any) -> dict[str, Any]:
    counts = {
        "input_tokens": 120,
        "output_tokens": 30,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "total_tokens": 150,
        "calls": 2,
        "calls_without_usage": 0,
    }
    counts.update(agent)
    return {"agent": counts, "supervisor": {"total_tokens": 5000}}


def test_token_usage_under_reads_the_agents_counts() -> None:
    record = make_record(token_usage=_usage())
    within = check(record, check="token_usage_under", max_tokens=200)
    assert (within.passed, within.reason) == (True, "total_tokens 150 <= max_tokens 200")
    over = check(record, check="token_usage_under", max_total_tokens=100)
    assert (over.passed, over.score) == (False, 0.0)
    assert over.reason == "total_tokens 150 > max_total_tokens 100"
    prompt = check(record, check="token_usage_under", max_prompt_tokens=100)
    assert prompt.passed is False and "input_tokens 120 > max_prompt_tokens 100" in prompt.reason
    completion = check(record, check="token_usage_under", max_completion_tokens=30)
    assert completion.passed is True
    both = check(record, check="token_usage_under", max_prompt_tokens=500, max_completion_tokens=10)
    assert both.passed is False and "output_tokens 30 > max_completion_tokens 10" in both.reason


@pytest.mark.parametrize(
    "token_usage",
    [
        None,
        {},
        {"supervisor": {"total_tokens": 10}},  # the supervisor's tokens are not the agent's
        _usage(total_tokens=None),
        {"agent": {"input_tokens": 5}},
    ],
)
def test_token_usage_not_reported_is_unknown_never_zero(token_usage: Any) -> None:
    result = check(
        make_record(token_usage=token_usage), check="token_usage_under", max_tokens=10**6
    )
    assert result.passed is None and result.score is None
    assert result.reason.startswith("token usage not reported")
    assert "total_tokens" in result.reason


def test_token_usage_with_calls_that_reported_nothing() -> None:
    record = make_record(token_usage=_usage(calls_without_usage=1))
    # 150 is a lower bound: it proves a budget of 100 exceeded, not a budget of 200 kept.
    assert check(record, check="token_usage_under", max_tokens=100).passed is False
    unsure = check(record, check="token_usage_under", max_tokens=200)
    assert unsure.passed is None
    assert "calls without usage" in unsure.reason


def test_token_usage_one_budget_over_and_another_unknown_fails() -> None:
    record = make_record(token_usage=_usage(output_tokens=None))
    result = check(
        record, check="token_usage_under", max_prompt_tokens=100, max_completion_tokens=5
    )
    assert result.passed is False
    assert result.reason == "input_tokens 120 > max_prompt_tokens 100"


def test_similarity_difflib_by_default() -> None:
    record = make_record(
        output="Your refund has been issued!", metadata={"expected": "Your refund has been issued."}
    )
    result = check(record, check="similarity", expected_path="metadata.expected")
    assert result.passed is True
    assert result.score is not None and 0.9 < result.score < 1.0
    assert result.reason.startswith("output difflib similarity 0.96 >= 0.70")


def test_similarity_failure_and_threshold_order() -> None:
    record = make_record(output="abcdefghij", metadata={"expected": "abcdefXXXX"})
    default = check(record, check="similarity", expected_path="metadata.expected")
    assert default.score == pytest.approx(0.6)
    assert default.passed is False
    assert default.reason == "output difflib similarity 0.60 < 0.70 to 'abcdefXXXX'"
    assert check(
        record, check="similarity", expected_path="metadata.expected", threshold=0.5
    ).passed
    # min_score wins over threshold.
    both = check(
        record, check="similarity", expected_path="metadata.expected", threshold=0.5, min_score=0.9
    )
    assert both.passed is False and "< 0.90" in both.reason


def test_similarity_jaccard_and_exact() -> None:
    record = make_record(output="D c, b x", metadata={"expected": "a b c d", "exact": " Yes "})
    jaccard = check(record, check="similarity", expected_path="metadata.expected", method="jaccard")
    assert jaccard.score == pytest.approx(3 / 5)
    assert jaccard.passed is False
    exact = make_record(output="yes", metadata={"exact": " YES "})
    result = check(exact, check="similarity", expected_path="metadata.exact", method="exact")
    assert (result.passed, result.score) == (True, 1.0)
    miss = check(
        make_record(output="yes!", metadata={"exact": "yes"}),
        check="similarity",
        expected_path="metadata.exact",
        method="exact",
    )
    assert (miss.passed, miss.score) == (False, 0.0)


def test_similarity_expected_path_falls_back_to_metadata() -> None:
    record = make_record(output="track_order", metadata={"expected_intent": "track_order"})
    result = check(record, check="similarity", expected_path="expected_intent", method="exact")
    assert result.passed is True


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({}, "no expected value at 'metadata.expected'"),
        ({"expected": None}, "expected value at 'metadata.expected' is empty"),
        ({"expected": "  "}, "expected value at 'metadata.expected' is empty"),
    ],
)
def test_similarity_without_an_expected_value_does_not_apply(
    metadata: dict[str, Any], reason: str
) -> None:
    result = check(
        make_record(metadata=metadata), check="similarity", expected_path="metadata.expected"
    )
    assert (result.passed, result.score, result.reason) == (None, None, reason)


def test_turn_count_under() -> None:
    record = conversation_record()
    passed = check(record, check="turn_count_under", max_turns=3)
    assert (passed.passed, passed.reason) == (True, "2 agent turns < max_turns 3")
    failed = check(record, check="turn_count_under", max_turns=2)
    assert (failed.passed, failed.reason) == (False, "2 agent turns >= max_turns 2")
    assert check(make_record(), check="turn_count_under", max_turns=2).passed is True


def test_json_valid() -> None:
    assert check(make_record(output='{"intent": "refund"}'), check="json_valid").passed is True
    assert check(make_record(output={"intent": "refund"}), check="json_valid").passed is True
    failed = check(make_record(output="not json"), check="json_valid")
    assert failed.passed is False
    assert failed.reason.startswith("output is not valid JSON (Expecting value at line 1")
    assert check(make_record(output=None), check="json_valid").passed is False


def test_json_valid_with_a_schema_reports_where_it_breaks() -> None:
    schema = {
        "type": "object",
        "properties": {"intent": {"enum": ["refund", "track"]}},
        "required": ["intent"],
    }
    good = check(make_record(output={"intent": "track"}), check="json_valid", schema=schema)
    assert (good.passed, good.reason) == (True, "output is valid JSON matching the schema")
    bad = check(make_record(output={"intent": "cancel"}), check="json_valid", schema=schema)
    assert bad.passed is False
    assert bad.reason.startswith("output does not match the schema: $.intent: 'cancel' is not one")
    missing = check(make_record(output="{}"), check="json_valid", schema=schema)
    assert missing.passed is False and "'intent' is a required property" in missing.reason


def _tool_record(*names: str, dropped: int = 0) -> TraceRecord:
    observations = []
    for position, name in enumerate(names):
        for kind in ("span_start", "span_end"):
            observations.append(
                Observation(
                    trace_id="t-1", type=kind, kind="tool", name=name, observation_id=str(position)
                )
            )
    return make_record(observations=observations, observations_dropped=dropped)


def test_tool_called() -> None:
    record = _tool_record("lookup", "refund", "lookup")
    passed = check(record, check="tool_called", tool="lookup")
    assert passed.passed is True
    assert passed.reason == "'lookup' called at least 1 (called: lookup x2, refund x1)"
    failed = check(record, check="tool_called", tool=["lookup", "escalate"])
    assert (failed.passed, failed.score) == (False, 0.0)
    assert failed.reason == (
        "tool 'escalate' called 0 times, expected at least 1 (called: lookup x2, refund x1)"
    )
    assert check(record, check="tool_called", tool="lookup", min_calls=3).passed is False
    too_many = check(record, check="tool_called", tool="lookup", max_calls=1)
    assert too_many.passed is False
    assert "tool 'lookup' called 2 times, expected 1 to 1" not in too_many.reason
    assert "tool 'lookup' called 2 times, expected exactly 1" in too_many.reason
    never = check(record, check="tool_called", tool="delete", min_calls=0, max_calls=0)
    assert never.passed is True
    nothing = check(make_record(), check="tool_called", tool="lookup")
    assert nothing.passed is False and "(called: no tool)" in nothing.reason


def test_tool_called_with_dropped_observations_is_unknown_unless_certain() -> None:
    record = _tool_record("lookup", "lookup", dropped=40)
    # The missing call may be among the dropped observations.
    unsure = check(record, check="tool_called", tool="refund")
    assert unsure.passed is None and "40 observations dropped" in unsure.reason
    # Two calls seen already exceed one: certain whatever was dropped.
    assert check(record, check="tool_called", tool="lookup", max_calls=1).passed is False
    assert check(record, check="tool_called", tool="lookup", max_calls=5).passed is None
    assert check(record, check="tool_called", tool="lookup").passed is True


def test_rule_weight_is_carried() -> None:
    assert check(make_record(), check="success").weight == 1.0
    assert check(make_record(), check="success", weight=2.5).weight == 2.5


# --------------------------------------------------------------------------- failures of checks


def test_a_check_that_raises_fails_its_rule_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(rule: Rule, record: TraceRecord) -> RuleResult:
        raise RuntimeError("bug in a check " + "x" * 300)

    monkeypatch.setitem(rules_module.CHECKS, "json_valid", boom)
    result = evaluate_rule_based(
        "e", [rule(check="json_valid"), rule(check="success")], make_record()
    )
    broken, ok = result.rules
    assert (broken.passed, broken.score) == (False, 0.0)
    assert broken.reason.startswith("check raised RuntimeError: bug in a check")
    assert len(broken.reason) <= 80
    assert ok.passed is True
    assert (result.status, result.score) == ("failed", 0.5)


def test_a_rule_the_config_check_would_have_caught_still_fails_readably() -> None:
    typo = Rule.model_construct(check="contain", keywords=["x"], target=None, weight=None)
    unknown = evaluate_rule_based("e", [typo], make_record()).rules[0]
    assert unknown.passed is False
    assert unknown.reason.startswith("unknown check 'contain' (did you mean 'contains'?)")
    method = check(
        make_record(metadata={"e": "x"}), check="similarity", expected_path="e", method="difflb"
    )
    assert method.passed is False
    assert "ValueError: unknown similarity method 'difflb'" in method.reason
    target = check(make_record(), check="output_not_empty", target="outptu")
    assert target.passed is False and "unknown target 'outptu'" in target.reason
    built = Rule.model_construct(check="contains", keywords=None, target=None, weight=None)
    result = evaluate_rule_based("e", [built], make_record()).rules[0]
    assert (result.passed, result.reason) == (
        False,
        "check raised ValueError: check 'contains' needs keywords",
    )


# --------------------------------------------------------------------------- the evaluator


def test_evaluator_passes_when_every_rule_passes() -> None:
    result = evaluate_rule_based(
        "basic",
        [rule(check="output_not_empty"), rule(check="latency_under", budget_ms=1000.0)],
        make_record(),
        weight=0.4,
    )
    assert (result.name, result.type, result.status) == ("basic", "rule_based", "passed")
    assert (result.score, result.weight, result.reason) == (1.0, 0.4, "")
    assert [r.check for r in result.rules] == ["output_not_empty", "latency_under"]


def test_evaluator_score_is_the_weighted_share_passed() -> None:
    rules = [
        rule(check="output_not_empty", weight=3.0),
        rule(check="latency_under", budget_ms=100.0),
    ]
    result = evaluate_rule_based("e", rules, make_record())
    assert result.score == pytest.approx(0.75)
    assert result.status == "failed"
    assert result.reason == "latency 820 ms >= budget 100 ms"
    lenient = evaluate_rule_based("e", rules, make_record(), pass_score=0.7)
    assert lenient.status == "passed"
    assert lenient.reason == "latency 820 ms >= budget 100 ms"
    strict = evaluate_rule_based("e", rules, make_record(), pass_score=0.8)
    assert strict.status == "failed"


def test_evaluator_reason_joins_every_failing_rule() -> None:
    rules = [
        rule(check="contains", keywords=["sorry"]),
        rule(check="success"),
        rule(check="latency_under", budget_ms=10.0),
    ]
    result = evaluate_rule_based("e", rules, make_record())
    assert result.reason == ("output contains none of ['sorry']; latency 820 ms >= budget 10 ms")
    assert result.score == pytest.approx(1 / 3)


def test_rules_that_do_not_apply_are_left_out_of_the_score() -> None:
    rules = [rule(check="success"), rule(check="token_usage_under", max_tokens=10)]
    result = evaluate_rule_based("e", rules, make_record(token_usage=None))
    assert (result.status, result.score) == ("passed", 1.0)
    assert [r.passed for r in result.rules] == [True, None]


def test_evaluator_with_no_applicable_rule_is_skipped() -> None:
    rules = [rule(check="similarity", expected_path="metadata.expected")]
    result = evaluate_rule_based("e", rules, make_record())
    assert (result.status, result.score, result.reason) == ("skipped", None, "no rule applied")
    assert len(result.rules) == 1
    empty = evaluate_rule_based("e", [], make_record())
    assert (empty.status, empty.score) == ("skipped", None)


def test_rules_all_weighing_zero_count_equally() -> None:
    rules = [rule(check="success", weight=0.0), rule(check="json_valid", weight=0.0)]
    result = evaluate_rule_based("e", rules, make_record())
    assert result.score == 0.5
    assert result.status == "failed"


# --------------------------------------------------------------------------- check_rule_config


@pytest.mark.parametrize(
    "fields",
    [
        {"check": "output_not_empty"},
        {"check": "contains", "keywords": ["a"], "target": "metadata.expected"},
        {"check": "matches_regex", "pattern": r"^\d+$", "flags": ["multiline"]},
        {"check": "similarity", "expected_path": "metadata.expected", "method": "jaccard"},
        {"check": "json_valid", "schema": {"type": "object", "required": ["a"]}},
        {"check": "tool_called", "tool": ["a", "b"], "min_calls": 0, "max_calls": 2},
    ],
)
def test_a_valid_rule_has_no_problem(fields: dict[str, Any]) -> None:
    assert check_rule_config(rule(**fields)) == []


def test_unknown_check_lists_the_valid_ones_and_suggests() -> None:
    # The config model refuses it (so the loader names the file and line).
    with pytest.raises(ValidationError) as caught:
        rule(check="contain")
    problem = str(caught.value)
    assert "unknown check 'contain' (did you mean 'contains'?); valid: " in problem
    for name in RULE_CHECKS:
        assert name in problem
    with pytest.raises(ValidationError) as far:
        rule(check="qqqq")
    assert "did you mean" not in str(far.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"check": "contains", "keywords": ["a"], "target": "outptu"}, "did you mean 'output'?"),
        (
            {"check": "similarity", "expected_path": "e", "method": "difflb"},
            "unknown similarity method 'difflb' (did you mean 'difflib'?); valid: difflib",
        ),
        (
            {"check": "matches_regex", "pattern": "(unclosed"},
            "pattern '(unclosed' is not a valid regular expression: missing )",
        ),
        (
            {"check": "json_valid", "schema": {"type": "nonsense"}},
            "schema is not a valid JSON Schema: $.type: 'nonsense' is not valid",
        ),
        ({"check": "contains", "keywords": []}, "check 'contains' has an empty keywords list"),
        ({"check": "tool_called", "tool": []}, "check 'tool_called' has an empty tool list"),
        (
            {"check": "tool_called", "tool": "a", "min_calls": 3, "max_calls": 1},
            "min_calls 3 > max_calls 1: no call count can pass",
        ),
    ],
)
def test_config_problems(fields: dict[str, Any], expected: str) -> None:
    problems = check_rule_config(rule(**fields))
    assert len(problems) == 1
    assert expected in problems[0]


def test_every_problem_of_a_rule_is_reported() -> None:
    problems = check_rule_config(
        rule(check="matches_regex", pattern="[", target="assistent", method="fuzzy")
    )
    assert len(problems) == 3
    assert problems[0].startswith("unknown target 'assistent' (did you mean 'assistant'?)")
    assert problems[1].startswith("unknown similarity method 'fuzzy'")
    assert problems[2].startswith("pattern '[' is not a valid regular expression")
