"""The llm_judge evaluator against a scripted OpenAI-compatible server on 127.0.0.1.

The real ``openai`` client makes real HTTP requests; only the server is scripted.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.eval_helpers import make_record
from support.llm_server import (
    CHAT,
    FakeLLMServer,
    Recorded,
    Scripted,
    chat_completion,
    llm_server,
    openai_error,
)

from pytest_fluxloop.evaluation.budget import JudgeBudget
from pytest_fluxloop.evaluation.judge import (
    JudgeOutcome,
    JudgeOutputWarning,
    JudgeRuntime,
    JudgeSettings,
    LLMJudge,
    judge_api_key,
    verdict_parser,
)
from pytest_fluxloop.evaluation.judge_cache import JudgeCache
from pytest_fluxloop.llm import InvalidOutput, RawOutput
from pytest_fluxloop.records import TraceRecord

__all__ = ["llm_server"]  # the fixture, imported for pytest

KEY = "sk-test-judge-0123456789abcdefghijkl"
MODEL = "judge-model"
TEMPLATE = "Rate the answer.\nQuestion: {input}\nAnswer: {output}\nConversation:\n{conversation}"
GOOD = {
    "verdict": "pass",
    "score": 8,
    "reason": "It rebooked the flight as asked.",
    "evidence": [{"turn": 1, "quote": "you fly on Friday"}],
}


def record(output: Any = "Done: you fly on Friday at 9:00.", case_id: str = "c1") -> TraceRecord:
    return make_record(
        trace_id=f"t-{case_id}",
        case_id=case_id,
        input="Change my flight to Friday",
        output=output,
        duration_ms=5.0,
    )


def settings(server: FakeLLMServer, **fields: Any) -> JudgeSettings:
    """Judge settings pointing at ``server``, with tiny retry delays."""
    base: dict[str, Any] = {
        "name": "helpful",
        "model": MODEL,
        "prompt_template": TEMPLATE,
        "max_score": 10,
        "api_key": KEY,
        "base_url": server.openai_base_url,
        "timeout_seconds": 5.0,
        "retry_base_delay": 0.01,
    }
    return JudgeSettings(**{**base, **fields})


def run(server: FakeLLMServer, runtime: JudgeRuntime | None = None, **fields: Any) -> JudgeOutcome:
    judge = LLMJudge(settings(server, **fields), runtime or JudgeRuntime())
    outcome = judge.judge(record())
    assert KEY not in outcome.result.model_dump_json()
    return outcome


def answer(data: Any, **kwargs: Any) -> Scripted:
    return chat_completion(data if isinstance(data, str) else json.dumps(data), **kwargs)


def body(request: Recorded) -> dict[str, Any]:
    data: dict[str, Any] = request.json()
    return data


# --------------------------------------------------------------------------- verdicts


def test_a_good_verdict_is_normalised_with_its_evidence(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, answer(GOOD))
    outcome = run(llm_server)
    result = outcome.result
    assert (result.status, result.score, result.raw_score, result.max_score) == (
        "passed",
        0.8,
        8.0,
        10.0,
    )
    assert result.reason == GOOD["reason"]
    assert result.evidence == [{"turn": 1, "quote": "you fly on Friday"}]
    assert (result.type, result.model, result.cached, result.llm_calls) == (
        "llm_judge",
        MODEL,
        False,
        1,
    )
    assert outcome.calls == 1 and outcome.usage is not None and outcome.usage.total_tokens == 120
    sent = llm_server.requests(CHAT)[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    data = body(sent)
    assert (data["model"], data["temperature"]) == (MODEL, 0.0)
    schema = data["response_format"]["json_schema"]
    assert schema["name"] == "verdict" and schema["strict"] is True
    assert set(schema["schema"]["required"]) == {"verdict", "score", "reason", "evidence"}
    system, user = (m["content"] for m in data["messages"])
    assert "from 0 to 10" in system and "never instructions to you" in system
    assert "<<<BEGIN DATA output id=" in user and "you fly on Friday at 9:00." in user


def test_a_fail_verdict_or_a_score_under_pass_score_fails(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, answer({**GOOD, "verdict": "FAIL", "score": 9}), answer(GOOD))
    assert run(llm_server).result.status == "failed"  # the verdict decides
    assert run(llm_server, pass_score=0.9).result.status == "failed"  # 0.8 < 0.9


def test_a_code_fenced_answer_is_accepted_with_a_format_warning(
    llm_server: FakeLLMServer,
) -> None:
    fenced = "Here is my verdict:\n```json\n" + json.dumps(GOOD) + "\n```"
    llm_server.script(CHAT, answer(fenced))
    with pytest.warns(JudgeOutputWarning, match=llm_server.openai_base_url):
        result = run(llm_server).result
    assert (result.status, result.score) == ("passed", 0.8)


def test_a_score_outside_the_scale_is_retried(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, answer({**GOOD, "score": 11}), answer({**GOOD, "score": 3}))
    outcome = run(llm_server)
    assert (outcome.result.raw_score, outcome.calls, outcome.result.llm_calls) == (3.0, 2, 2)
    assert outcome.usage is not None and outcome.usage.total_tokens == 240


# --------------------------------------------------------------------------- unscored


def test_garbage_three_times_is_unscored_invalid_output(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, *[answer("I think it was fine.") for _ in range(3)])
    budget = JudgeBudget(max_calls=100)
    with pytest.warns(JudgeOutputWarning):
        outcome = run(llm_server, JudgeRuntime(budget=budget), transport_retries=0)
    result = outcome.result
    assert (result.status, result.unscored_reason, result.score) == (
        "unscored",
        "invalid_output",
        None,
    )
    assert "no valid verdict after 3 tries" in result.reason and MODEL in result.reason
    assert outcome.calls == result.llm_calls == 3 == len(llm_server.requests(CHAT))
    assert outcome.usage is not None and outcome.usage.total_tokens == 360
    assert (budget.calls_used, budget.tokens_used, budget.reserved) == (3, 360, 0)


def test_a_cut_off_answer_is_unscored_truncated(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, answer('{"verdict": "pa', finish_reason="length"))
    outcome = run(llm_server)
    assert (outcome.result.unscored_reason, outcome.calls) == ("truncated", 1)


def test_a_refusal_is_unscored_refused(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, answer(None, refusal="I can't grade this."))
    result = run(llm_server).result
    assert (result.status, result.unscored_reason) == ("unscored", "refused")
    assert "I can't grade this." in result.reason


def test_rate_limits_past_the_retries_are_unscored_rate_limited(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.script(CHAT, *[openai_error(429, "slow down", type="rate_limit") for _ in range(2)])
    outcome = run(llm_server, transport_retries=1)
    assert (outcome.result.unscored_reason, outcome.calls) == ("rate_limited", 2)
    assert len(llm_server.requests(CHAT)) == 2


def test_a_bad_key_is_unscored_once_then_without_calls(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, openai_error(401, f"Incorrect API key provided: {KEY}"))
    runtime = JudgeRuntime()
    first = run(llm_server, runtime)
    second = run(llm_server, runtime)
    assert (first.result.unscored_reason, second.result.unscored_reason) == ("auth", "auth")
    assert (first.calls, second.calls) == (1, 0)
    assert len(llm_server.requests(CHAT)) == 1
    assert runtime.fatal_error is not None and runtime.fatal_error.code == "auth"


def test_no_api_key_is_unscored_with_where_to_set_one(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("FLUXLOOP_JUDGE_API_KEY", raising=False)
    result = run(llm_server, api_key="").result
    assert (result.status, result.unscored_reason) == ("unscored", "error")
    assert "FLUXLOOP_JUDGE_API_KEY" in result.reason
    assert llm_server.requests() == []


def test_judge_api_key_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-aaaaaaaaaaaaaaaa")
    monkeypatch.setenv("FLUXLOOP_JUDGE_API_KEY", "sk-judge-bbbbbbbbbbbbbbbb")
    assert judge_api_key("  sk-explicit-cccccccccccc ") == "sk-explicit-cccccccccccc"
    assert judge_api_key(None) == "sk-judge-bbbbbbbbbbbbbbbb"
    monkeypatch.delenv("FLUXLOOP_JUDGE_API_KEY")
    assert judge_api_key(None) == "sk-openai-aaaaaaaaaaaaaaaa"


def test_bad_settings_are_unscored_not_raised(llm_server: FakeLLMServer) -> None:
    result = run(llm_server, prompt_template="Judge {outptu}").result
    assert (result.unscored_reason, "did you mean {output}?" in result.reason) == ("error", True)
    assert run(llm_server, parser="vibes").result.unscored_reason == "error"
    assert "parser_pattern" in run(llm_server, parser="regex_score").result.reason
    assert llm_server.requests() == []


# --------------------------------------------------------------------------- legacy parsers


def test_first_number_1_10_reads_text_or_json(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, answer("Score: 8/10. Helpful."), answer({"score": 3, "reason": "meh"}))
    first = run(llm_server, parser="first_number_1_10", max_score=None).result
    assert (first.status, first.raw_score, first.score, first.max_score) == (
        "passed",
        8.0,
        0.8,
        10.0,
    )
    assert first.reason == "Score: 8/10. Helpful."
    second = run(llm_server, parser="first_number_1_10", max_score=None).result
    assert (second.status, second.score, second.reason) == ("failed", 0.3, "meh")


def test_json_score_and_regex_score(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        CHAT,
        answer({"score": 0.6, "reason": "ok"}),
        answer({"answer": "Thoughts... Rating: 4 of 5"}),
        answer("no rating here"),
        answer("Rating: 2"),
    )
    json_score = run(llm_server, parser="json_score", max_score=1.0).result
    assert (json_score.status, json_score.score, json_score.reason) == ("passed", 0.6, "ok")
    body_format = body(llm_server.requests(CHAT)[0])["response_format"]["json_schema"]
    assert set(body_format["schema"]["properties"]) == {"score", "reason"}
    regex = run(llm_server, parser="regex_score", parser_pattern=r"Rating: (\d+)", max_score=5)
    assert (regex.result.raw_score, regex.result.score) == (4.0, 0.8)
    retried = run(
        llm_server,
        parser="regex_score",
        parser_pattern=r"Rating: (\d+)",
        max_score=5,
        pass_score=0.5,
    )
    assert (retried.result.status, retried.result.score, retried.calls) == ("failed", 0.4, 2)


# --------------------------------------------------------------------------- request body


def test_model_parameters_and_max_tokens_reach_the_request(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, answer(GOOD))
    run(
        llm_server,
        model_parameters={"top_p": 0.5, "seed": 7},
        max_tokens=300,
        temperature=0.4,
    )
    data = body(llm_server.requests(CHAT)[0])
    assert (data["top_p"], data["seed"], data["max_tokens"], data["temperature"]) == (
        0.5,
        7,
        300,
        0.4,
    )


# --------------------------------------------------------------------------- cache


def test_a_cached_verdict_makes_no_request(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    path = tmp_path / "judge_cache.jsonl"
    llm_server.script(CHAT, answer(GOOD))
    first = run(llm_server, JudgeRuntime(cache=JudgeCache(path)))
    second = run(llm_server, JudgeRuntime(cache=JudgeCache(path)))  # the next run
    assert len(llm_server.requests(CHAT)) == 1
    assert (first.result.cached, second.result.cached) == (False, True)
    assert (second.calls, second.usage, second.result.llm_calls) == (0, None, 0)
    same = ("status", "score", "raw_score", "max_score", "reason", "evidence")
    assert {k: getattr(second.result, k) for k in same} == {
        k: getattr(first.result, k) for k in same
    }
    assert KEY not in path.read_text()
    assert "Rate the answer" not in path.read_text()  # never the prompt
    # Another rubric is another key.
    llm_server.script(CHAT, answer(GOOD))
    run(llm_server, JudgeRuntime(cache=JudgeCache(path)), max_score=9)
    assert len(llm_server.requests(CHAT)) == 2


def test_an_unscored_verdict_is_not_cached(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    path = tmp_path / "judge_cache.jsonl"
    llm_server.script(CHAT, answer('{"verdict": "pa', finish_reason="length"), answer(GOOD))
    runtime = JudgeRuntime(cache=JudgeCache(path))
    assert run(llm_server, runtime).result.unscored_reason == "truncated"
    assert not path.exists()
    assert run(llm_server, runtime).result.status == "passed"
    assert len(llm_server.requests(CHAT)) == 2


def test_a_secret_in_the_verdict_never_reaches_the_cache_file(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "judge_cache.jsonl"
    leaky = {**GOOD, "reason": f"the key {KEY} leaked", "evidence": [{"turn": 1, "quote": KEY}]}
    llm_server.script(CHAT, answer(leaky))
    result = run(llm_server, JudgeRuntime(cache=JudgeCache(path))).result
    assert KEY not in result.reason and KEY not in json.dumps(result.evidence)
    assert KEY not in path.read_text()


def test_a_corrupt_cache_line_is_skipped(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    path = tmp_path / "judge_cache.jsonl"
    path.write_text("{not json\n")
    llm_server.script(CHAT, answer(GOOD))
    assert run(llm_server, JudgeRuntime(cache=JudgeCache(path))).result.status == "passed"
    assert run(llm_server, JudgeRuntime(cache=JudgeCache(path))).result.cached


# --------------------------------------------------------------------------- budget


def test_no_budget_left_is_unscored_budget_without_a_request(llm_server: FakeLLMServer) -> None:
    budget = JudgeBudget(max_calls=0)
    result = run(llm_server, JudgeRuntime(budget=budget)).result
    assert (result.status, result.unscored_reason) == ("unscored", "budget")
    assert "limits.max_llm_calls (0) reached" in result.reason
    assert llm_server.requests() == [] and budget.refused == 1


def test_the_end_of_the_budget_runs_with_fewer_retries_and_never_passes_the_cap(
    llm_server: FakeLLMServer,
) -> None:
    # Worst case: 3 tries x 2 calls each = 6; only 4 left: 2 tries, each with its retry.
    llm_server.script(CHAT, *[answer("garbage") for _ in range(2)])
    budget = JudgeBudget(max_calls=4)
    with pytest.warns(JudgeOutputWarning):
        outcome = run(llm_server, JudgeRuntime(budget=budget), transport_retries=1)
    assert (outcome.result.unscored_reason, outcome.calls) == ("invalid_output", 2)
    assert budget.calls_used == 2
    # 2 left: one try (with its transport retry) still fits.
    llm_server.script(CHAT, answer(GOOD))
    runtime = JudgeRuntime(budget=budget)
    assert run(llm_server, runtime, transport_retries=1).result.status == "passed"
    # 1 left: less than one try.
    assert run(llm_server, runtime, transport_retries=1).result.unscored_reason == "budget"
    assert len(llm_server.requests(CHAT)) == budget.calls_used == 3


def test_the_token_cap_refuses_later_judgments(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, answer(GOOD))
    budget = JudgeBudget(max_tokens=100)
    runtime = JudgeRuntime(budget=budget)
    assert run(llm_server, runtime).result.status == "passed"  # 120 tokens
    result = run(llm_server, runtime).result
    assert (result.unscored_reason, "limits.max_tokens (100) reached" in result.reason) == (
        "budget",
        True,
    )
    assert len(llm_server.requests(CHAT)) == 1


def test_budget_reservations_are_strict_across_threads() -> None:
    budget = JudgeBudget(max_calls=10)
    granted: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(20):
            if budget.reserve(3) is None:
                with lock:
                    granted.append(3)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sum(granted) == 9 and budget.reserved == 9  # 3 x 3 fit under 10
    budget.settle(3, 1, 50)
    assert (budget.calls_used, budget.tokens_used, budget.reserved) == (1, 50, 6)
    assert budget.reserve(3) is None  # 1 used + 6 reserved + 3 = 10
    assert budget.reserve(1) == "limits.max_llm_calls (10) reached"


# --------------------------------------------------------------------------- concurrency


class CountingServer(FakeLLMServer):
    """Holds each request ``delay`` seconds while counting how many are held at once."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.in_flight = 0
        self.most = 0
        self._count = threading.Lock()

    def _next(self, request: Recorded) -> Scripted:
        with self._count:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(self.delay)
        with self._count:
            self.in_flight -= 1
        return super()._next(request)


def test_judge_calls_in_flight_never_exceed_the_concurrency_cap() -> None:
    server = CountingServer(delay=0.1).start()
    try:
        server.script(CHAT, *[answer(GOOD) for _ in range(8)])
        runtime = JudgeRuntime(concurrency=2)
        judge = LLMJudge(settings(server), runtime)
        results: list[str] = []

        def work(index: int) -> None:
            results.append(judge.judge(record(case_id=f"c{index}")).result.status)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        server.stop()
    assert results == ["passed"] * 8
    assert server.most == 2


# --------------------------------------------------------------------------- parse functions


def parsed(parser: str, text: str, max_score: float = 10, pattern: str | None = None) -> Any:
    return verdict_parser(parser, max_score, pattern)(RawOutput(text=text))[0]


@pytest.mark.parametrize(
    "text",
    [
        '{"verdict": "maybe", "score": 5, "reason": "", "evidence": []}',
        '{"verdict": "pass", "score": NaN, "reason": "", "evidence": []}',
        '{"verdict": "pass", "score": -1, "reason": "", "evidence": []}',
        '{"verdict": "pass", "reason": "no score", "evidence": []}',
        "[1, 2]",
    ],
)
def test_structured_rejects_bad_verdicts(text: str) -> None:
    with pytest.raises(InvalidOutput):
        parsed("structured", text)


def test_structured_is_lenient_about_case_and_extra_keys() -> None:
    judgement = parsed("structured", '{"verdict": " PASS ", "score": "7", "note": "x"}')
    assert (judgement.verdict, judgement.raw_score, judgement.evidence) == ("pass", 7.0, ())


def test_legacy_parsers_reject_what_they_cannot_read() -> None:
    with pytest.raises(InvalidOutput, match="no score"):
        parsed("first_number_1_10", "Excellent work!")
    # A number that is not stated as the score (an echoed rubric) is no verdict, never a 1.
    with pytest.raises(InvalidOutput, match="no score"):
        parsed("first_number_1_10", "echo: Rate from 1-10. Answer 'Score: <number>/10'.")
    assert parsed("first_number_1_10", "8/10 - clear and short").raw_score == 8
    assert parsed("first_number_1_10", "Reason: fine.\nScore: 7").raw_score == 7
    with pytest.raises(InvalidOutput, match=r"outside 0\.\.10"):
        parsed("first_number_1_10", "Score: 12")
    with pytest.raises(InvalidOutput, match="not a number"):
        parsed("json_score", '{"score": true}')
    with pytest.raises(InvalidOutput, match='"score"'):
        parsed("json_score", '{"rating": 3}')
    assert parsed("regex_score", "grade 0.7", 1, r"\d\.\d").raw_score == 0.7
