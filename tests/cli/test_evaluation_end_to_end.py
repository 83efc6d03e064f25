"""Evaluation, tried as a new user would: verdicts per case, reliability, gates, judges.

Each test writes a small project to ``tmp_path`` (``configs/simulation.yaml``,
``configs/input.yaml`` with 2 personas, ``configs/evaluation.yaml`` and ``agent.py``) and runs
it in real subprocesses: ``fluxloop run experiment --yes`` and ``python -m pytest
--fluxloop-config``. The judge is :mod:`support.judge_server` (an OpenAI-compatible server on
127.0.0.1 that passes a refund answer, fails anything else and answers GARBAGE with non-JSON);
the agent makes one real ``openai`` call to :mod:`support.echo_llm` so its own token usage is
known exactly, then answers from its input, persona and iteration:

* ``How do I get my money back?`` → a refund answer (judge: pass 9/10), except for the
  ``expert`` persona at iteration 2 (a wrong answer: that group is flaky);
* ``When are you open?`` → a wrong answer (judge: fail 2/10);
* ``Say something odd`` → ``GARBAGE`` (judge: non-JSON 3 times → ``unscored``).

Every expected figure is computed here from the per-case outcomes the run wrote, never
copied from a run.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli_helpers import describe, run_child_pytest, run_cli
from support.echo_llm import EchoServer, running_echo_server, words
from support.judge_server import (
    FAIL_REASON,
    FAIL_SCORE,
    PASS_REASON,
    PASS_SCORE,
    JudgeServer,
    running_judge_server,
)

pytestmark = pytest.mark.slow

REFUND = "How do I get my money back?"
HOURS = "When are you open?"
ODD = "Say something odd"
REFUND_ANSWER = "You can get a refund within 30 days."
WRONG_ANSWER = "We are open on Mars."
LATER_ANSWER = "Please ask again later."
PERSONAS = ("novice", "expert")
ITERATIONS = 3
INVALID_OUTPUT_TRIES = 3  # one call + the two invalid-output retries (docs/evaluation.md)

AGENT = f'''\
"""A deterministic support agent: one LLM call (for its token counts), then a canned answer."""

import os
import time

import openai

client = openai.OpenAI(
    base_url=os.environ["AGENT_LLM_URL"] + "/v1", api_key="agent-key", max_retries=0
)


def run(input_text, persona, iteration):
    time.sleep(0.02)
    client.chat.completions.create(
        model="agent-model", messages=[{{"role": "user", "content": input_text}}]
    )
    if "money back" in input_text:
        if input_text == {REFUND!r} and persona == "expert" and iteration == 2:
            return {LATER_ANSWER!r}
        return {REFUND_ANSWER!r}
    if "odd" in input_text:
        return "GARBAGE GARBAGE GARBAGE"
    return {WRONG_ANSWER!r}
'''

JUDGE = {
    "name": "helpful",
    "type": "llm_judge",
    "model": "judge-model",
    "max_score": 10,
    "prompt_template": "The user ({persona}) got this answer:\n{output}\nScore it from 0 to 10.",
}
RULES = {"name": "answered", "type": "rule_based", "rules": [{"check": "output_not_empty"}]}


def evaluation(**extra: Any) -> dict[str, Any]:
    """The project's evaluation.yaml: a rule and a judge, weighted sum, threshold 0.7."""
    return {
        "evaluation_goal": {"text": "Answers solve the customer's problem."},
        "evaluators": [RULES, JUDGE],
        "aggregate": {"method": "weighted_sum", "threshold": 0.7},
        **extra,
    }


def expected_verdict(row: dict[str, Any]) -> str:
    """What the agent above and the judge server make of one case."""
    if row["input"] == ODD:
        return "unscored"
    if row["input"] == REFUND and row["persona"] == "expert" and row["iteration"] == 2:
        return "failed"
    return "passed" if "money back" in row["input"] else "failed"


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def judge() -> Iterator[JudgeServer]:
    with running_judge_server() as server:
        yield server


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with running_echo_server() as server:
        yield server


def write_project(
    root: Path,
    *,
    inputs: tuple[str, ...] = (REFUND, HOURS, ODD),
    evaluation_yaml: dict[str, Any] | None = None,
) -> Path:
    """A project in ``root``: 2 personas × ``inputs`` × 3 iterations."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "agent.py").write_text(AGENT, encoding="utf-8")
    configs = root / "configs"
    configs.mkdir(parents=True)
    simulation = {
        "name": "eval_e2e",
        "iterations": ITERATIONS,
        "runner": {"target": "agent:run", "timeout_seconds": 30, "max_retries": 0},
        "output_directory": "experiments",
    }
    personas = [{"name": name, "description": f"a {name} customer"} for name in PERSONAS]
    given = {"personas": personas, "base_inputs": [{"input": text} for text in inputs]}
    dump = {
        "simulation.yaml": simulation,
        "input.yaml": given,
        "evaluation.yaml": evaluation_yaml if evaluation_yaml is not None else evaluation(),
    }
    for name, data in dump.items():
        (configs / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return root


def env_for(judge: JudgeServer, echo: EchoServer, *, key: bool = True) -> dict[str, str]:
    env = {"OPENAI_BASE_URL": judge.url + "/v1", "AGENT_LLM_URL": echo.url}
    if key:
        env["OPENAI_API_KEY"] = "test-key"
    return env


def run_pytest(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest --fluxloop-config configs/simulation.yaml ARGS`` in ``root``."""
    # langsmith's pytest plugin (installed with langchain) costs ~1 s per process, workers
    # included, and plays no part here.
    config = ("--fluxloop-config", "configs/simulation.yaml")
    return run_child_pytest(*config, *args, "-p", "no:langsmith_plugin", cwd=root, env=env)


def experiments(root: Path) -> list[Path]:
    return sorted((root / "experiments").glob("exp_*"))


def only_experiment(root: Path) -> Path:
    found = experiments(root)
    assert len(found) == 1, found
    return found[0]


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def summary(exp: Path) -> dict[str, Any]:
    return json.loads((exp / "summary.json").read_text(encoding="utf-8"))


def failed_items(out: str) -> set[str]:
    """The case ids pytest's short summary lists as FAILED."""
    return set(re.findall(r"^FAILED \S+?::\S+?\[(.+?)\]", out, flags=re.MULTILINE))


def by_hand(lines: list[dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    """pass@k, pass^k and the success rate per (input, persona) and overall, from the
    per-case outcomes (a failed agent or verdict is a fail, an unscored verdict is left out)."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        group = counts[(line["input"], line["persona"])]
        verdict = (line.get("evaluation") or {}).get("verdict")
        if line["success"] and verdict == "unscored":
            continue
        group[0] += 1
        group[1] += bool(line["success"] and verdict != "failed")
    groups = {}
    for key, (n, c) in counts.items():
        groups[key] = {
            "n": n,
            "c": c,
            "pass_at_k": {
                str(k): 1 - math.comb(n - c, k) / math.comb(n, k) if n >= k else None for k in ks
            },
            "pass_hat_k": {
                str(k): math.comb(c, k) / math.comb(n, k) if n >= k else None for k in ks
            },
            "flaky": 0 < c < n,
        }

    def mean(key: str, k: int) -> float | None:
        known = [g[key][str(k)] for g in groups.values() if g[key][str(k)] is not None]
        return sum(known) / len(known) if known else None

    runs = sum(g["n"] for g in groups.values())
    passes = sum(g["c"] for g in groups.values())
    overall = {
        "groups": len(groups),
        "runs": runs,
        "passes": passes,
        "success_rate": passes / runs if runs else None,
        "pass_at_k": {str(k): mean("pass_at_k", k) for k in ks},
        "pass_hat_k": {str(k): mean("pass_hat_k", k) for k in ks},
        "flaky_groups": sum(g["flaky"] for g in groups.values()),
    }
    return {"groups": groups, "overall": overall}


def check_reliability(block: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's reliability block equals the figures computed by hand; returns them."""
    reliability = block["reliability"]
    assert reliability["k"] == [1, 3]  # 1, 3 and the iteration count (3)
    hand = by_hand(lines, reliability["k"])
    overall = reliability["overall"]
    for name, value in hand["overall"].items():
        assert overall[name] == pytest.approx(value), (name, overall, hand["overall"])
    reported = {(g["input"], g["persona"]): g for g in reliability["groups"]}
    assert set(reported) == set(hand["groups"])
    for key, want in hand["groups"].items():
        got = reported[key]
        for name, value in want.items():
            assert got[name] == pytest.approx(value), (key, name, got, want)
    # Groups come worst first.
    order = [
        g["pass_hat_k"]["3"] for g in reliability["groups"] if g["pass_hat_k"]["3"] is not None
    ]
    assert order == sorted(order)
    return hand


def evaluations(exp: Path) -> dict[str, Any]:
    """Each case's short evaluation (verdict, score, each evaluator's status and score) from
    trace_summary.jsonl; whether a judge result came from the cache is left out."""
    out: dict[str, Any] = {}
    for line in rows(exp / "trace_summary.jsonl"):
        short = line["evaluation"]
        evaluators = {
            name: {k: v for k, v in result.items() if k != "cached"}
            for name, result in short["evaluators"].items()
        }
        out[line["case_id"]] = {**short, "evaluators": evaluators}
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- tests


def test_verdicts_reliability_gate_and_a_cached_rerun(
    tmp_path: Path, judge: JudgeServer, echo: EchoServer
) -> None:
    root = write_project(tmp_path)
    env = env_for(judge, echo)
    before, kinds_before = judge.snapshot()

    proc = run_cli("run", "experiment", "--yes", "--gate", "pass^3>=0.9", cwd=root, env=env)

    assert proc.returncode == 1, describe(proc)
    out = proc.stdout
    exp = only_experiment(root)
    lines = rows(exp / "trace_summary.jsonl")
    traces = {t["case_id"]: t for t in rows(exp / "traces.jsonl")}
    assert len(lines) == len(traces) == 3 * len(PERSONAS) * ITERATIONS
    verdicts = {line["case_id"]: line["evaluation"]["verdict"] for line in lines}
    for line in lines:
        assert line["success"], line
        assert verdicts[line["case_id"]] == expected_verdict(line), line

    # Items fail for exactly the cases whose verdict failed; each says which evaluator, its
    # score and its reason.
    failing = {cid for cid, v in verdicts.items() if v == "failed"}
    assert failed_items(out) == failing, describe(proc)
    judge_line = re.compile(
        r"FAIL +helpful \(llm_judge judge-model, weight 1(, cached)?\): "
        + re.escape(f"score {FAIL_SCORE / 10:.2f} ({FAIL_SCORE}/10) - {FAIL_REASON}")
    )
    for case_id in failing:
        block = out.split(f"FluxLoop case {case_id} failed evaluation: ", 1)[1]
        block = block.split("\n_", 1)[0].split("\n=", 1)[0]
        assert block.startswith("score 0.60 < threshold 0.7"), block
        assert judge_line.search(block), block
        assert re.search(r"PASS +answered \(rule_based, weight 1\): score 1\.00", block), block

    # Garbage is unscored, not a failure, and counted with its reason.
    unscored = {cid for cid, v in verdicts.items() if v == "unscored"}
    assert unscored and not unscored & failed_items(out)
    block = summary(exp)["evaluation"]
    helpful = block["evaluators"]["helpful"]
    assert helpful["unscored"] == len(unscored)
    assert helpful["unscored_reasons"] == {"invalid_output": len(unscored)}
    assert helpful["passed"] == sum(v == "passed" for v in verdicts.values())
    assert helpful["failed"] == len(failing)
    assert block["verdicts"] == {
        v: sum(x == v for x in verdicts.values()) for v in set(verdicts.values())
    }
    assert block["unscored"] == len(unscored)

    hand = check_reliability(block, lines)
    assert hand["overall"]["flaky_groups"] == 1  # the expert asking for a refund

    # Each summary line carries the short evaluation, each trace the full one.
    for line in lines:
        short = line["evaluation"]
        assert set(short) == {"verdict", "score", "evaluators"}
        assert set(short["evaluators"]) == {"answered", "helpful"}
        full = traces[line["case_id"]]["evaluation"]
        assert full["verdict"] == short["verdict"] and full["threshold"] == 0.7
        result = {e["name"]: e for e in full["evaluators"]}["helpful"]
        assert result["status"] == short["evaluators"]["helpful"]["status"]
        if line["output"] == REFUND_ANSWER:
            assert (result["raw_score"], result["max_score"]) == (PASS_SCORE, 10)
            assert result["score"] == pytest.approx(PASS_SCORE / 10)
            assert result["reason"] == PASS_REASON
            assert result["evidence"] == [{"turn": 1, "quote": REFUND_ANSWER}]
            assert full["score"] == pytest.approx((1 + PASS_SCORE / 10) / 2)
        elif line["input"] == ODD:
            assert result["unscored_reason"] == "invalid_output"
            assert result["llm_calls"] == INVALID_OUTPUT_TRIES and not result["cached"]

    # Judge calls: the cache answers a prompt seen before in the run; garbage is never cached.
    count, kinds = judge.snapshot()
    calls = count - before
    judged = [t for t in traces.values() if t["input"] != ODD]
    distinct_prompts = {(t["persona"], t["output"]) for t in judged}
    grew = {kind: kinds.get(kind, 0) - kinds_before.get(kind, 0) for kind in kinds}
    assert grew.get("pass", 0) + grew.get("fail", 0) == len(distinct_prompts)
    assert grew["garbage"] == INVALID_OUTPUT_TRIES * len(unscored)
    made = sum(
        e["llm_calls"]
        for t in traces.values()
        for e in t["evaluation"]["evaluators"]
        if e["llm_calls"]
    )
    assert made == calls

    # Judge tokens are the judge's, per trace and in the summary; the agent's are its own.
    totals = {"judge_calls": 0, "judge_tokens": 0, "agent_in": 0, "agent_out": 0}
    for line in lines:
        usage = line["token_usage"]
        assert set(usage) <= {"agent", "judge"}, usage
        agent = usage["agent"]
        assert agent["input_tokens"] == words(line["input"])
        assert agent["output_tokens"] == words("echo: " + line["input"])
        totals["agent_in"] += agent["input_tokens"]
        totals["agent_out"] += agent["output_tokens"]
        helpful_calls = {e["name"]: e for e in traces[line["case_id"]]["evaluation"]["evaluators"]}[
            "helpful"
        ]["llm_calls"]
        if helpful_calls:
            assert usage["judge"]["calls"] == helpful_calls
            assert usage["judge"]["total_tokens"] > 0
            totals["judge_calls"] += usage["judge"]["calls"]
            totals["judge_tokens"] += usage["judge"]["total_tokens"]
        else:
            assert "judge" not in usage, usage  # a cache hit costs nothing
        assert traces[line["case_id"]]["token_usage"] == usage
    run_usage = summary(exp)["token_usage"]
    assert run_usage["judge"]["calls"] == totals["judge_calls"] == calls
    assert run_usage["judge"]["total_tokens"] == totals["judge_tokens"]
    assert run_usage["agent"]["input_tokens"] == totals["agent_in"]
    assert run_usage["agent"]["output_tokens"] == totals["agent_out"]

    # The gate fails, naming itself, the measured value and the worst group.
    want = hand["overall"]["pass_hat_k"]["3"]
    assert want < 0.9
    sufficient = [(g["pass_hat_k"]["3"], key) for key, g in hand["groups"].items() if g["n"] >= 3]
    _, (worst_input, worst_persona) = min(sufficient, key=lambda p: (p[0], p[1][1], p[1][0]))
    worst = hand["groups"][(worst_input, worst_persona)]
    shown = f"{worst_persona} / {worst_input!r} {worst['c']} of {worst['n']}"
    assert f"pass^3>=0.9 failed: measured {want:.3g}" in out, out
    assert shown in out.split("pass^3>=0.9 failed", 1)[1], out
    (gate,) = block["gates"]
    assert (gate["gate"], gate["passed"]) == ("pass^3>=0.9", False)
    assert gate["value"] == pytest.approx(want)

    # A re-run, under pytest-xdist this time, judges nothing it judged before: only the
    # (never cached) garbage is asked again, by the workers. Every case gets the verdict it
    # got in one process.
    rerun = run_pytest(root, env, "-n", "2")
    assert rerun.returncode == 1, describe(rerun)
    count2, kinds2 = judge.snapshot()
    assert (kinds2.get("pass"), kinds2.get("fail")) == (kinds.get("pass"), kinds.get("fail"))
    assert count2 - count == INVALID_OUTPUT_TRIES * len(unscored)
    second = max(experiments(root))
    assert second != exp
    second_traces = rows(second / "traces.jsonl")
    assert {t["worker"] for t in second_traces} == {"gw0", "gw1"}
    for trace in second_traces:
        result = {e["name"]: e for e in trace["evaluation"]["evaluators"]}["helpful"]
        if trace["input"] == ODD:
            assert result["status"] == "unscored" and not result["cached"]
            assert result["llm_calls"] == INVALID_OUTPUT_TRIES
        else:
            assert result["cached"] is True and result["llm_calls"] == 0, result
            assert "judge" not in (trace["token_usage"] or {})
    assert summary(second)["evaluation"]["judge"]["cached"] == len(judged)
    assert evaluations(second) == evaluations(exp)
    assert failed_items(rerun.stdout) == failing


def test_gates_when_every_item_passes(tmp_path: Path, judge: JudgeServer, echo: EchoServer) -> None:
    # Refunds pass for everyone here (no flaky input); GARBAGE is unscored, which passes.
    refund = "Can I get my money back for a kettle?"
    root = write_project(tmp_path / "project", inputs=(refund, ODD))
    env = env_for(judge, echo)

    # Under xdist, the judges answer in the workers; the gate measures the whole run.
    met = run_pytest(root, env, "-n", "2", "--fluxloop-gate", "pass^3>=0.9")
    assert met.returncode == 0, describe(met)
    assert not failed_items(met.stdout)
    exp = only_experiment(root)
    assert {t["worker"] for t in rows(exp / "traces.jsonl")} == {"gw0", "gw1"}
    lines = rows(exp / "trace_summary.jsonl")
    for line in lines:
        want = "unscored" if line["input"] == ODD else "passed"
        assert line["evaluation"]["verdict"] == want, line
    block = summary(exp)["evaluation"]
    hand = check_reliability(block, lines)
    assert hand["overall"]["pass_hat_k"]["3"] == 1.0
    assert block["gates"][0]["passed"] is True
    assert block["unscored"] == len(PERSONAS) * ITERATIONS

    # Every item passes, but a gate fails: exit 1, naming the gate and the measured value.
    slow = run_cli("run", "experiment", "--yes", "--gate", "max_latency_ms<5", cwd=root, env=env)
    assert slow.returncode == 1, describe(slow)
    assert not failed_items(slow.stdout)
    assert f"{len(PERSONAS) * ITERATIONS * 2} passed" in slow.stdout, describe(slow)
    latest = max(experiments(root))
    (gate,) = summary(latest)["evaluation"]["gates"]
    assert gate["passed"] is False and gate["value"] >= 20  # the agent sleeps 20 ms
    assert f"max_latency_ms<5 failed: measured {gate['value']:.1f}" in slow.stdout, describe(slow)
    # One process gives every case the verdict the xdist workers gave it.
    assert evaluations(latest) == evaluations(exp)

    # A gate that can't be read: exit 4 before any case runs, no experiment folder.
    fresh = write_project(tmp_path / "fresh")
    count = judge.count
    bad = run_cli("run", "experiment", "--yes", "--gate", "pass^3=>0.9", cwd=fresh, env=env)
    assert bad.returncode == 4, describe(bad)
    assert "pass^3=>0.9" in bad.stdout + bad.stderr
    assert not (fresh / "experiments").exists()
    assert judge.count == count


def test_no_evaluate_then_evaluate_experiment(
    tmp_path: Path, judge: JudgeServer, echo: EchoServer
) -> None:
    root = write_project(tmp_path)
    env = env_for(judge, echo)
    count = judge.count
    proc = run_cli("run", "experiment", "--yes", "--no-evaluate", cwd=root, env=env)
    assert proc.returncode == 0, describe(proc)  # the agent answered every case
    assert judge.count == count
    exp = only_experiment(root)
    for trace in rows(exp / "traces.jsonl"):
        assert trace.get("evaluation") is None
        assert "judge" not in (trace["token_usage"] or {})
    for line in rows(exp / "trace_summary.jsonl"):
        assert line.get("evaluation") is None
    before = snapshot(exp)

    proc = run_cli("evaluate", "experiment", exp, cwd=root, env=env)
    assert proc.returncode == 0, describe(proc)  # failing cases are in the report
    assert judge.count > count
    out = exp / "evaluation"
    assert sorted(p.name for p in out.iterdir()) == ["per_trace.jsonl", "report.md", "summary.json"]
    assert snapshot(exp) == {**before, **{f"evaluation/{k}": v for k, v in snapshot(out).items()}}
    per_trace = rows(out / "per_trace.jsonl")
    assert len(per_trace) == 3 * len(PERSONAS) * ITERATIONS
    for line in per_trace:
        assert line["verdict"] == expected_verdict(line), line
    result = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    lines = [{**line, "evaluation": {"verdict": line["verdict"]}} for line in per_trace]
    check_reliability(result["evaluation"], lines)
    report = (out / "report.md").read_text(encoding="utf-8")
    for line in per_trace:
        if line["verdict"] == "failed":
            assert line["case_id"] in report

    again = run_cli("evaluate", "experiment", exp, cwd=root, env=env)
    assert again.returncode == 4, describe(again)
    assert str(out) in again.stdout + again.stderr and "--overwrite" in again.stderr + again.stdout

    outside = run_cli("evaluate", "experiment", exp, "--output", "../x", cwd=root, env=env)
    assert outside.returncode == 4, describe(outside)
    assert "must be inside the experiment folder" in outside.stdout + outside.stderr
    assert not (exp.parent / "x").exists()

    # Evaluated again: the cache answers every judge that scored; only garbage is asked again.
    count = judge.count
    garbage = sum(line["verdict"] == "unscored" for line in per_trace)
    gated = run_cli(
        "evaluate", "experiment", exp, "--overwrite", "--gate", "pass^3>=0.9", cwd=root, env=env
    )
    assert gated.returncode == 1, describe(gated)
    assert "gate FAILED: pass^3>=0.9 failed: measured" in gated.stdout
    assert judge.count - count == INVALID_OUTPUT_TRIES * garbage
    assert {k: v for k, v in snapshot(exp).items() if not k.startswith("evaluation/")} == before


BROKEN_RULES = {
    "name": "answered",
    "type": "rule_based",
    "rules": [{"check": "contain", "keywords": ["refund"]}, {"check": "contains"}],
}
BROKEN_JUDGE = {**JUDGE, "prompt_template": "Grade this answer: {outptu}"}


def config_error(
    root: Path, judge: JudgeServer, echo: EchoServer, evaluators: list[dict[str, Any]]
) -> str:
    """Run a project whose evaluation.yaml has ``evaluators``, with no judge API key: exit 4
    before any case (no experiment folder, no judge call); returns the output."""
    yaml_ = {"evaluators": evaluators, "aggregate": {"threshold": 0.7}}
    write_project(root, evaluation_yaml=yaml_)
    count = judge.count
    proc = run_cli("run", "experiment", "--yes", cwd=root, env=env_for(judge, echo, key=False))
    assert proc.returncode == 4, describe(proc)
    assert not (root / "experiments").exists()
    assert judge.count == count
    return proc.stdout + proc.stderr


def test_config_errors_before_any_case(
    tmp_path: Path, judge: JudgeServer, echo: EchoServer
) -> None:
    # The rules' problems, together, each naming the file, its line and the key.
    out = config_error(tmp_path / "rules", judge, echo, [BROKEN_RULES])
    path = tmp_path / "rules" / "configs" / "evaluation.yaml"
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    first, second = (lines.index(f"- check: {name}") + 1 for name in ("contain", "contains"))
    assert "2 configuration errors" in out, out
    assert (
        f"{path}:{first}: evaluators[0].rules[0].check: unknown check 'contain' "
        "(did you mean 'contains'?)" in out
    ), out
    assert f"{path}:{second}: evaluators[0].rules[1]: check 'contains' needs keywords" in out, out

    # The judge's problems, together: an unknown placeholder and no API key.
    out = config_error(tmp_path / "judge", judge, echo, [RULES, BROKEN_JUDGE])
    source = tmp_path / "judge" / "configs" / "evaluation.yaml"
    assert "2 evaluation problems" in out, out
    assert out.count(f"- {source}: evaluators[1] (helpful)") == 2, out
    assert "evaluators[1] (helpful).prompt_template: unknown placeholder {outptu}" in out
    assert "(did you mean {output}?)" in out
    assert "evaluators[1] (helpful): the openai judge needs an API key" in out
    assert "OPENAI_API_KEY" in out and "FLUXLOOP_JUDGE_API_KEY" in out


def test_config_errors_come_in_two_rounds_each_complete(
    tmp_path: Path, judge: JudgeServer, echo: EchoServer
) -> None:
    """The file's shape is checked with every file's other problems (with lines), then the
    evaluation's meaning (placeholders, keys) all at once: two rounds, each complete."""
    out = config_error(tmp_path / "first", judge, echo, [BROKEN_RULES, BROKEN_JUDGE])
    assert "unknown check 'contain' (did you mean 'contains'?)" in out, out
    assert "check 'contains' needs keywords" in out, out
    out = config_error(tmp_path / "second", judge, echo, [BROKEN_JUDGE])
    assert "unknown placeholder {outptu} (did you mean {output}?)" in out, out
    assert "needs an API key" in out, out


def test_judge_budget(tmp_path: Path, judge: JudgeServer, echo: EchoServer) -> None:
    # One input everyone gets a refund for; no cache, so every case asks the judge; no
    # transport retries, so a judgment reserves 3 calls (its invalid-output retries), else
    # 2, else 1 (budget.py: the worst case that still fits is reserved).
    # A similarity rule whose expected_path no case has is a notice, and is left out of the
    # score (never counted as 0).
    refund = "Can I get my money back for a kettle?"
    similar = {"check": "similarity", "expected_path": "metadata.expected"}
    rules = {**RULES, "rules": [*RULES["rules"], similar]}
    yaml_ = {
        **evaluation(limits={"max_llm_calls": 2, "cache": False}, advanced={"llm_retries": 0}),
        "evaluators": [rules, JUDGE],
    }
    root = write_project(tmp_path, inputs=(refund,), evaluation_yaml=yaml_)
    count = judge.count
    proc = run_cli(
        "run", "experiment", "--yes", "--strict-judges", cwd=root, env=env_for(judge, echo)
    )
    # Every item passes (unscored is not a failure), but --strict-judges fails the run.
    assert proc.returncode == 1, describe(proc)
    assert not failed_items(proc.stdout)
    made = judge.count - count
    cases = len(PERSONAS) * ITERATIONS
    assert made <= 2  # never past the cap
    assert made == 2  # and the budget is spent, not left unused
    exp = only_experiment(root)
    block = summary(exp)["evaluation"]
    helpful = block["evaluators"]["helpful"]
    assert helpful["passed"] == made
    assert helpful["unscored"] == cases - made
    assert helpful["unscored_reasons"] == {"budget": cases - made}
    assert block["judge"]["budget_refused"] == cases - made
    statuses = sorted(
        {e["name"]: e for e in t["evaluation"]["evaluators"]}["helpful"]["status"]
        for t in rows(exp / "traces.jsonl")
    )
    assert statuses == ["passed"] * made + ["unscored"] * (cases - made)
    assert summary(exp)["token_usage"]["judge"]["calls"] == made
    assert f"{cases - made} evaluator result(s) unscored" in proc.stdout, describe(proc)
    out = proc.stdout + proc.stderr
    assert "rules[1]: expected_path 'metadata.expected' is in none of the cases" in out, out
    for trace in rows(exp / "traces.jsonl"):
        answered = {e["name"]: e for e in trace["evaluation"]["evaluators"]}["answered"]
        assert (answered["status"], answered["score"]) == ("passed", 1.0), answered
        assert [r["passed"] for r in answered["rules"]] == [True, None], answered
