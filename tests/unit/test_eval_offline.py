"""``fluxloop evaluate experiment DIR``: evaluating a finished run without running the agent
(``pytest_fluxloop.evaluation.offline``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.engine_helpers import isolated_imports
from support.eval_helpers import make_record
from support.experiment_helpers import make_project, only_experiment_dir, read_jsonl
from support.llm_server import CHAT, FakeLLMServer, chat_completion, llm_server

from pytest_fluxloop.artifacts.paths import folder_inside
from pytest_fluxloop.config import load_config
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.evaluation.offline import evaluate_experiment, read_traces
from pytest_fluxloop.records import TraceRecord
from pytest_fluxloop.run import Experiment

__all__ = ["llm_server"]  # the fixture, imported for pytest

KEY = "sk-offline-judge-0123456789abcdefgh"


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def trace(case_id: str, **fields: Any) -> dict[str, Any]:
    """The ``traces.jsonl`` line of a successful trace of ``case_id``."""
    defaults = {
        "trace_id": f"t-{case_id}",
        "case_id": case_id,
        "persona": "p",
        "input": "Where is my parcel?",
        "output": "On its way.",
        "duration_ms": 5.0,
    }
    return make_record(**{**defaults, **fields}).model_dump(mode="json")


def write_lines(path: Path, rows: list[Any], tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row) + "\n" for row in rows) + tail
    path.write_text(text, encoding="utf-8")
    return path


def write_experiment(exp: Path, traces: list[dict[str, Any]], tail: str = "") -> Path:
    """An experiment folder as a run leaves it: ``traces.jsonl`` (plus ``tail``) and the
    ``trace_summary.jsonl`` line of each trace (a case counts by its latest line)."""
    write_lines(exp / "traces.jsonl", traces, tail=tail)
    lines = [TraceRecord.model_validate(t).summary_line() for t in traces]
    return write_lines(exp / "trace_summary.jsonl", lines)


def snapshot(directory: Path, skip: str = "evaluation") -> dict[str, str]:
    """sha256 of every file under ``directory`` except those under ``skip``."""
    out = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and relative.parts[0] != skip:
            out[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------- read_traces


def test_the_latest_record_of_each_case_is_kept_in_file_order(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    write_experiment(
        exp,
        [
            trace("a", trace_id="t-a1", status="crashed", success=False, output=None),
            trace("b"),
            trace("a", trace_id="t-a2", output="second try"),
            trace("c", evaluation={"verdict": "failed", "score": 0.0}),
        ],
    )
    records, source = read_traces(exp)
    assert source == "traces.jsonl"
    assert [(r.case_id, r.output) for r in records] == [
        ("b", "On its way."),
        ("a", "second try"),
        ("c", "On its way."),
    ]
    assert all(r.evaluation is None for r in records)  # evaluated again, from scratch


def test_trace_summary_lines_are_read_when_traces_were_not_saved(tmp_path: Path) -> None:
    conversation = [
        {"turn_index": 1, "role": "user", "content": "Refund?", "source": "input"},
        {"turn_index": 1, "role": "assistant", "content": "Which order?", "source": "agent"},
        {"turn_index": 2, "role": "user", "content": "A-17", "source": "supervisor"},
        {"turn_index": 2, "role": "assistant", "content": "Done.", "source": "agent"},
    ]
    single = [
        {"turn_index": 1, "role": "user", "content": "Hi", "source": "input"},
        {"turn_index": 1, "role": "assistant", "content": "Hello", "source": "agent"},
    ]
    exp = tmp_path / "exp"
    write_lines(
        exp / "trace_summary.jsonl",
        [
            {
                "trace_id": "t1",
                "case_id": "multi",
                "iteration": 1,
                "persona": "p",
                "input": "Refund?",
                "output": "Done.",
                "duration_ms": 7.5,
                "success": True,
                "token_usage": {"agent": {"total_tokens": 12}},
                "conversation": conversation,
                "termination_reason": "goal_met",
                "evaluation": {"verdict": "passed"},
            },
            {
                "trace_id": "t2",
                "case_id": "single",
                "iteration": 0,
                "input": "Hi",
                "output": "Hello",
                "duration_ms": 1.0,
                "success": True,
                "conversation": single,
            },
            {
                "trace_id": "t3",
                "case_id": "broken",
                "iteration": 0,
                "input": "x",
                "output": None,
                "duration_ms": 1.0,
                "success": False,
                "error": "it broke",
                "error_kind": "agent",
            },
        ],
    )
    records, source = read_traces(exp)
    assert source == "trace_summary.jsonl"
    multi, single_record, broken = records
    assert multi.multi_turn is not None and multi.multi_turn.enabled
    assert multi.multi_turn.turn_count == 2
    assert multi.multi_turn.termination_reason == "goal_met"
    assert multi.conversation_state == {
        "turns": [{"role": e["role"], "content": e["content"]} for e in conversation]
    }
    assert multi.token_usage == {"agent": {"total_tokens": 12}}
    assert (multi.status, multi.evaluation, multi.observations) == ("success", None, [])
    assert single_record.multi_turn is None  # one question and its answer: single turn
    assert broken.status == "error"
    assert broken.error is not None
    assert (broken.error.kind, broken.error.message) == ("agent", "it broke")


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    torn = json.dumps(trace("c"))[:40]
    write_experiment(exp, [trace("a"), trace("b")], tail=torn)
    records, _ = read_traces(exp)
    assert [r.case_id for r in records] == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", ":3: not a JSON line"),
        ("[1, 2]", ":3: not a JSON object"),
        ('{"trace_id": "t-x", "case_id": "x"}', ": trace 't-x' (case 'x'): not a trace record"),
    ],
)
def test_a_bad_line_in_the_middle_names_the_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    exp = tmp_path / "exp"
    write_experiment(exp, [trace("a"), trace("b")])
    path = exp / "traces.jsonl"
    path.write_text(
        json.dumps(trace("a")) + "\n\n" + line + "\n" + json.dumps(trace("b")) + "\n",
        encoding="utf-8",
    )
    summary = exp / "trace_summary.jsonl"
    summary.write_text(  # the record that is not a trace is listed as finished
        summary.read_text() + json.dumps({"trace_id": "t-x", "case_id": "x"}) + "\n"
    )
    with pytest.raises(ConfigError) as exc:
        read_traces(exp)
    assert str(exc.value).startswith(f"{path}{problem}")


def test_not_an_experiment_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a FluxLoop experiment folder"):
        read_traces(tmp_path)
    with pytest.raises(ConfigError, match="no such folder"):
        read_traces(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="no such folder"):
        read_traces(tmp_path / "file")


# ------------------------------------------------------------------- folder_inside


def test_the_output_folder_stays_inside_the_experiment(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    assert folder_inside(exp, "evaluation") == exp.resolve() / "evaluation"
    assert folder_inside(exp, "a/../b") == exp.resolve() / "b"
    assert folder_inside(exp, "deep/er") == exp.resolve() / "deep" / "er"
    assert folder_inside(exp, str(exp / "inside")) == exp.resolve() / "inside"
    outside = tmp_path / "outside"
    outside.mkdir()
    (exp / "link").symlink_to(outside, target_is_directory=True)
    for escape in (
        "..",
        "../exp2",
        "a/../../x",
        str(outside),
        "/tmp/evaluation",
        ".",
        "",
        "~",
        "link",
        "link/x",
    ):
        with pytest.raises(ConfigError, match="inside the experiment folder") as exc:
            folder_inside(exp, escape)
        assert str(exc.value).startswith(f"--output {escape!r}")


# -------------------------------------------------------------- evaluate_experiment


EVALUATION = {
    "evaluation_goal": "Only novices get answers.",
    "evaluators": [
        {
            "name": "novice_only",
            "type": "rule_based",
            "rules": [{"check": "not_contains", "keywords": ["[expert]"]}],
        }
    ],
    "aggregate": {"threshold": 0.5},
}


def run_project(tmp_path: Path, evaluation: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """A finished plain-Python run (3 inputs × 2 iterations; "Please fail now" raises)."""
    config, _ = make_project(tmp_path)
    if evaluation is not None:
        (config.parent / "evaluation.yaml").write_text(yaml.safe_dump(evaluation))
    Experiment.load(config).run()
    return config, only_experiment_dir(tmp_path)


def test_evaluate_writes_three_files_and_changes_nothing_else(tmp_path: Path) -> None:
    config, exp = run_project(tmp_path)  # run without evaluation.yaml
    before = snapshot(exp)
    assert all(t["evaluation"] is None for t in read_jsonl(exp / "traces.jsonl"))
    (config.parent / "evaluation.yaml").write_text(yaml.safe_dump(EVALUATION))
    result = evaluate_experiment(exp, load_config(config), gates=["success_rate>=0.9"])

    assert result.output == exp.resolve() / "evaluation"
    assert (result.traces, result.source) == (6, "traces.jsonl")
    assert sorted(p.name for p in result.output.iterdir()) == [
        "per_trace.jsonl",
        "report.md",
        "summary.json",
    ]
    assert snapshot(exp) == before  # the experiment's own files, byte for byte

    per_trace = {row["case_id"]: row for row in read_jsonl(result.output / "per_trace.jsonl")}
    assert len(per_trace) == 6
    for row in per_trace.values():
        if row["input"] == "Please fail now":
            assert (row["success"], row["verdict"]) == (False, "failed")
        elif row["persona"] == "expert":
            assert row["verdict"] == "failed"
            assert row["evaluators"][0]["name"] == "novice_only"
            assert row["evaluators"][0]["status"] == "failed"
        else:
            assert (row["verdict"], row["score"]) == ("passed", 1.0)
    summary = json.loads((result.output / "summary.json").read_text())
    assert summary["experiment_dir"] == str(exp.resolve())
    assert (summary["source"], summary["traces"], summary["passed"]) == ("traces.jsonl", 6, False)
    assert summary["config"] == str(config.resolve())
    assert summary["evaluation"]["verdicts"] == {"passed": 2, "failed": 4}
    [gate] = summary["evaluation"]["gates"]
    assert (gate["gate"], gate["passed"]) == ("success_rate>=0.9", False)
    assert gate["value"] == pytest.approx(2 / 6)
    assert result.outcome.fails_run
    report = (result.output / "report.md").read_text()
    assert report.startswith(f"# Evaluation of {exp.name}")
    assert "Only novices get answers." in report
    assert "run verdict: FAIL" in report


def test_an_existing_output_folder_needs_overwrite(tmp_path: Path) -> None:
    config, exp = run_project(tmp_path, EVALUATION)
    cfg = load_config(config)
    first = evaluate_experiment(exp, cfg)
    stale = first.output / "stale.txt"
    stale.write_text("from before")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        evaluate_experiment(exp, cfg)
    assert stale.exists()  # refused: nothing touched
    again = evaluate_experiment(exp, cfg, overwrite=True)
    assert again.output == first.output
    assert not stale.exists()
    other = evaluate_experiment(exp, cfg, output="second")
    assert other.output == exp.resolve() / "second"
    with pytest.raises(ConfigError, match="must be inside the experiment folder"):
        evaluate_experiment(exp, cfg, output="../elsewhere")
    assert not (exp.parent / "elsewhere").exists()


def test_the_run_own_evaluation_is_not_reused(tmp_path: Path) -> None:
    config, exp = run_project(tmp_path, EVALUATION)
    during = {t["case_id"]: t["evaluation"]["verdict"] for t in read_jsonl(exp / "traces.jsonl")}
    assert sorted(during.values()) == ["failed"] * 4 + ["passed"] * 2
    # The novices fail the new evaluation, which the run never saw.
    flipped = {**EVALUATION}
    flipped["evaluators"] = [
        {
            "name": "expert_only",
            "type": "rule_based",
            "rules": [{"check": "not_contains", "keywords": ["[novice]"]}],
        }
    ]
    (config.parent / "evaluation.yaml").write_text(yaml.safe_dump(flipped))
    result = evaluate_experiment(exp, load_config(config), output="flipped")
    rows = read_jsonl(result.output / "per_trace.jsonl")
    answered = [r for r in rows if r["success"]]
    assert len(answered) == 4
    for row in answered:
        assert row["verdict"] == ("failed" if row["persona"] == "novice" else "passed")
        assert row["verdict"] != during[row["case_id"]]
    assert [r["verdict"] for r in rows if not r["success"]] == ["failed", "failed"]


def test_the_report_file_name_comes_from_output_summary_file(tmp_path: Path) -> None:
    config, exp = run_project(tmp_path, {**EVALUATION, "output": {"summary_file": "eval.md"}})
    result = evaluate_experiment(exp, load_config(config))
    assert sorted(p.name for p in result.output.iterdir()) == [
        "eval.md",
        "per_trace.jsonl",
        "summary.json",
    ]


def test_nothing_to_evaluate_is_refused(tmp_path: Path) -> None:
    config, exp = run_project(tmp_path)
    with pytest.raises(ConfigError, match="no evaluators are enabled and no gate is given"):
        evaluate_experiment(exp, load_config(config))
    assert not (exp / "evaluation").exists()
    # A gate alone is something to evaluate.
    result = evaluate_experiment(exp, load_config(config), gates=["error_rate<=0.5"])
    assert [g.passed for g in result.outcome.gates] == [True]


def test_trace_summary_only_runs_are_evaluated_from_their_transcripts(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path / "proj")
    evaluation = {
        "evaluators": [
            {
                "name": "short",
                "type": "rule_based",
                "rules": [{"check": "turn_count_under", "max_turns": 2}],
            }
        ]
    }
    (config.parent / "evaluation.yaml").write_text(yaml.safe_dump(evaluation))
    conversation = [
        {"turn_index": 1, "role": "user", "content": "Refund?"},
        {"turn_index": 1, "role": "assistant", "content": "Which order?"},
        {"turn_index": 2, "role": "user", "content": "A-17"},
        {"turn_index": 2, "role": "assistant", "content": "Done."},
    ]
    exp = tmp_path / "exp_1"
    line = {
        "trace_id": "t",
        "iteration": 0,
        "input": "Refund?",
        "output": "Done.",
        "duration_ms": 2.0,
        "success": True,
    }
    write_lines(
        exp / "trace_summary.jsonl",
        [
            {**line, "case_id": "long", "conversation": conversation},
            {
                **line,
                "case_id": "short",
                "conversation": conversation[:2],
                "output": "Which order?",
            },
        ],
    )
    result = evaluate_experiment(exp, load_config(config))
    assert result.source == "trace_summary.jsonl"
    verdicts = {r["case_id"]: r["verdict"] for r in read_jsonl(result.output / "per_trace.jsonl")}
    assert verdicts == {"long": "failed", "short": "passed"}


def test_re_evaluation_replaces_the_judge_tokens_of_the_run(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    config, _ = make_project(tmp_path / "proj")
    evaluation = {
        "evaluators": [
            {
                "name": "helpful",
                "type": "llm_judge",
                "model": "judge-m",
                "api_key": KEY,
                "base_url": llm_server.openai_base_url,
                "prompt_template": "Q: {input}\nA: {output}",
            }
        ],
        "limits": {"cache": False},
    }
    (config.parent / "evaluation.yaml").write_text(yaml.safe_dump(evaluation))
    earlier_judge = {
        "calls": 4,
        "calls_without_usage": 0,
        "input_tokens": 900,
        "output_tokens": 99,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "total_tokens": 999,
    }
    exp = tmp_path / "exp_1"
    agent_usage = {"calls": 1, "input_tokens": 5, "output_tokens": 5, "total_tokens": 10}
    write_experiment(exp, [trace("a", token_usage={"agent": agent_usage, "judge": earlier_judge})])
    before = snapshot(exp)
    verdict = {"verdict": "pass", "score": 1, "reason": "fine", "evidence": []}
    llm_server.script(
        CHAT,
        chat_completion(
            json.dumps(verdict),
            usage={"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37},
        ),
    )
    result = evaluate_experiment(exp, load_config(config))
    [row] = read_jsonl(result.output / "per_trace.jsonl")
    assert row["verdict"] == "passed"
    assert row["judge_tokens"]["calls"] == 1
    judge_tokens = row["judge_tokens"]
    assert (judge_tokens["input_tokens"], judge_tokens["output_tokens"]) == (30, 7)
    assert judge_tokens["total_tokens"] == 37  # not 999 + 37
    assert len(llm_server.requests(CHAT)) == 1
    assert snapshot(exp) == before
    assert KEY not in (result.output / "summary.json").read_text()
    assert KEY not in (result.output / "per_trace.jsonl").read_text()
