"""Very large outputs: kept whole once (``traces.jsonl``), cut elsewhere with their length
and sha256, and cut to a budget (newest turns whole) in what the supervisor is sent.

The cap is the ``artifact_field_max_chars`` setting: a real, validated, documented field.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support.cli_helpers import describe, run_cli
from support.engine_helpers import isolated_imports
from support.llm_server import CHAT, FakeLLMServer, chat_completion, llm_server

from pytest_fluxloop.artifacts import ExperimentWriter, load_schema
from pytest_fluxloop.artifacts.writer import DEFAULT_MAX_FIELD_CHARS
from pytest_fluxloop.config import load_config
from pytest_fluxloop.config.models import DEFAULT_ARTIFACT_FIELD_MAX_CHARS
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.records import Observation, TraceRecord
from pytest_fluxloop.run import Experiment
from pytest_fluxloop.supervisors import SupervisorRequest
from pytest_fluxloop.supervisors.prompt import MAX_TRANSCRIPT_CHARS, render_request

__all__ = ["llm_server"]  # the fixture, imported for pytest

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 11, 1, 14, 30, 22, tzinfo=timezone.utc)
FILES = ("trace_summary.jsonl", "traces.jsonl", "observations.jsonl")


def big_text(chars: int, tag: str = "") -> str:
    """Distinct text (no repeats a prefix could hide): ``tag`` then numbered blocks."""
    blocks = "".join(f"<{i:07d}>" for i in range(chars // 9 + 1))
    return (tag + blocks)[:chars]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record(output: Any, *, input: str = "hi", obs_error: str | None = None) -> TraceRecord:
    return TraceRecord(
        trace_id="t1",
        case_id="c1",
        iteration=0,
        input=input,
        output=output,
        duration_ms=1.0,
        success=True,
        status="success",
        started_at=T0,
        completed_at=T0,
        observations=[
            Observation(trace_id="t1", type="span_start", name="run", input={"input_text": input}),
            Observation(trace_id="t1", type="span_end", name="run", output=output, error=obs_error),
        ],
    )


def write(tmp_path: Path, rec: TraceRecord, **options: Any) -> dict[str, str]:
    writer = ExperimentWriter.create(
        tmp_path,
        experiment_name="big",
        description="",
        config_snapshot={},
        metadata={},
        seed=1,
        total_cases=1,
        **options,
    )
    writer.append(rec)
    writer.finish("complete")
    return {name: (writer.path / name).read_text(encoding="utf-8") for name in FILES}


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def validate(files: dict[str, str]) -> None:
    for name, schema in zip(FILES, ("trace_summary", "trace", "observation"), strict=True):
        validator = Draft202012Validator(load_schema(schema))
        for line in lines(files[name]):
            errors = [e.message for e in validator.iter_errors(line)]
            assert not errors, (name, errors)


# --------------------------------------------------------------------------- the writer


def test_a_big_output_is_whole_once_and_cut_with_length_and_sha_elsewhere(
    tmp_path: Path,
) -> None:
    output = big_text(5000, "OUT")
    files = write(tmp_path, record(output, obs_error=big_text(3000, "ERR")), max_field_chars=1000)
    everything = "".join(files.values())
    assert everything.count(output) == 1
    (trace,) = lines(files["traces.jsonl"])
    assert trace["output"] == output
    (summary,) = lines(files["trace_summary.jsonl"])
    info = {"length": 5000, "sha256": sha(output)}
    assert summary["output"] == output[:1000] and summary["output_truncated"] == info
    assert "input_truncated" not in summary  # short fields are left alone
    observations = lines(files["observations.jsonl"])
    assert observations == trace["observations"]  # the same projection in both files
    end = observations[1]
    assert end["output"] == output[:1000] and end["output_truncated"] == info
    assert end["error_truncated"]["length"] == 3000
    assert "input_truncated" not in observations[0] and "output_truncated" not in observations[0]
    validate(files)


def test_non_text_values_are_cut_as_their_json_text(tmp_path: Path) -> None:
    output = {"rows": [big_text(3000, "ROW")], "n": 1}
    files = write(tmp_path, record(output, input=big_text(2500, "IN")), max_field_chars=500)
    text = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
    (summary,) = lines(files["trace_summary.jsonl"])
    assert summary["output"] == text[:500]
    assert summary["output_truncated"] == {"length": len(text), "sha256": sha(text)}
    assert summary["input_truncated"]["length"] == 2500
    (trace,) = lines(files["traces.jsonl"])
    assert trace["output"] == output and trace["input"] == big_text(2500, "IN")
    validate(files)


def test_small_records_are_written_as_before(tmp_path: Path) -> None:
    files = write(tmp_path, record("short answer"))
    assert "_truncated" not in "".join(files.values())
    (trace,) = lines(files["traces.jsonl"])
    assert trace["observations"][1]["output"] == "short answer"


def test_redaction_happens_before_the_cut(tmp_path: Path) -> None:
    secret = "sk-" + "Z" * 40
    files = write(tmp_path, record(secret + big_text(2000)), max_field_chars=200)
    assert secret not in "".join(files.values())
    (summary,) = lines(files["trace_summary.jsonl"])
    (trace,) = lines(files["traces.jsonl"])
    # The recorded sha256 is the one of the full value as written in traces.jsonl.
    assert summary["output_truncated"]["sha256"] == sha(trace["output"])


# --------------------------------------------------------------------------- the setting


def write_config(root: Path, extra: str = "") -> Path:
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "inputs").mkdir(exist_ok=True)
    config = root / "configs" / "simulation.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            name: big
            description: big outputs
            seed: 1
            runner:
              target: "big_agent:run"
              timeout_seconds: 30
              max_retries: 0
            """
        )
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    (root / "inputs" / "generated.yaml").write_text(
        'inputs:\n  - input: "one"\n  - input: "two"\n', encoding="utf-8"
    )
    return config


def test_the_cap_is_a_validated_setting(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert load_config(config).simulation.artifact_field_max_chars == 100_000
    assert DEFAULT_MAX_FIELD_CHARS == DEFAULT_ARTIFACT_FIELD_MAX_CHARS == 100_000
    config = write_config(tmp_path, "artifact_field_max_chars: 2000\n")
    assert load_config(config).simulation.artifact_field_max_chars == 2000
    for bad in ("10", "'lots'", "1000000000"):
        config = write_config(tmp_path, f"artifact_field_max_chars: {bad}\n")
        with pytest.raises(ConfigError, match="artifact_field_max_chars"):
            load_config(config)


@pytest.mark.slow
def test_the_cap_is_in_the_config_schema_and_the_readme(tmp_path: Path) -> None:
    proc = run_cli("config", "schema", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    field = json.loads(proc.stdout)["properties"]["artifact_field_max_chars"]
    assert (field["default"], field["minimum"], field["maximum"]) == (100_000, 100, 100_000_000)
    readme = (REPO / "README.rst").read_text(encoding="utf-8")
    assert "artifact_field_max_chars" in readme.split("Configuration\n=====", 1)[1]


@pytest.fixture
def isolated() -> Iterator[None]:
    with isolated_imports():
        yield


AGENT = """\
import fluxloop


@fluxloop.agent()
def run(input_text, persona=None, conversation_state=None):
    turns = len(conversation_state["turns"]) if conversation_state else 0
    return f"{input_text}/{turns}:" + "".join(f"<{i:07d}>" for i in range(600_000))[:SIZE]
"""


@pytest.mark.usefixtures("isolated")
def test_a_run_with_5_mb_outputs_writes_each_once(tmp_path: Path) -> None:
    size = 5_000_000
    config = write_config(tmp_path, "artifact_field_max_chars: 20000\n")
    (tmp_path / "big_agent.py").write_text(AGENT.replace("SIZE", str(size)), encoding="utf-8")
    summary = Experiment.load(config).run()
    assert summary.total_traces == 2 and summary.successful == 2
    (exp_dir,) = sorted((tmp_path / "experiments").glob("exp_*"))
    sizes = {name: (exp_dir / name).stat().st_size for name in FILES}
    # The output is in each summary line twice: as output and as the conversation's reply.
    assert sizes["trace_summary.jsonl"] < 2 * 2 * 21_000 + 2_000
    assert sizes["observations.jsonl"] < 4 * 21_000 + 4_000
    assert 2 * size < sizes["traces.jsonl"] < 2 * size + 100_000
    for trace in lines((exp_dir / "traces.jsonl").read_text(encoding="utf-8")):
        assert len(trace["output"]) == size + len(f"{trace['input']}/0:")


# --------------------------------------------------------------------------- the supervisor


def request(*contents: str) -> SupervisorRequest:
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": c}
        for i, c in enumerate(contents)
    ]
    return SupervisorRequest(case_id="c", turns=turns, turn_count=len(turns) // 2, max_turns=8)


def transcript(text: str) -> list[dict[str, Any]]:
    begin = text.index("<<<BEGIN DATA transcript")
    end = text.index("<<<END DATA transcript")
    return [json.loads(line) for line in text[begin:end].splitlines()[1:]]


def test_small_transcripts_are_sent_whole() -> None:
    rendered = transcript(render_request(request("hi", "hello", "thanks", "welcome")))
    assert [m["content"] for m in rendered] == ["hi", "hello", "thanks", "welcome"]


def test_a_huge_newest_reply_is_cut_with_a_marker() -> None:
    huge = big_text(5_000_000, "HUGE")
    text = render_request(request("hi", "short", "more?", huge))
    assert len(text) < MAX_TRANSCRIPT_CHARS // 2 + 3_000
    rendered = transcript(text)
    # The conversation before it is still there, whole.
    assert [m["content"] for m in rendered[:3]] == ["hi", "short", "more?"]
    newest = rendered[-1]
    assert newest["message"] == 4 and newest["content"].startswith("HUGE")
    assert "[... truncated: " in newest["content"] and "of 5000000 characters" in newest["content"]
    assert len(json.dumps(newest, ensure_ascii=False)) <= MAX_TRANSCRIPT_CHARS // 2


def test_the_newest_turns_stay_whole_and_older_ones_give_way() -> None:
    oldest, old = big_text(200_000, "OLDEST"), big_text(200_000, "OLD")
    newer = big_text(25_000, "NEWER")
    turns = ("hi", oldest, "so?", old, "more?", newer, "and now?", "a short reply")
    text = render_request(request(*turns))
    rendered = transcript(text)
    # Newest first: whole while they fit (one message at most half the budget) ...
    assert [m.get("content") for m in rendered[-4:]] == ["more?", newer, "and now?", turns[-1]]
    assert rendered[-5]["message"] == 4 and rendered[-5]["content"].startswith("OLD")
    assert rendered[2]["content"] == "so?"
    # ... then one cut to the room left, and the rest left out with a marker line.
    cut = rendered[1]
    assert cut["message"] == 2 and cut["content"].startswith("OLDEST")
    assert "[... truncated: " in cut["content"]
    assert rendered[0] == {
        "omitted_messages": 1,
        "note": f"1 earlier message(s) omitted: the transcript is longer than "
        f"{MAX_TRANSCRIPT_CHARS} characters",
    }
    assert len(text) < MAX_TRANSCRIPT_CHARS + 3_000


def test_escaped_characters_still_fit_the_budget() -> None:
    # Each control character takes six characters once JSON-escaped.
    text = render_request(request("hi", "\x01" * 100_000), max_transcript_chars=5_000)
    (first, newest) = transcript(text)
    assert first["content"] == "hi"
    assert "[... truncated: " in newest["content"]
    assert len(json.dumps(newest, ensure_ascii=False)) <= 2_500


@pytest.mark.usefixtures("isolated")
def test_the_supervisor_is_sent_a_bounded_request(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    config = write_config(
        tmp_path,
        f"""\
        multi_turn:
          enabled: true
          max_turns: 4
          supervisor:
            provider: openai
            api_key: local-key-1234567890
            base_url: {llm_server.openai_base_url}
        """,
    )
    (tmp_path / "big_agent.py").write_text(AGENT.replace("SIZE", "5_000_000"), encoding="utf-8")
    (tmp_path / "inputs" / "generated.yaml").write_text('inputs:\n  - input: "one"\n')
    llm_server.script(
        CHAT,
        chat_completion(
            json.dumps(
                {
                    "decision": "terminate",
                    "next_user_message": None,
                    "termination_reason": "user_satisfied",
                    "closing_user_message": None,
                }
            )
        ),
    )
    summary = Experiment.load(config).run()
    assert summary.successful == 1
    (sent,) = llm_server.requests(CHAT)
    assert len(sent.body) < MAX_TRANSCRIPT_CHARS + 10_000
    user = sent.json()["messages"][-1]["content"]
    assert "[... truncated: " in user and "one/1:<0000000>" in user
