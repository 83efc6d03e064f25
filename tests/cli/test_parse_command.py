"""``fluxloop parse experiment DIR``, tried as a user would: real runs, real subprocesses.

Two experiments are run once per module with ``fluxloop run experiment``:

* the single-turn example project (``examples/support_agent``: 8 traces, rule evaluators);
* a multi-turn project written here: the mock supervisor plays the customer from a script,
  the agent calls a tool and makes one real ``openai`` call (to :mod:`support.echo_llm`, so
  its token counts are known) each turn, and raises on the input that asks it to crash; an
  ``llm_judge`` (:mod:`support.judge_server`) passes answers about refunds, with evidence.

Every test parses a copy of those folders, so each starts from the run's files as written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli_helpers import describe, run_cli
from support.echo_llm import running_echo_server, words
from support.judge_server import PASS_REASON, PASS_SCORE, running_judge_server

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_agent"
OUTPUT = "per_trace_analysis"

# A user message that tries every way out of a Markdown document.
HOSTILE = "Refund for ```A-17```?\n# Not a heading\n| a | b |\n<b>bold</b> *star* [x](y)\n````"
CRASH = "Please crash"
QUESTIONS = ["Is the refund ~~done~~ yet?", "Thanks | bye"]
CLOSING = "Great, that is all. Thank you!"
AGENT = '''\
"""A multi-turn support agent: one tool call and one LLM call per turn."""

import os

import fluxloop
import openai

client = openai.OpenAI(
    base_url=os.environ["AGENT_LLM_URL"] + "/v1", api_key="agent-key", max_retries=0
)


@fluxloop.tool()
def lookup(order):
    return f"order {order}: refund approved"


@fluxloop.agent()
def run(input_text, persona=None, conversation_state=None):
    if input_text.startswith("Please crash"):
        raise RuntimeError("the order database is down")
    status = lookup("A-17")
    reply = client.chat.completions.create(
        model="agent-model", messages=[{"role": "user", "content": input_text}]
    )
    return reply.choices[0].message.content + " | refund: " + status
'''


def write_multi_turn_project(root: Path) -> Path:
    """The multi-turn project in ``root`` (1 persona × 2 inputs × 1 iteration)."""
    (root / "configs").mkdir(parents=True)
    (root / "agent.py").write_text(AGENT, encoding="utf-8")
    simulation = {
        "name": "parse_multi_turn",
        "iterations": 1,
        "runner": {"target": "agent:run", "timeout_seconds": 30, "max_retries": 0},
        "multi_turn": {
            "enabled": True,
            "max_turns": 5,
            "supervisor": {
                "provider": "mock",
                "metadata": {
                    "scripted_questions": QUESTIONS,
                    "mock_reason": "script_complete",
                    "mock_closing": CLOSING,
                },
            },
        },
        "output_directory": "experiments",
    }
    inputs = {
        "personas": [{"name": "shopper", "description": "wants a refund"}],
        "base_inputs": [{"input": HOSTILE}, {"input": CRASH}],
    }
    evaluation = {
        "evaluators": [
            {"name": "answered", "type": "rule_based", "rules": [{"check": "output_not_empty"}]},
            {
                "name": "helpful",
                "type": "llm_judge",
                "model": "judge-model",
                "max_score": 10,
                "prompt_template": "The answer:\n{output}\nScore it from 0 to 10.",
            },
        ],
        "aggregate": {"method": "weighted_sum", "threshold": 0.7},
    }
    for name, data in (
        ("simulation.yaml", simulation),
        ("input.yaml", inputs),
        ("evaluation.yaml", evaluation),
    ):
        (root / "configs" / name).write_text(yaml.safe_dump(data), encoding="utf-8")
    return root


def run_experiment(root: Path, env: dict[str, str] | None = None) -> Path:
    proc = run_cli(
        "run", "experiment", "--config", "configs/simulation.yaml", "--yes", cwd=root, env=env
    )
    assert proc.returncode in (0, 1), describe(proc)  # 1: a case failed, as designed
    [exp] = sorted((root / "experiments").glob("exp_*"))
    return exp


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The two finished experiments (never parsed in place: tests take copies)."""
    base = tmp_path_factory.mktemp("parse_runs")
    shutil.copytree(EXAMPLE, base / "single", ignore=shutil.ignore_patterns("experiments"))
    single = run_experiment(base / "single")
    with running_echo_server() as echo, running_judge_server() as judge:
        env = {
            "AGENT_LLM_URL": echo.url,
            "OPENAI_BASE_URL": judge.url + "/v1",
            "OPENAI_API_KEY": "test-key",
        }
        multi = run_experiment(write_multi_turn_project(base / "multi"), env)
    yield {"single": single, "multi": multi}


def copy_of(runs: dict[str, Path], which: str, tmp_path: Path) -> Path:
    target = tmp_path / runs[which].name
    shutil.copytree(runs[which], target)
    return target


def snapshot(directory: Path, skip: str = OUTPUT) -> dict[str, str]:
    """sha256 of every file under ``directory`` except those under ``skip``."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).parts[0] != skip
    }


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def parse(exp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("parse", "experiment", exp, *args, cwd=exp.parent)


def markdown_tokens(text: str) -> list[Any]:
    markdown_it = pytest.importorskip("markdown_it")
    return list(markdown_it.MarkdownIt("commonmark").enable("table").parse(text))


def headings(text: str) -> list[str]:
    tokens = markdown_tokens(text)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


# ------------------------------------------------------------------------ single turn


def test_parse_writes_one_markdown_file_per_trace_and_per_trace_jsonl(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    exp = copy_of(runs, "single", tmp_path)
    before = snapshot(exp)
    proc = parse(exp)
    assert proc.returncode == 0, describe(proc)
    assert snapshot(exp) == before  # the experiment's own files, byte for byte

    out = exp / OUTPUT
    traces = jsonl(exp / "traces.jsonl")
    names = [f"{i:02d}_{t['case_id']}.md" for i, t in enumerate(traces)]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "per_trace.jsonl"])
    assert "Parsed 8 traces of support_agent_experiment from traces.jsonl" in proc.stdout
    for name in names:
        assert f"Wrote: {out / name}" in proc.stdout
    assert f"Wrote: {out / 'per_trace.jsonl'}" in proc.stdout

    lines = {line["trace_id"]: line for line in jsonl(exp / "trace_summary.jsonl")}
    rows = jsonl(out / "per_trace.jsonl")
    assert [r["trace_id"] for r in rows] == [t["trace_id"] for t in traces]
    for row, record in zip(rows, traces, strict=True):
        for key in ("trace_id", "iteration", "persona", "input", "output", "duration_ms"):
            assert row[key] == record[key]
        assert (row["success"], row["final_output"]) == (True, record["output"])
        assert row["multi_turn"]["enabled"] is False
        assert row["summary"] == lines[record["trace_id"]]
        assert row["metrics"]["observation_count"] == len(record["observations"]) == 4
        assert row["metrics"]["tool_calls"] == 1
        assert row["evaluation"] == record["evaluation"]
        # span_start/span_end pairs become one entry each: the agent and its tool call.
        agent, tool = row["timeline"]
        assert (agent["kind"], agent["name"], agent["depth"]) == ("agent", "run", 0)
        assert (tool["kind"], tool["name"], tool["depth"]) == ("tool", "classify", 1)
        assert tool["parent_id"] == agent["observation_id"]
        assert tool["duration_ms"] == record["observations"][2]["duration_ms"]
        assert 0 <= agent["offset_ms"] <= tool["offset_ms"] <= record["duration_ms"]

    first = (out / names[0]).read_text(encoding="utf-8")
    record = traces[0]
    assert headings(first) == [
        f"00 · {record['case_id']}",
        "Input",
        "Timeline",
        "Output",
        "Evaluation",
        "specific",
        "well_formed",
    ]
    assert "- **status**: **success**" in first
    assert "| evaluator | type | status | score | reason |" in first
    assert "| specific | rule_based | passed | 1.00 |" in first
    assert "rule tool_called: passed, 'classify' called at least 1" in first
    tool_row = next(
        line for line in first.splitlines() if "classify" in line and "| tool |" in line
    )
    assert 'args: {"message":' in tool_row and "→ result:" in tool_row


def test_format_json_output_and_overwrite(runs: dict[str, Path], tmp_path: Path) -> None:
    exp = copy_of(runs, "single", tmp_path)
    before = snapshot(exp, skip="parsed")
    proc = parse(exp, "--format", "json", "--output", "parsed")
    assert proc.returncode == 0, describe(proc)
    out = exp / "parsed"
    rows = jsonl(out / "per_trace.jsonl")
    files = sorted(p for p in out.iterdir() if p.suffix == ".json")
    assert len(files) == len(rows) == 8
    for index, (path, row) in enumerate(zip(files, rows, strict=True)):
        assert path.name == f"{index:02d}_{row['case_id']}.json"
        assert json.loads(path.read_text(encoding="utf-8")) == row
    assert not list(out.glob("*.md"))

    # An existing output is refused without --overwrite, and left as it was.
    stale = out / "stale.txt"
    stale.write_text("from before", encoding="utf-8")
    again = parse(exp, "--output", "parsed")
    assert again.returncode == 4, describe(again)
    assert f"{out.resolve()} already exists; pass --overwrite" in again.stderr
    assert stale.exists() and not list(out.glob("*.md"))

    replaced = parse(exp, "--output", "parsed", "--overwrite")
    assert replaced.returncode == 0, describe(replaced)
    assert not stale.exists()
    assert len(list(out.glob("*.md"))) == 8 and not list(out.glob("*.json"))
    assert not [p for p in exp.iterdir() if p.name.startswith(".")]  # no temporary left
    assert snapshot(exp, skip="parsed") == before


@pytest.mark.parametrize(
    "output", ["..", "../elsewhere", "/tmp/fluxloop-parse-out", ".", "traces.jsonl", "summary.json"]
)
def test_an_output_outside_the_experiment_or_on_its_files_is_refused(
    runs: dict[str, Path], tmp_path: Path, output: str
) -> None:
    exp = copy_of(runs, "single", tmp_path)
    before = snapshot(exp)
    proc = parse(exp, "--output", output, "--overwrite")
    assert proc.returncode == 4, describe(proc)
    assert proc.stderr.startswith(f"Error: --output {output!r}")
    assert "Traceback" not in proc.stderr
    assert snapshot(exp) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [exp.name]


# ------------------------------------------------------------------------ multi-turn


def test_multi_turn_transcript_timeline_traceback_and_verdicts(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    exp = copy_of(runs, "multi", tmp_path)
    before = snapshot(exp)
    proc = parse(exp)
    assert proc.returncode == 0, describe(proc)
    assert snapshot(exp) == before
    out = exp / OUTPUT
    rows = {row["input"]: row for row in jsonl(out / "per_trace.jsonl")}
    talk, crash = rows[HOSTILE], rows[CRASH]

    # The conversation: three user messages answered, then the closing one.
    assert talk["status"] == "success"
    assert talk["multi_turn"] == {
        "enabled": True,
        "turn_count": 3,
        "termination_reason": "script_complete",
    }
    assert [(t["role"], t["content"]) for t in talk["conversation"]][::2] == [
        ("user", HOSTILE),
        ("user", QUESTIONS[0]),
        ("user", QUESTIONS[1]),
        ("user", CLOSING),
    ]
    assert talk["conversation"][-1]["closing"] is True
    kinds = [(e["kind"], e["type"], e["name"]) for e in talk["timeline"]]
    assert kinds.count(("event", "supervisor_decision", "supervisor")) == 3
    assert kinds.count(("event", "turn", "turn 2")) == 1
    assert kinds.count(("generation", "span", "openai.chat.completions")) == 3
    generations = [e for e in talk["timeline"] if e["kind"] == "generation"]
    usage = generations[0]["metadata"]["usage"]
    assert usage["output_tokens"] == words(f"echo: {HOSTILE}")
    assert talk["metrics"]["llm_calls"] == 3 and talk["metrics"]["tool_calls"] == 3
    offsets = [e["offset_ms"] for e in talk["timeline"]]
    assert offsets == sorted(offsets)

    [path] = out.glob(f"*_{talk['case_id']}.md")
    md = path.read_text(encoding="utf-8")
    # Only our headings: nothing the user or the agent wrote became one.
    assert headings(md) == [
        f"{path.name[:2]} · {talk['case_id']}",
        "Input",
        "Timeline",
        "Conversation",
        "1. user (input)",
        "1. assistant (agent)",
        "2. user (supervisor)",
        "2. assistant (agent)",
        "3. user (supervisor)",
        "3. assistant (agent)",
        "4. user (supervisor) · closing message, not sent to the agent",
        "Output",
        "Evaluation",
        "answered",
        "helpful",
    ]
    fences = [t.content for t in markdown_tokens(md) if t.type == "fence"]
    assert fences.count(HOSTILE + "\n") == 2  # the input and the first user message, intact
    tables = [t for t in markdown_tokens(md) if t.type == "tr_open"]
    # The timeline's header and one row per entry, then the evaluators' header and rows.
    assert len(tables) == 1 + len(talk["timeline"]) + 1 + 2
    assert "**continue** · says: Is the refund \\~\\~done\\~\\~ yet?" in md
    assert "**terminate (script_complete)** · says: Great, that is all. Thank you!" in md
    assert f"model agent-model · tokens {usage['input_tokens']} in" in md
    assert "- **supervisor**: MockSupervisor (mock), 3 decisions" in md
    assert "- **verdict**: **passed**, score" in md
    assert f"| helpful | llm_judge | passed | {PASS_SCORE / 10:.2f} | {PASS_REASON} |" in md
    assert "- evidence, turn 1: “" in md

    # The crashed case: its status, the error and its traceback, in a fenced block.
    assert (crash["status"], crash["success"]) == ("error", False)
    assert crash["error"]["type"] == "RuntimeError"
    assert "the order database is down" in crash["error"]["traceback"]
    md = next(out.glob(f"*_{crash['case_id']}.md")).read_text(encoding="utf-8")
    assert "- **status**: **error (agent)**" in md
    assert "## Error\n\n**agent** RuntimeError\n\n```text\nthe order database is down\n```" in md
    traceback = next(t for t in markdown_tokens(md) if t.type == "fence" and t.info == "python")
    assert traceback.content == crash["error"]["traceback"].rstrip("\n") + "\n"
    assert 'agent.py", line' in traceback.content
    assert "- **verdict**: **failed**" in md
    assert "## Output" not in md
    assert [(e["name"], e["depth"]) for e in crash["timeline"]] == [("turn 1", 0), ("run", 1)]


# ----------------------------------------------------------------- not an experiment


def test_a_folder_that_is_not_an_experiment_is_a_clear_exit_4(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = parse(plain)
    assert proc.returncode == 4, describe(proc)
    assert "not a FluxLoop experiment folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(plain.iterdir()) == []

    experiments = tmp_path / "experiments"
    exp = copy_of(runs, "single", experiments)
    proc = parse(experiments)
    assert proc.returncode == 4, describe(proc)
    assert f"it holds experiment folders, e.g. {exp}" in proc.stderr

    proc = parse(tmp_path / "missing")
    assert proc.returncode == 4, describe(proc)
    assert "no such folder" in proc.stderr

    metadata = json.loads((exp / "metadata.json").read_text(encoding="utf-8"))
    metadata.update(artifact_format=99, fluxloop_version="9.0.0")
    (exp / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    proc = parse(exp)
    assert proc.returncode == 4, describe(proc)
    assert "written by pytest-fluxloop 9.0.0 in artifact format 99" in proc.stderr
    assert not (exp / OUTPUT).exists()


# ------------------------------------------------------------- folders written by hand


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_values_are_redacted_again_before_they_are_cut(tmp_path: Path) -> None:
    # An older version, or a hand-edited file, left a key in the artifacts; it sits where
    # the timeline cuts text to 200 characters, so a cut before redaction would leave part
    # of it, no longer shaped like a key.
    secret = "sk-proj-" + "Q" * 40
    leaky = "x" * 189 + " " + secret + " and api_key=hunter2hunter2"
    exp = tmp_path / "exp_20240101_000000"
    tool = {"trace_id": "t1", "name": "lookup", "observation_id": "o1", "kind": "tool"}
    record = {
        "trace_id": "t1",
        "case_id": "leaky",
        "iteration": 0,
        "input": "hello",
        "output": leaky,
        "duration_ms": 3.0,
        "success": True,
        "status": "success",
        "started_at": "2024-01-01T00:00:00Z",
        "completed_at": "2024-01-01T00:00:01Z",
        "observations": [
            {**tool, "type": "span_start", "timestamp": "2024-01-01T00:00:00.001Z", "input": leaky},
            {**tool, "type": "span_end", "timestamp": "2024-01-01T00:00:00.002Z", "output": leaky},
        ],
    }
    write_rows(exp / "traces.jsonl", [record])
    write_rows(
        exp / "trace_summary.jsonl", [{k: v for k, v in record.items() if k != "observations"}]
    )
    proc = parse(exp)
    assert proc.returncode == 0, describe(proc)
    written = "".join(p.read_text(encoding="utf-8") for p in (exp / OUTPUT).iterdir())
    assert "Q" * 8 not in written and "hunter2" not in written
    assert "***REDACTED***" in written
    md = (exp / OUTPUT / "00_leaky.md").read_text(encoding="utf-8")
    assert "| tool | " in md and "args: xxxx" in md


def test_a_run_without_traces_jsonl_is_parsed_from_its_summary_lines(tmp_path: Path) -> None:
    # As an early version wrote a save_traces: false run: trace_summary.jsonl alone, lines
    # without status, attempts, token_usage or evaluation.
    conversation = [
        {"turn_index": 1, "role": "user", "content": "Refund?", "source": "input"},
        {"turn_index": 1, "role": "assistant", "content": "Which order?", "source": "agent"},
        {"turn_index": 2, "role": "user", "content": "A-17", "source": "supervisor"},
        {"turn_index": 2, "role": "assistant", "content": "Done.", "source": "agent"},
        {
            "turn_index": 3,
            "role": "user",
            "content": "Bye",
            "source": "supervisor",
            "metadata": {"closing": True},
        },
    ]
    base = {"iteration": 0, "persona": "p", "duration_ms": 2.0}
    lines = [
        {
            **base,
            "trace_id": "t1",
            "case_id": "talk",
            "input": "Refund?",
            "output": "Done.",
            "success": True,
            "conversation": conversation,
            "termination_reason": "goal_met",
        },
        {
            **base,
            "trace_id": "t2",
            "case_id": "broke",
            "input": "x",
            "output": None,
            "success": False,
            "error": "it broke",
            "error_kind": "agent",
        },
    ]
    exp = tmp_path / "exp_20240101_000000"
    write_rows(exp / "trace_summary.jsonl", lines)
    proc = parse(exp)
    assert proc.returncode == 0, describe(proc)
    assert f"Parsed 2 traces of {exp.name} from trace_summary.jsonl" in proc.stdout
    out = exp / OUTPUT
    rows = jsonl(out / "per_trace.jsonl")
    assert [r["summary"] for r in rows] == lines
    assert [r["status"] for r in rows] == ["success", "error"]
    assert [r["metrics"]["observation_count"] for r in rows] == [0, 0]
    assert [r["multi_turn"]["enabled"] for r in rows] == [True, False]
    talk = (out / "00_talk.md").read_text(encoding="utf-8")
    assert "No observations: this run kept no traces.jsonl" in talk
    assert "### 3. user (supervisor) · closing message, not sent to the agent" in talk
    assert "- **turns**: ?, ended: goal_met" in talk
    broke = (out / "01_broke.md").read_text(encoding="utf-8")
    assert "## Error\n\n**agent**\n\n```text\nit broke\n```" in broke
    assert "Traceback" not in broke
