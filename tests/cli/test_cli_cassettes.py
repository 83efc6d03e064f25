"""``fluxloop cassettes show | prune``, tried as a user would: real runs, real subprocesses.

``show`` reads cassettes built with the real writer (OpenAI chat, streamed and Responses
calls, Anthropic messages, streamed too) and the ones real runs recorded. ``prune`` works on
the results folders of real experiments: a multi-turn project whose agent calls an
OpenAI-compatible server on 127.0.0.1 (:mod:`support.sim_llm`, which also plays the
supervisor) is recorded, the agent is changed so some recordings go unused, and the run that
noticed is pruned; a replay afterwards must still pass without one request to the server.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cassette_helpers import chat_body, chat_reply, interaction
from support.cassette_project import (
    DEAD_URL,
    EXPERIMENT,
    RECORD_KEY,
    SIMULATION,
    SUPERVISOR_MODEL,
    inputs_yaml,
)
from support.cli_helpers import describe, run_child_pytest, run_cli
from support.sim_llm import SimServer, running_sim_server

from pytest_fluxloop.cassettes.files import write_cassette
from pytest_fluxloop.cassettes.model import Cassette
from pytest_fluxloop.redact import Redactor

REDACTOR = Redactor(include_env=False)
CASES = ("in00-hello_there-novice_user-it0", "in01-refund_please-expert_user-it0")
TURNS = 3  # running_sim_server(turns=3): the supervisor ends after the third reply

AGENT = """\
import os

import openai

SYSTEM = {system!r}
REPEAT = {repeat!r}

client = openai.OpenAI(
    base_url=os.environ["SIM_URL"], api_key="agent-test-key", max_retries=0, timeout=20
)


def run(input_text: str) -> str:
    # REPEAT identical plain calls (one match key, recorded REPEAT times), then a stream.
    for _ in range(REPEAT):
        first = client.chat.completions.create(
            model="agent-model",
            messages=[
                {{"role": "system", "content": SYSTEM}},
                {{"role": "user", "content": input_text}},
            ],
        )
    stream = client.chat.completions.create(
        model="agent-model",
        messages=[{{"role": "user", "content": input_text}}],
        stream=True,
        stream_options={{"include_usage": True}},
    )
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    # One "echo:" per reply: the simulated supervisor counts them to end after 3 turns.
    plain = (first.choices[0].message.content or "").replace("echo:", "first:")
    return f"{{text}} ({{plain}})"
"""


# --------------------------------------------------------------------------- projects


class Project:
    """The cassette project in a folder, run with ``python -m pytest`` in a subprocess."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "configs").mkdir(parents=True)
        (root / "inputs").mkdir()
        (root / "pytest.ini").write_text("[pytest]\n")  # pins the rootdir to the project
        (root / "inputs" / "generated.yaml").write_text(inputs_yaml(len(CASES)))
        (root / "configs" / "simulation.yaml").write_text(
            SIMULATION.format(
                name=EXPERIMENT,
                iterations=1,
                parallel_runs=1,
                supervisor_model=SUPERVISOR_MODEL,
                extra="",
            )
        )
        self.agent()

    def agent(self, system: str = "be concise", repeat: int = 1) -> None:
        (self.root / "agent.py").write_text(AGENT.format(system=system, repeat=repeat))

    @property
    def folder(self) -> Path:
        return self.root / "cassettes" / EXPERIMENT

    def run(self, mode: str, url: str = DEAD_URL, *, passes: bool = True) -> Path:
        """Run the experiment with ``--fluxloop-cassettes MODE``; its results folder."""
        before = set(self.root.glob("experiments/exp_*"))
        proc = run_child_pytest(
            "--fluxloop-config",
            "configs/simulation.yaml",
            "--fluxloop-cassettes",
            mode,
            "-p",
            "no:langsmith_plugin",
            cwd=self.root,
            env={"SIM_URL": url, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": RECORD_KEY, "CI": ""},
        )
        assert (proc.returncode == 0) is passes, describe(proc)
        (results,) = set(self.root.glob("experiments/exp_*")) - before
        return results

    def documents(self) -> dict[str, dict[str, Any]]:
        return {
            p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(self.folder.glob("*.json"))
        }

    def snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.folder.iterdir())}

    def cli(self, *args: str | Path) -> Any:
        return run_cli(*args, cwd=self.root)


def summary(results: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / "summary.json").read_text(encoding="utf-8"))
    return data


def traces(results: Path) -> dict[str, dict[str, Any]]:
    lines = (results / "traces.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["case_id"]: row for row in map(json.loads, lines)}


def without(document: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    """The document's interactions minus, for each key in ``keys``, its last occurrence."""
    kept: list[dict[str, Any]] = list(document["interactions"])
    for key in keys:
        last = max(n for n, item in enumerate(kept) if item["key"] == key)
        del kept[last]
    return kept


@pytest.fixture
def server() -> Iterator[SimServer]:
    with running_sim_server(turns=TURNS) as sim:
        yield sim


# --------------------------------------------------------------------------- prune, end to end


@pytest.mark.slow
def test_prune_after_the_agent_changed_then_replay_needs_no_server(
    tmp_path: Path, server: SimServer
) -> None:
    project = Project(tmp_path / "proj")
    project.run("record", server.openai_url)
    assert server.count == len(CASES) * TURNS * 3  # 2 agent calls + 1 decision a turn
    recorded = project.documents()
    assert all(len(doc["interactions"]) == TURNS * 3 for doc in recorded.values())

    # A new system prompt: each turn's plain call misses and is recorded; the old one of
    # each turn is never used again.
    project.agent(system="be brief")
    results = project.run("new", server.openai_url)
    block = summary(results)["cassettes"]
    assert block["unused_interactions"] == len(CASES) * TURNS, block
    assert block["folder"] == str(project.folder.resolve())
    after_new = project.documents()
    unused = {case: row["cassette"]["unused_keys"] for case, row in traces(results).items()}
    assert all(len(keys) == TURNS for keys in unused.values()), unused

    dry = project.cli("cassettes", "prune", results, "--dry-run")
    assert dry.returncode == 0, describe(dry)
    for case in CASES:
        positions = ", ".join(f"agent/{turn}/0" for turn in range(1, TURNS + 1))
        line = f"Would remove {TURNS} of {TURNS * 4} interactions from {case}.json: {positions}"
        assert line in dry.stdout, dry.stdout
    total = f"Would remove {len(CASES) * TURNS} unused interaction(s) from 2 cassette file(s)"
    assert total in dry.stdout
    assert project.documents() == after_new

    pruned = project.cli("cassettes", "prune", results)  # the folder from summary.json
    assert pruned.returncode == 0, describe(pruned)
    assert f"Removed {len(CASES) * TURNS} unused interaction(s) from 2 cassette file(s)." in (
        pruned.stdout
    )
    documents = project.documents()
    for case in CASES:
        doc = documents[case]
        # Exactly the unused interactions are gone: the old system prompt's calls.
        assert doc["interactions"] == without(after_new[case], unused[case])
        assert len(doc["interactions"]) == TURNS * 3
        systems = [
            item["request"]["messages"][0]["content"]
            for item in doc["interactions"]
            if item["role"] == "agent" and not item["request"].get("stream")
        ]
        assert systems == ["be brief"] * TURNS
        assert doc["models"] == {"agent": ["agent-model"], "supervisor": [SUPERVISOR_MODEL]}

    # Replaying the pruned cassettes: every call answered, none unused, no request made.
    calls = server.count
    replay = project.run("replay", server.openai_url)
    assert server.count == calls
    block = summary(replay)["cassettes"]
    assert block["replayed"] == len(CASES) * TURNS * 3, block
    assert (block["missed"], block["unused_interactions"]) == (0, 0), block

    # Pruning the same run twice removes nothing more: the files changed since that run.
    again = project.cli("cassettes", "prune", results)
    assert again.returncode == 0, describe(again)
    assert "changed since the run" in again.stdout and "Nothing to remove" in again.stdout
    assert project.documents() == documents


@pytest.mark.slow
def test_prune_removes_the_last_recordings_of_a_key(tmp_path: Path, server: SimServer) -> None:
    project = Project(tmp_path / "proj")
    project.agent(repeat=2)  # the same plain request twice a turn: two recordings, one key
    project.run("record", server.openai_url)
    recorded = project.documents()
    calls = server.count

    # Asked once a turn now: a replay uses the first recording, the second goes unused.
    project.agent(repeat=1)
    results = project.run("replay", server.openai_url)
    assert server.count == calls
    block = summary(results)["cassettes"]
    assert block["unused"] == {
        case: [f"agent/{turn}/1" for turn in range(1, TURNS + 1)] for case in CASES
    }, block

    before = project.snapshot()
    dry = project.cli("cassettes", "prune", results, "--dry-run", "--dir", project.folder)
    assert dry.returncode == 0, describe(dry)
    assert "dry run: nothing changed" in dry.stdout
    assert project.snapshot() == before  # byte for byte, and no file added

    # A copy where the recording to remove is no longer the one the run left unused (its
    # key edited): the last recording of that key is now a used one, so that key is skipped.
    edited = tmp_path / "edited"
    shutil.copytree(project.folder, edited)
    target = edited / f"{CASES[0]}.json"
    document = json.loads(target.read_text(encoding="utf-8"))
    (second,) = [i for i in document["interactions"] if (i["turn"], i["index"]) == (1, 1)]
    second["key"] = "0" * 64
    target.write_text(json.dumps(document), encoding="utf-8")
    partial = project.cli("cassettes", "prune", results, "--dry-run", "--dir", edited)
    assert partial.returncode == 0, describe(partial)
    assert (
        f"Would remove 2 of 12 interactions from {CASES[0]}.json: agent/2/1, agent/3/1"
        in partial.stdout
    ), partial.stdout
    assert (
        f"[WARN] {CASES[0]}: the cassette no longer holds agent/1/1 as the run saw them"
        in partial.stdout
    ), partial.stdout
    assert f"Would remove 3 of 12 interactions from {CASES[1]}.json" in partial.stdout

    done = project.cli("cassettes", "prune", results, "--dir", "cassettes/castest")
    assert done.returncode == 0, describe(done)
    for case, doc in project.documents().items():
        positions = [f"{i['role']}/{i['turn']}/{i['index']}" for i in doc["interactions"]]
        expected = [
            f"{role}/{turn}/{index}"
            for turn in range(1, TURNS + 1)
            for role, index in (("agent", 0), ("agent", 2), ("supervisor", 0))
        ]
        assert positions == expected, positions
        kept = {i["key"] for i in doc["interactions"]}
        assert kept == {i["key"] for i in recorded[case]["interactions"]}
    project.run("replay", server.openai_url)
    assert server.count == calls

    # A replay that misses (the prompt changed) vouches for nothing: its cases are skipped.
    project.agent(system="something else")
    missed = project.run("replay", DEAD_URL, passes=False)
    assert summary(missed)["cassettes"]["cases_with_misses"] == len(CASES)
    before = project.snapshot()
    skipped = project.cli("cassettes", "prune", missed)
    assert skipped.returncode == 0, describe(skipped)
    assert (
        "2 cases skipped: they missed calls; re-record them with --fluxloop-cassettes new"
        in skipped.stdout
    )
    assert "Nothing to remove" in skipped.stdout
    assert project.snapshot() == before

    # A cassette that cannot be read stops prune before it writes anything.
    broken = project.folder / f"{CASES[1]}.json"
    broken.write_text("{", encoding="utf-8")
    before = project.snapshot()
    corrupt = project.cli("cassettes", "prune", results)
    assert corrupt.returncode == 4, describe(corrupt)
    assert f"Error: cassette {broken.resolve()}: is not valid JSON" in corrupt.stderr
    assert project.snapshot() == before


@pytest.mark.slow
def test_prune_refuses_a_run_without_cassettes(tmp_path: Path, server: SimServer) -> None:
    project = Project(tmp_path / "proj")
    results = project.run("off", server.openai_url)
    proc = project.cli("cassettes", "prune", results)
    assert proc.returncode == 4, describe(proc)
    assert "this run was not made with cassettes" in proc.stderr
    assert "Traceback" not in proc.stderr

    not_results = project.cli("cassettes", "prune", tmp_path)
    assert not_results.returncode == 4, describe(not_results)
    assert "not a FluxLoop experiment folder" in not_results.stderr


# --------------------------------------------------------------------------- show


def stream_events() -> dict[str, Any]:
    """A recorded OpenAI chat stream: "Hello there", usage, then [DONE]."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-test"}
    return {
        "status": 200,
        "content_type": "text/event-stream",
        "events": [
            {"json": {**chunk, "choices": [{"index": 0, "delta": {"content": "Hello "}}]}},
            {"json": {**chunk, "choices": [{"index": 0, "delta": {"content": "there"}}]}},
            {"json": {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}},
            {
                "json": {
                    **chunk,
                    "choices": [],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
                }
            },
            {"data": "[DONE]"},
        ],
        "complete": False,  # the SDK stops reading at [DONE]
    }


def anthropic_stream() -> dict[str, Any]:
    """A recorded Anthropic Messages stream saying "Ciao!"."""
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test"}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {**message, "content": [],
                          "usage": {"input_tokens": 11, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Ciao!"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 3}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return {
        "status": 200,
        "content_type": "text/event-stream",
        "events": [{"event": name, "json": data} for name, data in events],
        "complete": True,
    }


def conversation(case_id: str) -> Cassette:
    """One case's cassette with every kind of response ``show`` rebuilds."""
    long_system = "You are a support agent for ACME.\n" + "Follow the policy. " * 40
    responses_reply = {
        "status": 200,
        "content_type": "application/json",
        "json": {
            "id": "resp_1",
            "object": "response",
            "model": "gpt-test",
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Refund approved."}],
                }
            ],
            "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
        },
    }
    anthropic_reply = {
        "status": 200,
        "content_type": "application/json",
        "json": {
            "id": "msg_2",
            "type": "message",
            "role": "assistant",
            "model": "claude-judge",
            "content": [{"type": "text", "text": '{"verdict": "pass"}'}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 20, "output_tokens": 4},
        },
    }
    history = [
        {"role": "system", "content": long_system},
        {"role": "user", "content": "Where is my refund?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "user", "content": [{"type": "text", "text": "Order 1042, please."}]},
    ]
    return Cassette(
        experiment=EXPERIMENT,
        case_id=case_id,
        interactions=[
            interaction(
                {"model": "gpt-test", "messages": history},
                turn=1,
                case_id=case_id,
                response=chat_reply("Your refund is on its way."),
            ),
            interaction(
                chat_body("Order 1042, please.", stream=True),
                turn=1,
                index=1,
                case_id=case_id,
                response=stream_events(),
            ),
            interaction(
                {"model": "gpt-test", "instructions": "Be terse.", "input": "Refund?"},
                turn=2,
                case_id=case_id,
                endpoint="/responses",
                response=responses_reply,
            ),
            interaction(
                {
                    "model": "claude-test",
                    "max_tokens": 50,
                    "stream": True,
                    "messages": [{"role": "user", "content": "Say hi in Italian"}],
                },
                turn=2,
                index=1,
                case_id=case_id,
                provider="anthropic",
                endpoint="/v1/messages",
                response=anthropic_stream(),
            ),
            interaction(
                {
                    "model": "claude-judge",
                    "max_tokens": 100,
                    "system": "You grade answers.",
                    "messages": [{"role": "user", "content": "Grade: refund on its way"}],
                },
                role="judge",
                turn=2,
                case_id=case_id,
                provider="anthropic",
                endpoint="/v1/messages",
                response=anthropic_reply,
            ),
        ],
        recorded_with={"pytest_fluxloop": "0.1.0", "openai": "3.57.0", "anthropic": "2.14.0"},
    )


@pytest.fixture
def shown(tmp_path: Path) -> Project:
    """A project whose cassette folder holds 25 cases (hand-built, by the real writer)."""
    project = Project(tmp_path / "proj")
    for number in range(25):
        case_id = f"in{number:02d}-question-novice_user-it0"
        write_cassette(project.folder / f"{case_id}.json", conversation(case_id), REDACTOR)
    return project


CASE = "in03-question-novice_user-it0"


def blocks(text: str) -> list[str]:
    return text.split("\n\n")


def test_show_a_case_id_prints_the_conversation(shown: Project) -> None:
    proc = shown.cli("cassettes", "show", CASE)  # configs/simulation.yaml of the cwd
    assert proc.returncode == 0, describe(proc)
    head, *calls = blocks(proc.stdout.rstrip("\n"))
    assert head.splitlines() == [
        f"Cassette: {shown.folder.resolve() / (CASE + '.json')}",
        f"Experiment: {EXPERIMENT}",
        f"Case: {CASE} (iteration 0)",
        "Recorded with: anthropic 2.14.0, openai 3.57.0, pytest_fluxloop 0.1.0",
        "Models: agent gpt-test, claude-test; judge claude-judge",
        "Interactions: 5 (agent 4, judge 1)",
    ]
    assert [call.splitlines()[0] for call in calls] == [
        "turn 1 · agent · #0 · openai /chat/completions · gpt-test",
        "turn 1 · agent · #1 · openai /chat/completions · gpt-test · stream",
        "turn 2 · agent · #0 · openai /responses · gpt-test",
        "turn 2 · agent · #1 · anthropic /v1/messages · claude-test · stream",
        "turn 2 · judge · #0 · anthropic /v1/messages · claude-judge",
    ]
    chat, stream, responses, anthropic, judge = (call.splitlines()[1:] for call in calls)
    # The system prompt shortened to its first line, the LAST user message, the reply.
    assert chat == [
        "    system: You are a support agent for ACME. [...] (793 characters)",
        "    user: Order 1042, please.",
        "    reply (stop; 3 in / 2 out tokens): Your refund is on its way.",
    ]
    assert stream == [
        "    user: Order 1042, please.",
        "    reply (stop; 7 in / 2 out tokens): Hello there",
    ]
    assert responses == [
        "    system: Be terse.",
        "    user: Refund?",
        "    reply (completed; 5 in / 3 out tokens): Refund approved.",
    ]
    assert anthropic == [
        "    user: Say hi in Italian",
        "    reply (end_turn; 11 in / 3 out tokens): Ciao!",
    ]
    assert judge == [
        "    system: You grade answers.",
        "    user: Grade: refund on its way",
        '    reply (end_turn; 20 in / 4 out tokens): {"verdict": "pass"}',
    ]


def test_show_a_path_and_json(shown: Project, tmp_path: Path) -> None:
    path = shown.folder / f"{CASE}.json"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_cli("cassettes", "show", path, cwd=elsewhere)  # no config needed
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.startswith(f"Cassette: {path}\nExperiment: {EXPERIMENT}\n")
    assert "turn 2 · judge · #0 · anthropic /v1/messages · claude-judge" in proc.stdout

    as_json = shown.cli("cassettes", "show", CASE, "--json")
    assert as_json.returncode == 0, describe(as_json)
    assert as_json.stdout == path.read_text(encoding="utf-8")  # the file as it is

    by_dir = run_cli("cassettes", "show", CASE, "--dir", shown.folder, cwd=elsewhere)
    assert by_dir.returncode == 0, describe(by_dir)
    assert by_dir.stdout == shown.cli("cassettes", "show", CASE).stdout


def test_show_finds_the_folder_of_a_project(tmp_path: Path) -> None:
    # fluxloop/<NAME>/configs/simulation.yaml, found with --project as `run experiment` does.
    project = Project(tmp_path / "fluxloop" / "support")
    case_id = CASES[0]
    write_cassette(project.folder / f"{case_id}.json", conversation(case_id), REDACTOR)
    proc = run_cli("cassettes", "show", case_id, "--project", "support", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert f"Case: {case_id} (iteration 0)" in proc.stdout


def test_show_an_unknown_case_lists_the_case_ids(shown: Project) -> None:
    proc = shown.cli("cassettes", "show", "in99-nope-it0")
    assert proc.returncode == 4, describe(proc)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        f"Error: no cassette for case 'in99-nope-it0' in {shown.folder.resolve()}; "
        "its 25 case id(s):"
    )
    assert lines[1:21] == [f"  in{n:02d}-question-novice_user-it0" for n in range(20)]
    assert lines[21] == "  ... and 5 more"

    missing = shown.cli("cassettes", "show", "nowhere/case.json")
    assert missing.returncode == 4, describe(missing)
    assert "no such cassette file: nowhere/case.json" in missing.stderr


def test_show_a_corrupt_cassette(shown: Project) -> None:
    path = shown.folder / f"{CASE}.json"
    path.write_text(path.read_text(encoding="utf-8")[:300], encoding="utf-8")  # truncated
    proc = shown.cli("cassettes", "show", CASE)
    assert proc.returncode == 4, describe(proc)
    assert re.match(
        rf"Error: cassette {re.escape(str(path.resolve()))}: is not valid JSON \(corrupt or "
        r"truncated",
        proc.stderr,
    ), proc.stderr
    assert "Traceback" not in proc.stderr
