"""The ``rule_based`` checks: each rule of an evaluator, checked on one trace.

A check returns a :class:`~pytest_fluxloop.records.RuleResult` with ``passed`` true, false,
or None when the rule does not apply to the trace (no expected value, no token counts
reported): an unknown is left out of the evaluator's score, never counted as a failure or
as zero. A check that raises fails its own rule; it never crashes the run.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from ..config.errors import suggest_key
from ..config.models import REGEX_FLAGS, RULE_CHECKS, SIMILARITY_METHODS, Rule
from ..records import EvaluatorResult, RuleResult, TraceRecord
from .targets import as_text, check_target, lookup_path, target_text, tool_calls, turn_count

__all__ = [
    "CHECKS",
    "DEFAULT_SIMILARITY_THRESHOLD",
    "RuleCheck",
    "check_rule_config",
    "evaluate_rule_based",
]

RuleCheck = Callable[[Rule, TraceRecord], RuleResult]
"""One check: a rule and a trace in, the rule's result out."""

DEFAULT_SIMILARITY_THRESHOLD = 0.7
"""The lowest passing ``similarity`` ratio when the rule sets neither min_score nor threshold."""

# Reasons end up in pytest's failure message and in every artifact line: a quoted output is
# cut so that one long answer cannot bury the message.
_QUOTE_CHARS = 80

# token_usage_under: each budget field of a rule and the count of the agent's usage it caps.
_TOKEN_BUDGETS = (
    ("max_tokens", "total_tokens"),
    ("max_total_tokens", "total_tokens"),
    ("max_prompt_tokens", "input_tokens"),
    ("max_completion_tokens", "output_tokens"),
)


# --------------------------------------------------------------------------- helpers


def _shorten(text: str) -> str:
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "..."


def _quote(text: str) -> str:
    return repr(_shorten(text))


def _label(rule: Rule) -> str:
    return rule.target or "output"


def _weight(rule: Rule) -> float:
    return rule.weight if rule.weight is not None else 1.0


def _result(rule: Rule, passed: bool | None, reason: str, score: float | None = None) -> RuleResult:
    if score is None and passed is not None:
        score = 1.0 if passed else 0.0
    return RuleResult(
        check=rule.check, passed=passed, score=score, reason=reason, weight=_weight(rule)
    )


def _missing(rule: Rule, field: str) -> ValueError:
    # The config model requires these fields; a rule built around it still fails readably.
    return ValueError(f"check {rule.check!r} needs {field}")


def _number(value: float) -> str:
    """``1520`` for 1520.0, ``999.96`` for 999.96: no float noise, no misleading rounding."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _unknown(kind: str, value: str, valid: tuple[str, ...]) -> str:
    close = suggest_key(value, valid)
    hint = f" (did you mean {close!r}?)" if close else ""
    return f"unknown {kind} {value!r}{hint}; valid: {', '.join(valid)}"


def _regex_flags(flags: str | list[str] | None) -> int:
    names = [flags] if isinstance(flags, str) else (flags or [])
    value = 0
    for name in names:
        if name.upper() not in REGEX_FLAGS:
            raise ValueError(f"unknown regex flag {name!r}; use {', '.join(REGEX_FLAGS)}")
        value |= getattr(re, name.upper())
    return value


def _tool_names(rule: Rule) -> list[str]:
    return [rule.tool] if isinstance(rule.tool, str) else list(rule.tool or [])


# --------------------------------------------------------------------------- the checks


def _output_not_empty(rule: Rule, record: TraceRecord) -> RuleResult:
    if target_text(record, rule.target).strip():
        return _result(rule, True, f"{_label(rule)} is not empty")
    return _result(rule, False, f"{_label(rule)} is empty")


def _success(rule: Rule, record: TraceRecord) -> RuleResult:
    if record.success:
        return _result(rule, True, "the agent succeeded")
    error = record.error
    detail = f": {_shorten(f'{error.type}: {error.message}')}" if error else ""
    return _result(rule, False, f"the agent did not succeed (status {record.status}){detail}")


def _keywords_found(rule: Rule, record: TraceRecord) -> list[str]:
    if rule.keywords is None:
        raise _missing(rule, "keywords")
    text = target_text(record, rule.target)
    if rule.case_sensitive:
        return [word for word in rule.keywords if word in text]
    folded = text.casefold()
    return [word for word in rule.keywords if word.casefold() in folded]


def _contains(rule: Rule, record: TraceRecord) -> RuleResult:
    found = _keywords_found(rule, record)
    if found:
        return _result(rule, True, f"{_label(rule)} contains {_quote(found[0])}")
    words = _shorten(repr(rule.keywords))
    return _result(rule, False, f"{_label(rule)} contains none of {words}")


def _not_contains(rule: Rule, record: TraceRecord) -> RuleResult:
    found = _keywords_found(rule, record)
    if found:
        shown = ", ".join(_quote(word) for word in found)
        return _result(rule, False, _shorten(f"{_label(rule)} contains {shown}"))
    words = _shorten(repr(rule.keywords))
    return _result(rule, True, f"{_label(rule)} contains none of {words}")


def _matches_regex(rule: Rule, record: TraceRecord) -> RuleResult:
    if rule.pattern is None:
        raise _missing(rule, "pattern")
    text = target_text(record, rule.target)
    shown = _shorten(rule.pattern)
    if re.search(rule.pattern, text, _regex_flags(rule.flags)):
        return _result(rule, True, f"{_label(rule)} matches /{shown}/")
    return _result(rule, False, f"{_label(rule)} {_quote(text)} does not match /{shown}/")


def _latency_under(rule: Rule, record: TraceRecord) -> RuleResult:
    if rule.budget_ms is None:
        raise _missing(rule, "budget_ms")
    took, budget = _number(record.duration_ms), _number(rule.budget_ms)
    if record.duration_ms < rule.budget_ms:
        return _result(rule, True, f"latency {took} ms < budget {budget} ms")
    return _result(rule, False, f"latency {took} ms >= budget {budget} ms")


def _token_usage_under(rule: Rule, record: TraceRecord) -> RuleResult:
    usage = record.token_usage.get("agent") if record.token_usage else None
    counts: Mapping[str, Any] = usage if isinstance(usage, Mapping) else {}
    # Calls that reported no usage make every count a lower bound: it can prove a budget
    # exceeded, never kept.
    partial = bool(counts.get("calls_without_usage"))
    over: list[str] = []
    within: list[str] = []
    unknown: list[str] = []
    for field, key in _TOKEN_BUDGETS:
        budget = getattr(rule, field)
        if budget is None:
            continue
        count = counts.get(key)
        if not isinstance(count, (int, float)) or isinstance(count, bool):
            unknown.append(key)
        elif count > budget:
            over.append(f"{key} {_number(count)} > {field} {budget}")
        elif partial:
            unknown.append(f"{key} (calls without usage)")
        else:
            within.append(f"{key} {_number(count)} <= {field} {budget}")
    if not (over or within or unknown):
        raise _missing(rule, "max_tokens (or max_total/prompt/completion_tokens)")
    if over:
        return _result(rule, False, "; ".join(over))
    if unknown:
        return _result(rule, None, f"token usage not reported ({', '.join(unknown)})")
    return _result(rule, True, "; ".join(within))


def _difflib_ratio(expected: str, actual: str) -> float:
    return difflib.SequenceMatcher(None, expected.strip(), actual.strip()).ratio()


def _jaccard_ratio(expected: str, actual: str) -> float:
    left = set(re.findall(r"\w+", expected.casefold()))
    right = set(re.findall(r"\w+", actual.casefold()))
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)


def _exact_ratio(expected: str, actual: str) -> float:
    return 1.0 if expected.strip().casefold() == actual.strip().casefold() else 0.0


_SIMILARITY: dict[str, Callable[[str, str], float]] = {
    "difflib": _difflib_ratio,
    "jaccard": _jaccard_ratio,
    "exact": _exact_ratio,
}


def _similarity(rule: Rule, record: TraceRecord) -> RuleResult:
    if rule.expected_path is None:
        raise _missing(rule, "expected_path")
    found, value = lookup_path(record, rule.expected_path)
    if not found:
        return _result(rule, None, f"no expected value at {rule.expected_path!r}")
    expected = as_text(value)
    if not expected.strip():
        # A blank expected value is a placeholder in the inputs file, not an expectation.
        return _result(rule, None, f"expected value at {rule.expected_path!r} is empty")
    method = rule.method or "difflib"
    if method not in _SIMILARITY:
        raise ValueError(_unknown("similarity method", method, SIMILARITY_METHODS))
    ratio = _SIMILARITY[method](expected, target_text(record, rule.target))
    threshold = next(
        (v for v in (rule.min_score, rule.threshold) if v is not None),
        DEFAULT_SIMILARITY_THRESHOLD,
    )
    text = f"{_label(rule)} {method} similarity {ratio:.2f}"
    if ratio >= threshold:
        return _result(rule, True, f"{text} >= {threshold:.2f}", score=ratio)
    return _result(rule, False, f"{text} < {threshold:.2f} to {_quote(expected)}", score=ratio)


def _turn_count_under(rule: Rule, record: TraceRecord) -> RuleResult:
    if rule.max_turns is None:
        raise _missing(rule, "max_turns")
    turns = turn_count(record)
    if turns < rule.max_turns:
        return _result(rule, True, f"{turns} agent turns < max_turns {rule.max_turns}")
    return _result(rule, False, f"{turns} agent turns >= max_turns {rule.max_turns}")


def _json_valid(rule: Rule, record: TraceRecord) -> RuleResult:
    label = _label(rule)
    try:
        value = json.loads(target_text(record, rule.target))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        return _result(rule, False, f"{label} is not valid JSON ({exc.msg} at {where})")
    if rule.json_schema is None:
        return _result(rule, True, f"{label} is valid JSON")
    error = _schema_error(rule.json_schema, value)
    if error:
        return _result(rule, False, f"{label} does not match the schema: {error}")
    return _result(rule, True, f"{label} is valid JSON matching the schema")


def _jsonschema() -> tuple[Any, Any]:
    """jsonschema's ``validators`` and ``exceptions`` modules."""
    # Imported on first use: only a run with a json_valid schema pays for loading jsonschema.
    from jsonschema import exceptions, validators

    return validators, exceptions


def _schema_error(schema: dict[str, Any], value: Any) -> str | None:
    """The most relevant way ``value`` breaks ``schema`` (``$.path: message``), or None."""
    validators, exceptions = _jsonschema()
    validator = validators.validator_for(schema)(schema)
    error = exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    return f"{error.json_path}: {_shorten(str(error.message))}"


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not a valid JSON Schema (by its own ``$schema`` draft), or None."""
    validators, exceptions = _jsonschema()
    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        return f"{exc.json_path}: {_shorten(str(exc.message))}"
    return None


def _expected_calls(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low}"
    if low == 0:
        return f"at most {high}"
    return f"exactly {low}" if low == high else f"{low} to {high}"


def _tool_called(rule: Rule, record: TraceRecord) -> RuleResult:
    names = _tool_names(rule)
    if not names:
        raise _missing(rule, "tool")
    counts = Counter(obs.name for obs in tool_calls(record))
    # Observations past the trace's limit were dropped: a count may be low, so only a
    # count already above max_calls is certain.
    dropped = record.observations_dropped > 0
    expected = _expected_calls(rule.min_calls, rule.max_calls)
    failed: list[str] = []
    unsure: list[str] = []
    for name in names:
        line = f"tool {name!r} called {counts[name]} times, expected {expected}"
        if rule.max_calls is not None and counts[name] > rule.max_calls:
            failed.append(line)
        elif counts[name] < rule.min_calls:
            (unsure if dropped else failed).append(line)
        elif dropped and rule.max_calls is not None:
            unsure.append(line)
    called = ", ".join(f"{name} x{n}" for name, n in counts.items()) or "no tool"
    summary = f"called: {_shorten(called)}"
    if failed:
        return _result(rule, False, f"{'; '.join(failed)} ({summary})")
    if unsure:
        note = f"{record.observations_dropped} observations dropped"
        return _result(rule, None, f"{'; '.join(unsure)} ({summary}; {note})")
    return _result(rule, True, f"{', '.join(map(repr, names))} called {expected} ({summary})")


CHECKS: Mapping[str, RuleCheck] = {
    "output_not_empty": _output_not_empty,
    "contains": _contains,
    "not_contains": _not_contains,
    "matches_regex": _matches_regex,
    "latency_under": _latency_under,
    "token_usage_under": _token_usage_under,
    "similarity": _similarity,
    "success": _success,
    "turn_count_under": _turn_count_under,
    "json_valid": _json_valid,
    "tool_called": _tool_called,
}
"""Each check name of :data:`~pytest_fluxloop.config.models.RULE_CHECKS` and its function."""


# --------------------------------------------------------------------------- config and runs


def check_rule_config(rule: Rule) -> list[str]:
    """What is wrong with ``rule`` before any case runs (empty when nothing is).

    An unknown target or similarity method (with a suggestion for a typo), a pattern that
    does not compile, a schema that is not a valid JSON Schema, an empty keyword or tool
    list, and call bounds no count can meet. (An unknown check is refused by the config
    model itself, with its line.)
    """
    problems: list[str] = []
    if rule.target is not None:
        target_problem = check_target(rule.target)
        if target_problem:
            problems.append(target_problem)
    if rule.method is not None and rule.method not in SIMILARITY_METHODS:
        problems.append(_unknown("similarity method", rule.method, SIMILARITY_METHODS))
    if rule.pattern is not None:
        try:
            re.compile(rule.pattern, _regex_flags(rule.flags))
        except (re.error, ValueError) as exc:
            problems.append(
                f"pattern {_quote(rule.pattern)} is not a valid regular expression: {exc}"
            )
    if rule.json_schema is not None:
        schema_problem = _schema_problem(rule.json_schema)
        if schema_problem:
            problems.append(f"schema is not a valid JSON Schema: {schema_problem}")
    if rule.check in ("contains", "not_contains") and rule.keywords == []:
        problems.append(f"check {rule.check!r} has an empty keywords list")
    if rule.check == "tool_called" and rule.tool is not None and not _tool_names(rule):
        problems.append("check 'tool_called' has an empty tool list")
    if rule.max_calls is not None and rule.min_calls > rule.max_calls:
        problems.append(
            f"min_calls {rule.min_calls} > max_calls {rule.max_calls}: no call count can pass"
        )
    return problems


def _run_check(rule: Rule, record: TraceRecord) -> RuleResult:
    check = CHECKS.get(rule.check)
    if check is None:
        return _result(rule, False, _unknown("check", rule.check, RULE_CHECKS))
    try:
        return check(rule, record)
    except Exception as exc:
        # A broken rule (or a bug in a check) fails that rule, readably; the other rules,
        # evaluators and cases still get their verdicts.
        return _result(rule, False, _shorten(f"check raised {type(exc).__name__}: {exc}"))


def evaluate_rule_based(
    name: str,
    rules: list[Rule],
    record: TraceRecord,
    *,
    weight: float = 1.0,
    pass_score: float | None = None,
) -> EvaluatorResult:
    """Run a ``rule_based`` evaluator's ``rules`` on ``record``.

    The score is the weighted share of applicable rules (``passed`` not None) that passed.
    Without ``pass_score`` the evaluator passes when every applicable rule passed, with it
    when the score reaches it; when no rule applies it is ``skipped``. The reason lists the
    failing rules' reasons.
    """
    results = [_run_check(rule, record) for rule in rules]
    applicable = [result for result in results if result.passed is not None]
    if not applicable:
        return EvaluatorResult(
            name=name,
            type="rule_based",
            status="skipped",
            score=None,
            weight=weight,
            reason="no rule applied",
            rules=results,
        )
    failing = [result for result in applicable if not result.passed]
    total = sum(result.weight for result in applicable)
    if total > 0:
        score = sum(result.weight for result in applicable if result.passed) / total
    else:
        # Every applicable rule weighs 0: count them equally rather than divide by zero.
        score = (len(applicable) - len(failing)) / len(applicable)
    passed = not failing if pass_score is None else score >= pass_score
    return EvaluatorResult(
        name=name,
        type="rule_based",
        status="passed" if passed else "failed",
        score=score,
        weight=weight,
        reason="; ".join(result.reason for result in failing),
        rules=results,
    )
