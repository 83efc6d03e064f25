"""LLM-call cassettes end to end (issue 14), tried the way a new user would.

A multi-turn project (:mod:`support.cassette_project`): an LLM supervisor (the real openai
client, provider ``openai``) and an agent making two real openai calls per turn, one of them
streamed with ``include_usage``, all against :mod:`support.sim_llm` on 127.0.0.1. Every run
is ``pytest --fluxloop-config`` in a subprocess (pytester) with ``CI``, the API keys and the
URLs set for that run only. "Offline" means the URLs point at a closed port (any network
call would fail the case), or at a fresh server whose request count must stay 0.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cassette_project import (
    AGENT_CALLS_PER_TURN,
    AGENT_TURNS,
    CALLS_PER_CASE,
    DEAD_URL,
    EXPERIMENT,
    QUIET_PLUGINS,
    RECORD_KEY,
    SIM_TURNS,
    SUPERVISOR_MODEL,
    SYSTEM,
    CassetteProject,
    cassette_files,
    environment,
    files_containing,
    results_dir,
    run_env,
    stable_summary,
    summary,
    traces,
    write_project,
)
from support.cli_helpers import describe, run_child_pytest
from support.judge_server import running_judge_server
from support.sim_llm import SimServer, running_sim_server

NEW_SYSTEM = "be brief"
CASES = ("in00-hello_there-novice_user-it0", "in01-refund_please-expert_user-it0")
FOUR_CASES = (
    *CASES,
    "in02-where_is_my_parcel-novice_user-it0",
    "in03-cancel_my_plan-expert_user-it0",
)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Cassettes recorded once per module (4 cases, the default agent): file name → bytes."""
    root = tmp_path_factory.mktemp("recording")
    write_project(root, inputs=4)
    with running_sim_server(turns=SIM_TURNS) as server:
        env = run_env(url=server.openai_url, keys=True)
        with environment({"CI": None}):
            proc = run_child_pytest(
                "--fluxloop-config",
                "configs/simulation.yaml",
                "--fluxloop-cassettes",
                "record",
                *QUIET_PLUGINS[2:],
                cwd=root,
                env={k: v for k, v in env.items() if v is not None},
            )
        calls = server.count
    assert proc.returncode == 0, describe(proc)
    assert calls == 4 * CALLS_PER_CASE
    files = {p.name: p.read_bytes() for p in cassette_files(root)}
    assert sorted(files) == sorted(f"{case}.json" for case in FOUR_CASES)
    return files


def install(project: CassetteProject, recording: dict[str, bytes], cases: tuple[str, ...]) -> None:
    """Put the module's recorded cassettes of ``cases`` into ``project``."""
    folder = project.cassette_dir
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        (folder / f"{case}.json").write_bytes(recording[f"{case}.json"])


@pytest.fixture
def recorded(pytester: pytest.Pytester, recording: dict[str, bytes]) -> CassetteProject:
    """The 2-case project with its cassettes recorded (the default agent)."""
    project = CassetteProject(pytester).setup_cassettes(inputs=2)
    install(project, recording, CASES)
    return project


@pytest.fixture
def witness() -> Iterator[SimServer]:
    """A running sim server a run is pointed at to prove it makes no request."""
    with running_sim_server(turns=SIM_TURNS) as server:
        yield server


def cassette_line(folder: Path, replayed: int, recorded: int, missed: int) -> str:
    return (
        f"cassettes (replay, {folder}): {replayed} calls replayed, {recorded} recorded, "
        f"{missed} missed"
    )


def system_prompts(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body.get("messages") or [] if m.get("role") == "system"]


# --------------------------------------------------------------------------- 1. acceptance


@pytest.mark.slow
def test_record_once_then_replay_offline_gives_the_same_run(pytester: pytest.Pytester) -> None:
    project = CassetteProject(pytester).setup_cassettes(inputs=2)
    with running_sim_server(turns=SIM_TURNS) as server:
        record = project.run(mode="record", url=server.openai_url, keys=True)
        live_calls = server.count
    assert record.ret == pytest.ExitCode.OK, record.stdout.str()
    record.assert_outcomes(passed=2)
    assert live_calls == 2 * CALLS_PER_CASE

    # The cassettes: one pretty-printed JSON file per case, every role's calls in it.
    documents = project.cassettes()
    assert sorted(documents) == [f"{case}.json" for case in CASES]
    for name, document in documents.items():
        assert document["fluxloop_cassette"] == 1
        assert (document["experiment"], document["case_id"]) == (EXPERIMENT, name[:-5])
        assert document["models"] == {"agent": ["agent-model"], "supervisor": [SUPERVISOR_MODEL]}
        found = document["interactions"]
        assert len(found) == CALLS_PER_CASE
        positions = [(i["role"], i["turn"], i["index"]) for i in found]
        expected = []
        for turn in range(1, AGENT_TURNS + 1):
            expected += [("agent", turn, 0), ("agent", turn, 1), ("supervisor", turn, 0)]
        assert sorted(positions) == sorted(expected)
        streamed = [i for i in found if i["request"].get("stream")]
        assert len(streamed) == AGENT_TURNS
        for interaction in streamed:
            events = interaction["response"]["events"]
            assert events[-1] == {"data": "[DONE]"}
            assert any(e.get("json", {}).get("usage") for e in events)  # include_usage
        text = (project.cassette_dir / name).read_text(encoding="utf-8")
        assert text.startswith("{\n  ")  # reviewable in a pull request
        assert RECORD_KEY not in text and "agent-test-key" not in text  # no headers stored

    # Replay twice with no key anywhere: first with nothing listening, then against a fresh
    # server that must see no request.
    replay_dead = project.run(mode="replay", url=DEAD_URL)
    with running_sim_server(turns=SIM_TURNS) as witness:
        replay_live = project.run(mode="replay", url=witness.openai_url)
        witnessed = witness.count
    assert witnessed == 0
    total = 2 * CALLS_PER_CASE
    for replay in (replay_dead, replay_live):
        assert replay.ret == pytest.ExitCode.OK, replay.stdout.str()
        replay.assert_outcomes(passed=2)
        replay.stdout.fnmatch_lines([cassette_line(project.cassette_dir, total, 0, 0)])
    assert project.cassettes() == documents  # replay never writes

    runs = [results_dir(r.stdout.str()) for r in (record, replay_dead, replay_live)]
    assert len(set(runs)) == 3
    recorded_run, *replays = runs

    # Same transcripts, outputs, token usage: only ids, timestamps and durations differ.
    reference = stable_summary(recorded_run)
    assert sorted(reference) == list(CASES)
    for case in reference.values():
        assert case["status"] == "success"
        assert case["termination_reason"] == "user_satisfied"
        assert case["output"] == "echo: question 3 (first: question 3)"
    for run in replays:
        assert stable_summary(run) == reference

    # Token usage by role, per run: the streamed call's usage included, nothing missing.
    usage = summary(recorded_run)["token_usage"]
    assert usage["agent"]["calls"] == 2 * AGENT_TURNS * AGENT_CALLS_PER_TURN
    assert usage["supervisor"]["calls"] == 2 * AGENT_TURNS
    assert usage["agent"]["calls_without_usage"] == 0
    assert usage["agent"]["total_tokens"] > 0
    for run in replays:
        assert summary(run)["token_usage"] == usage

    # The figures: summary.json and each trace.
    assert summary(recorded_run)["cassettes"] == {
        "mode": "record",
        "mode_reason": "set",
        "folder": str(project.cassette_dir),
        "replayed": 0,
        "recorded": total,
        "missed": 0,
        "cases_with_misses": 0,
        "cassettes_written": 2,
        "unused_interactions": 0,
        "unused": {},
    }
    for trace in traces(recorded_run).values():
        assert trace["cassette"] == {
            "mode": "record",
            "replayed": 0,
            "recorded": CALLS_PER_CASE,
            "missed": 0,
            "unused": [],
            "unused_keys": [],
            "written": True,
        }
    for run in replays:
        assert summary(run)["cassettes"] == {
            "mode": "replay",
            "mode_reason": "set",
            "folder": str(project.cassette_dir),
            "replayed": total,
            "recorded": 0,
            "missed": 0,
            "cases_with_misses": 0,
            "cassettes_written": 0,
            "unused_interactions": 0,
            "unused": {},
        }
        for trace in traces(run).values():
            assert trace["cassette"] == {
                "mode": "replay",
                "replayed": CALLS_PER_CASE,
                "recorded": 0,
                "missed": 0,
                "unused": [],
                "unused_keys": [],
                "written": False,
            }


@pytest.mark.slow
def test_a_stream_read_to_the_end_is_recorded_complete(recording: dict[str, bytes]) -> None:
    """The openai SDK closes a stream's body at ``[DONE]``, before the body iterator ends:
    the recording is still whole (``complete`` true), one per agent turn."""
    streams = 0
    for data in recording.values():
        for interaction in json.loads(data)["interactions"]:
            response = interaction["response"]
            if "events" in response:
                assert response["events"][-1] == {"data": "[DONE]"}
                assert response["complete"] is True, interaction["key"]
                streams += 1
    assert streams == len(recording) * AGENT_TURNS


# --------------------------------------------------------------------------- 2. a changed agent


@pytest.mark.slow
def test_a_changed_prompt_fails_the_replay_with_a_diff(recorded: CassetteProject) -> None:
    before = recorded.snapshot()
    recorded.write_agent(system=NEW_SYSTEM)
    result = recorded.run(mode="replay")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert result.parseoutcomes().get("passed", 0) == 0, out
    assert "infrastructure error" in out
    assert "CassetteMiss" in out
    assert "agent call #1 of turn 1" in out
    assert f'-      "content": "{SYSTEM}",' in out
    assert f'+      "content": "{NEW_SYSTEM}",' in out
    assert "--fluxloop-cassettes new" in out
    assert recorded.snapshot() == before  # a failed replay writes nothing

    exp = results_dir(out)
    data = summary(exp)
    assert data["by_error_kind"] == {"infrastructure": 2}
    assert data["by_status"] == {"error": 2}
    assert data["exit_code"] == 1
    assert data["cassettes"]["missed"] == 2
    assert data["cassettes"]["cases_with_misses"] == 2
    # The cases stopped at their first call: nothing is reported unused.
    assert data["cassettes"]["unused_interactions"] == 0
    for trace in traces(exp).values():
        assert trace["status"] == "error"
        assert (trace["error"]["kind"], trace["error"]["type"]) == (
            "infrastructure",
            "CassetteMiss",
        )
        assert f'+      "content": "{NEW_SYSTEM}",' in trace["error"]["message"]
        assert trace["cassette"]["missed"] == 1
    result.stdout.fnmatch_lines(["*2 case(s) made calls no recording matched*"])


@pytest.mark.slow
def test_new_records_only_the_changed_calls(recorded: CassetteProject, witness: SimServer) -> None:
    old = recorded.cassettes()
    recorded.write_agent(system=NEW_SYSTEM)
    with running_sim_server(turns=SIM_TURNS) as server:
        result = recorded.run(mode="new", url=server.openai_url, keys=True)
        calls = server.count
        bodies = [body for _, _, body in server.requests]
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    # Only the agent's first call of each turn changed: one request per agent turn per case.
    assert calls == len(bodies) == 2 * AGENT_TURNS
    assert all(system_prompts(body) == [NEW_SYSTEM] for body in bodies)

    new = recorded.cassettes()
    assert sorted(new) == sorted(old)
    for name, document in new.items():
        before = old[name]["interactions"]
        after = document["interactions"]
        assert after[: len(before)] == before  # kept as they were
        added = after[len(before) :]
        assert sorted((i["role"], i["turn"], i["index"]) for i in added) == [
            ("agent", turn, 0) for turn in range(1, AGENT_TURNS + 1)
        ]
        assert all(system_prompts(i["request"]) == [NEW_SYSTEM] for i in added)
    data = summary(results_dir(result.stdout.str()))["cassettes"]
    assert (data["mode"], data["recorded"], data["missed"]) == ("new", 2 * AGENT_TURNS, 0)
    assert data["replayed"] == 2 * (CALLS_PER_CASE - AGENT_TURNS)
    assert data["cassettes_written"] == 2
    # The old first calls are never asked for again.
    assert data["unused_interactions"] == 2 * AGENT_TURNS
    assert data["unused"] == {
        case: [f"agent/{turn}/0" for turn in range(1, AGENT_TURNS + 1)] for case in CASES
    }

    replay = recorded.run(mode="replay", url=witness.openai_url)
    assert replay.ret == pytest.ExitCode.OK, replay.stdout.str()
    replay.assert_outcomes(passed=2)
    assert witness.count == 0
    replay.stdout.fnmatch_lines(
        [
            cassette_line(recorded.cassette_dir, 2 * CALLS_PER_CASE, 0, 0),
            "*6 recorded interaction(s) never used*fluxloop cassettes prune*",
        ]
    )


# --------------------------------------------------------------------------- 4. rewrite, record


@pytest.mark.slow
def test_rewrite_replaces_every_cassette(recorded: CassetteProject, witness: SimServer) -> None:
    recorded.write_agent(system=NEW_SYSTEM)
    with running_sim_server(turns=SIM_TURNS) as server:
        result = recorded.run(mode="rewrite", url=server.openai_url, keys=True)
        calls = server.count
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert calls == 2 * CALLS_PER_CASE  # everything called again
    for document in recorded.cassettes().values():
        found = document["interactions"]
        assert len(found) == CALLS_PER_CASE  # replaced, not appended
        assert SYSTEM not in json.dumps(found)
    data = summary(results_dir(result.stdout.str()))["cassettes"]
    assert (data["mode"], data["replayed"], data["recorded"]) == ("rewrite", 0, 2 * CALLS_PER_CASE)
    assert data["cassettes_written"] == 2

    replay = recorded.run(mode="replay", url=witness.openai_url)
    assert replay.ret == pytest.ExitCode.OK, replay.stdout.str()
    assert witness.count == 0
    data = summary(results_dir(replay.stdout.str()))["cassettes"]
    assert (data["replayed"], data["unused_interactions"]) == (2 * CALLS_PER_CASE, 0)
    assert "never used" not in replay.stdout.str()


@pytest.mark.slow
def test_record_replays_a_case_that_has_a_cassette(
    recorded: CassetteProject, witness: SimServer
) -> None:
    before = recorded.snapshot()
    result = recorded.run(mode="record", url=witness.openai_url, keys=True)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert witness.count == 0
    assert recorded.snapshot() == before  # reviewed files are never rewritten by record
    exp = results_dir(result.stdout.str())
    data = summary(exp)["cassettes"]
    assert (data["mode"], data["replayed"], data["recorded"]) == ("record", 2 * CALLS_PER_CASE, 0)
    assert data["cassettes_written"] == 0
    for trace in traces(exp).values():
        assert trace["cassette"]["mode"] == "replay"  # the case's effective mode
        assert trace["cassette"]["written"] is False


# --------------------------------------------------------------------------- 5. default mode


@pytest.mark.slow
def test_ci_with_cassettes_replays_without_the_option(
    recorded: CassetteProject, witness: SimServer
) -> None:
    result = recorded.run(url=witness.openai_url, ci="true")  # no mode, no key
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    assert witness.count == 0
    result.stdout.fnmatch_lines(["cassettes (replay*"])
    assert summary(results_dir(result.stdout.str()))["cassettes"]["mode"] == "replay"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ci", "mode"),
    [(None, None), ("true", "off"), ("false", None)],
    ids=["no-CI", "CI-and-off", "CI=false"],
)
def test_cassettes_are_off_unless_ci_or_asked(
    recorded: CassetteProject, ci: str | None, mode: str | None
) -> None:
    before = recorded.snapshot()
    with running_sim_server(turns=SIM_TURNS) as server:
        result = recorded.run(mode=mode, url=server.openai_url, ci=ci, keys=True)
        calls = server.count
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert calls == 2 * CALLS_PER_CASE  # everything went to the network
    assert recorded.snapshot() == before
    assert "cassettes (" not in result.stdout.str()
    exp = results_dir(result.stdout.str())
    assert summary(exp)["cassettes"] is None
    assert all(trace["cassette"] is None for trace in traces(exp).values())


@pytest.mark.slow
def test_ci_without_cassettes_is_off(pytester: pytest.Pytester) -> None:
    project = CassetteProject(pytester).setup_cassettes(inputs=2)
    with running_sim_server(turns=SIM_TURNS) as server:
        result = project.run(url=server.openai_url, ci="true", keys=True)
        calls = server.count
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert calls == 2 * CALLS_PER_CASE
    assert not (project.root / "cassettes").exists()
    assert summary(results_dir(result.stdout.str()))["cassettes"] is None


# --------------------------------------------------------------------------- 6. bad cassettes


def _other_model(document: dict[str, Any]) -> dict[str, Any]:
    for interaction in document["interactions"]:
        if interaction["role"] == "supervisor":
            interaction["request"]["model"] = "old-sup-model"
    return document


@pytest.mark.slow
def test_unusable_cassettes_stop_the_run_before_any_case(
    pytester: pytest.Pytester, recording: dict[str, bytes], witness: SimServer
) -> None:
    project = CassetteProject(pytester).setup_cassettes(inputs=4)
    install(project, recording, FOUR_CASES)
    folder = project.cassette_dir
    corrupt, truncated, future, other = (folder / f"{case}.json" for case in FOUR_CASES)
    corrupt.write_text("{ this is not json", encoding="utf-8")
    whole = truncated.read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    document = json.loads(future.read_text(encoding="utf-8"))
    document["fluxloop_cassette"] = 99
    future.write_text(json.dumps(document), encoding="utf-8")
    other.write_text(json.dumps(_other_model(json.loads(other.read_text()))), encoding="utf-8")
    before = project.snapshot()

    for mode in ("replay", "record"):
        result = project.run(mode=mode, url=witness.openai_url, keys=True)
        text = result.stdout.str() + result.stderr.str()
        assert result.ret == pytest.ExitCode.USAGE_ERROR, text
        assert text.count("4 cassette(s) cannot be used") == 1, text
        for path in (corrupt, truncated, future, other):
            assert str(path) in text, (path, text)
        assert "version 99" in text
        assert "old-sup-model" in text and SUPERVISOR_MODEL in text
        assert "--fluxloop-cassettes rewrite" in text
        assert witness.count == 0
        # No case ran: no results with traces.
        for exp in project.experiments():
            path = exp / "traces.jsonl"
            assert not path.exists() or not path.read_text().strip(), exp
        assert project.snapshot() == before


@pytest.mark.slow
def test_rewrite_replaces_unusable_cassettes(recorded: CassetteProject, witness: SimServer) -> None:
    """The fix the error names works: rewrite reads none of them."""
    path = recorded.cassette_dir / f"{CASES[0]}.json"
    path.write_text("{ broken", encoding="utf-8")
    result = recorded.run(mode="rewrite", url=witness.openai_url, keys=True)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert json.loads(path.read_text(encoding="utf-8"))["case_id"] == CASES[0]


# --------------------------------------------------------------------------- 7. secrets


@pytest.mark.slow
def test_a_secret_in_a_request_is_never_written(pytester: pytest.Pytester) -> None:
    # Built at run time, so neither agent.py nor its bytecode spells it out.
    secret = "sk-" + "Zq9x" * 10
    project = CassetteProject(pytester).setup_cassettes(
        inputs=2, extra_expr='" my key is " + "-".join(["sk", "Zq9x" * 10])'
    )
    with running_sim_server(turns=SIM_TURNS) as server:
        result = project.run(
            "--junitxml",
            str(project.root / "junit.xml"),
            mode="record",
            url=server.openai_url,
            keys=True,
        )
        bodies = [body for _, _, body in server.requests]
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert any(secret in json.dumps(body) for body in bodies)  # the agent did send it
    # The refund case (the one whose prompt holds the key) has no cassette; the other has.
    assert [p.name for p in cassette_files(project.root)] == [f"{CASES[0]}.json"]
    exp = results_dir(result.stdout.str())
    found = traces(exp)
    error = found[CASES[1]]["error"]
    assert found[CASES[1]]["status"] == "error"
    assert (error["kind"], error["type"]) == ("infrastructure", "CassetteError")
    assert "not written" in error["message"] and "secret" in error["message"]
    assert found[CASES[1]]["cassette"]["written"] is False
    assert found[CASES[0]]["status"] == "success"
    assert summary(exp)["by_error_kind"] == {"infrastructure": 1}
    assert "infrastructure error" in out
    assert (project.root / "junit.xml").is_file()
    assert files_containing(project.root, secret) == []
    assert secret not in out


# --------------------------------------------------------------------------- 8. parallel


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "parallel_runs"), [(("-n", "2"), 1), ((), 3)], ids=["xdist", "parallel_runs"]
)
def test_parallel_cases_write_one_cassette_each(
    pytester: pytest.Pytester, witness: SimServer, args: tuple[str, ...], parallel_runs: int
) -> None:
    project = CassetteProject(pytester).setup_cassettes(
        inputs=4, iterations=2, parallel_runs=parallel_runs
    )
    cases = [f"{case[:-4]}-it{n}" for case in FOUR_CASES for n in range(2)]
    # A slow provider (50 ms a call, ~0.5 s a case), so the cases do overlap.
    with running_sim_server(turns=SIM_TURNS, delay=0.05) as server:
        record = project.run(*args, mode="record", url=server.openai_url, keys=True)
        calls = server.count
    assert record.ret == pytest.ExitCode.OK, record.stdout.str()
    record.assert_outcomes(passed=len(cases))
    assert calls == len(cases) * CALLS_PER_CASE
    documents = project.cassettes()
    assert sorted(documents) == sorted(f"{case}.json" for case in cases)
    for name, document in documents.items():
        assert document["case_id"] == name[:-5]
        assert document["iteration"] == int(name[-6])
        assert len(document["interactions"]) == CALLS_PER_CASE
    assert not [p for p in project.cassette_dir.iterdir() if not p.name.endswith(".json")]
    recorded_run = results_dir(record.stdout.str())
    data = summary(recorded_run)["cassettes"]
    assert (data["recorded"], data["cassettes_written"]) == (calls, len(cases))
    rows = list(traces(recorded_run).values())
    if args:
        assert {row["worker"] for row in rows} == {"gw0", "gw1"}
    spans = sorted((row["started_at"], row["completed_at"]) for row in rows)
    assert any(later[0] < earlier[1] for earlier, later in pairwise(spans)), spans

    replay = project.run(*args, mode="replay", url=witness.openai_url)
    assert replay.ret == pytest.ExitCode.OK, replay.stdout.str()
    replay.assert_outcomes(passed=len(cases))
    assert witness.count == 0
    data = summary(results_dir(replay.stdout.str()))["cassettes"]
    assert (data["replayed"], data["missed"]) == (calls, 0)


# --------------------------------------------------------------------------- 9. a judge

JUDGE = {
    "name": "helpful",
    "type": "llm_judge",
    "model": "judge-model",
    "max_score": 10,
    "prompt_template": "The customer asked: {input}\nScore the support from 0 to 10.",
}


def write_evaluation(project: CassetteProject, judge_url: str) -> None:
    evaluation = {
        "evaluators": [{**JUDGE, "base_url": judge_url}],
        "aggregate": {"method": "weighted_sum", "threshold": 0.7},
    }
    project.write("configs/evaluation.yaml", yaml.safe_dump(evaluation, sort_keys=False))


@pytest.mark.slow
def test_judge_calls_are_recorded_and_replayed(
    pytester: pytest.Pytester, witness: SimServer
) -> None:
    project = CassetteProject(pytester).setup_cassettes(inputs=2)
    with running_sim_server(turns=SIM_TURNS) as server, running_judge_server() as judge:
        write_evaluation(project, judge.url + "/v1")
        record = project.run(mode="record", url=server.openai_url, keys=True)
        judged = judge.count
    assert record.ret == pytest.ExitCode.TESTS_FAILED, record.stdout.str()  # hello: fail
    assert judged == 2
    recorded_run = results_dir(record.stdout.str())
    verdicts = {case: t["evaluation"] for case, t in traces(recorded_run).items()}
    assert verdicts[CASES[1]]["verdict"] == "passed", verdicts
    assert verdicts[CASES[0]]["verdict"] == "failed", verdicts
    for document in project.cassettes().values():
        roles = Counter(i["role"] for i in document["interactions"])
        assert roles == {"agent": 2 * AGENT_TURNS, "supervisor": AGENT_TURNS, "judge": 1}
        assert document["models"]["judge"] == ["judge-model"]
        (turn,) = {i["turn"] for i in document["interactions"] if i["role"] == "judge"}
        assert turn == 0

    with running_judge_server() as judge:
        write_evaluation(project, judge.url + "/v1")
        replay = project.run(mode="replay", url=witness.openai_url)
        judged = judge.count
    assert judged == 0
    assert witness.count == 0
    assert replay.ret == pytest.ExitCode.TESTS_FAILED, replay.stdout.str()
    replayed_run = results_dir(replay.stdout.str())
    assert {c: t["evaluation"] for c, t in traces(replayed_run).items()} == verdicts
    assert stable_summary(replayed_run) == stable_summary(recorded_run)
    data = summary(replayed_run)
    assert data["cassettes"]["replayed"] == 2 * (CALLS_PER_CASE + 1)
    assert data["cassettes"]["missed"] == 0
    assert data["token_usage"] == summary(recorded_run)["token_usage"]


# --------------------------------------------------------------------------- the option


def test_an_unknown_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    project = CassetteProject(pytester).setup_cassettes(inputs=2)
    result = pytester.runpytest(
        "--fluxloop-config",
        project.config,
        "-p",
        "no:cacheprovider",
        "--fluxloop-cassettes",
        "bogus",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--fluxloop-cassettes" in err and "'bogus'" in err, err
    for mode in ("off", "record", "replay", "new", "rewrite"):
        assert f"'{mode}'" in err, err
    assert project.experiments() == []


@pytest.mark.slow
def test_cassettes_dir_setting_moves_the_folder(
    pytester: pytest.Pytester, recording: dict[str, bytes], witness: SimServer
) -> None:
    """``cassettes.dir`` and ``cassettes.mode`` from simulation.yaml (no option)."""
    project = CassetteProject(pytester).setup_cassettes(
        inputs=2, config_extra="cassettes:\n  mode: replay\n  dir: recorded/llm\n"
    )
    folder = project.root / "recorded" / "llm" / EXPERIMENT
    folder.mkdir(parents=True)
    for case in CASES:
        (folder / f"{case}.json").write_bytes(recording[f"{case}.json"])
    result = project.run(url=witness.openai_url)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert witness.count == 0
    result.stdout.fnmatch_lines([cassette_line(folder, 2 * CALLS_PER_CASE, 0, 0)])
