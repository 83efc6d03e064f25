"""Replaying recorded calls (``replay_args``) through ``Experiment``: real projects on disk,
recordings written by the SDK's own recorder, agents shaped like websocket handlers."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.engine_helpers import isolated_imports, make_case, unique, write_module
from support.experiment_helpers import only_experiment_dir, read_jsonl

from pytest_fluxloop.config import Overrides
from pytest_fluxloop.engine import (
    CaseExecutor,
    RunSettings,
    SingleTurnDriver,
    TargetOptions,
    resolve_target,
)
from pytest_fluxloop.engine.replay import ReplayDriver, ReplayPlan
from pytest_fluxloop.errors import ConfigError, TargetError
from pytest_fluxloop.plan import read_recordings
from pytest_fluxloop.records import TraceRecord
from pytest_fluxloop.run import Experiment
from pytest_fluxloop.sdk.recording import write_call_record

RECORDING = "recordings/args_recording.jsonl"


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def send(message: Any) -> None:
    """Stands for the application's real callback (recorded as a placeholder)."""


def send_error(message: Any) -> None:
    """Stands for the application's error callback."""


class FakeSocket:
    """An object with no JSON form (recorded as an object placeholder)."""


def make_project(
    root: Path,
    agent: str,
    calls: list[dict[str, Any]],
    *,
    function: str = "handle",
    inputs: list[dict[str, Any]] | None = None,
    replay: dict[str, Any] | None = None,
    **simulation: Any,
) -> tuple[Path, str]:
    """A project whose agent module holds ``agent`` and whose recording file holds one line
    per entry of ``calls`` (``{"args": [...], "kwargs": {...}}``, recorded for the agent's
    ``function`` by the SDK's writer; ``"line"``: a raw line instead)."""
    module = unique("ws_agent")
    write_module(root, f"{module}.py", agent)
    recording = root / RECORDING
    recording.parent.mkdir(parents=True, exist_ok=True)
    for call in calls:
        if "line" in call:
            with recording.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(call["line"]).replace("MODULE", module) + "\n")
            continue
        target = call.get("target", f"{module}:{function}").replace("MODULE", module)
        write_call_record(recording, target, call.get("args", ()), call.get("kwargs", {}))
    config: dict[str, Any] = {
        "name": "replay",
        "iterations": 1,
        "seed": 3,
        "runner": {"target": f"{module}:{function}", "timeout_seconds": 10, "max_retries": 0},
        "replay_args": {"enabled": True, **(replay or {})},
        "output_directory": "experiments",
    }
    config.update(simulation)
    (root / "configs").mkdir(parents=True, exist_ok=True)
    path = root / "configs" / "simulation.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    (root / "inputs").mkdir(exist_ok=True)
    (root / "inputs" / "generated.yaml").write_text(
        yaml.safe_dump(
            {"inputs": inputs or [{"input": "hello there"}, {"input": "what's new?"}]},
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    return path, module


def ws_call(session: str, content: str = "recorded text") -> dict[str, Any]:
    """A websocket handler's recorded call: a payload, a send callback and a token."""
    return {
        "kwargs": {
            "data": {"content": content, "session": session},
            "send": send,
            "token": "tok-123",
        }
    }


def run_all(experiment: Experiment) -> list[TraceRecord]:
    return [experiment.run_case(case).record for case in experiment.cases]


def callbacks(record: TraceRecord) -> list[tuple[str, Any]]:
    return [(o.name, o.input) for o in record.observations if o.name.startswith("callback:")]


def replayed_line(record: TraceRecord) -> int:
    (obs,) = [o for o in record.observations if o.name == "replay"]
    line: int = obs.metadata["line"]
    return line


ECHO_ASYNC = """
async def handle(data: dict, send, token: str):
    await send({"echo": data["content"], "session": data["session"], "token": token})
"""


# --------------------------------------------------------------------------- single turn


def test_each_case_replays_a_recorded_call_with_its_input_at_the_path(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, ECHO_ASYNC, [ws_call("s1"), ws_call("s2")], iterations=2)
    experiment = Experiment.load(config)
    assert experiment.notices == []
    summary = experiment.run()

    assert (summary.total_traces, summary.successful) == (4, 4)
    traces = read_jsonl(only_experiment_dir(tmp_path) / "traces.jsonl")
    for trace in traces:
        output = trace["output"]
        # The case's input replaced the recorded text; the rest is as recorded (the
        # recorder redacted the token before it reached the file).
        assert output["echo"] == trace["input"]
        assert output["token"] == "***REDACTED***"
    # Both recordings are used, each by half of the cases.
    sessions = [t["output"]["session"] for t in traces]
    assert sorted(sessions) == ["s1", "s1", "s2", "s2"]
    observations = read_jsonl(only_experiment_dir(tmp_path) / "observations.jsonl")
    replays = [o for o in observations if o["name"] == "replay"]
    assert sorted(o["metadata"]["line"] for o in replays) == [1, 1, 2, 2]
    assert {o["metadata"]["recording_file"] for o in replays} == {str(tmp_path / RECORDING)}


def test_the_choice_of_recording_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    calls = [ws_call(f"s{i}") for i in range(3)]
    config, _ = make_project(tmp_path, ECHO_ASYNC, calls, iterations=3)
    first = {r.case_id: replayed_line(r) for r in run_all(Experiment.load(config))}
    again = {r.case_id: replayed_line(r) for r in run_all(Experiment.load(config))}
    assert first == again
    assert sorted(first.values()) == [1, 1, 2, 2, 3, 3]  # 6 cases cycle through 3 calls


def test_callback_messages_are_the_output_and_observations(tmp_path: Path) -> None:
    agent = """
    def handle(data, send, token):
        send({"type": "typing"})
        send({"type": "text", "text": "re: " + data["content"]})
    """
    config, _ = make_project(tmp_path, agent, [ws_call("s1")], inputs=[{"input": "hi"}])
    (record,) = run_all(Experiment.load(config))
    assert record.success, record.error
    assert record.output == [{"type": "typing"}, {"type": "text", "text": "re: hi"}]
    assert callbacks(record) == [
        ("callback:send", {"type": "typing"}),
        ("callback:send", {"type": "text", "text": "re: hi"}),
    ]


@pytest.mark.parametrize(
    "body",
    [
        'send("sync call from async code")',
        'await send("sync call from async code")',
        'await asyncio.gather(send("sync call from async code"))',
    ],
    ids=["not-awaited", "awaited", "gathered"],
)
def test_an_async_agent_may_call_or_await_the_callback(tmp_path: Path, body: str) -> None:
    agent = f"""
    import asyncio

    async def handle(data, send, token):
        {body}
    """
    config, _ = make_project(tmp_path, agent, [ws_call("s1")], inputs=[{"input": "hi"}])
    (record,) = run_all(Experiment.load(config))
    assert record.success, record.error
    assert record.output == "sync call from async code"


def test_a_returned_value_wins_over_sent_messages(tmp_path: Path) -> None:
    agent = """
    async def handle(data, send, token):
        await send("progress")
        return "final answer"
    """
    config, _ = make_project(tmp_path, agent, [ws_call("s1")], inputs=[{"input": "hi"}])
    (record,) = run_all(Experiment.load(config))
    assert record.output == "final answer"
    assert callbacks(record) == [("callback:send", "progress")]


def test_tasks_the_agent_left_running_are_awaited_without_a_fixed_wait(tmp_path: Path) -> None:
    agent = """
    import asyncio

    async def handle(data, send, token):
        async def later():
            await asyncio.sleep(0.05)
            await send({"late": data["content"]})
            asyncio.create_task(send("from a task of a task"))

        asyncio.create_task(later())
        asyncio.create_task(send("scheduled at once"))
    """
    config, _ = make_project(tmp_path, agent, [ws_call("s1")], inputs=[{"input": "hi"}])
    started = time.perf_counter()
    (record,) = run_all(Experiment.load(config))
    elapsed = time.perf_counter() - started
    assert record.success, record.error
    assert record.output == ["scheduled at once", {"late": "hi"}, "from a task of a task"]
    # The earlier tool slept 5 s per run for callbacks; here the case ends with the task.
    assert record.duration_ms < 1000
    assert elapsed < 3


def test_a_task_that_never_ends_is_cancelled_before_the_deadline(tmp_path: Path) -> None:
    # timeout_seconds is at least 10 in a config: the engine is driven directly for 1 s.
    async def handle(data: dict[str, Any], send: Any, token: str) -> None:
        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(0.01)

        # Fire and forget, as real handlers do: what is tested.
        asyncio.create_task(heartbeat(), name="heartbeat")  # noqa: RUF006
        await send("reply")

    path = tmp_path / RECORDING
    write_call_record(path, "x:handle", (), ws_call("s1")["kwargs"])
    plan = ReplayPlan.build(read_recordings(path), "data.content")
    module = types.ModuleType(unique("synthetic"))
    module.handle = handle  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    target = resolve_target(f"{module.__name__}:handle", TargetOptions(replay=True))
    driver = ReplayDriver(plan, SingleTurnDriver(), signature=target.signature, timeout_seconds=1)
    executor = CaseExecutor(target, RunSettings(timeout_seconds=1, max_retries=0), driver=driver)
    record = executor.run(make_case("hi")).record
    assert record.status == "success" and record.output == "reply"
    assert record.duration_ms < 1000
    (notice,) = [o for o in record.observations if o.name == "replay:tasks_cancelled"]
    assert notice.metadata["tasks"] == ["heartbeat"]


def test_a_failing_background_task_is_an_error_observation(tmp_path: Path) -> None:
    agent = """
    import asyncio

    async def handle(data, send, token):
        async def broken():
            raise RuntimeError("callback task failed")

        asyncio.create_task(broken())
        await send("reply")
    """
    config, _ = make_project(tmp_path, agent, [ws_call("s1")], inputs=[{"input": "hi"}])
    (record,) = run_all(Experiment.load(config))
    assert record.success and record.output == "reply"
    (failure,) = [o for o in record.observations if o.name == "replay:task_failed"]
    assert failure.error == "RuntimeError: callback task failed"


def test_error_callbacks_are_observed_but_not_output(tmp_path: Path) -> None:
    agent = """
    async def handle(data, send_message_callback, send_error_callback):
        send_error_callback({"code": 1})
        await send_message_callback("ok")
    """
    call = {
        "kwargs": {
            "data": {"content": "x"},
            "send_message_callback": send,
            "send_error_callback": send_error,
        }
    }
    config, _ = make_project(tmp_path, agent, [call], inputs=[{"input": "hi"}])
    (record,) = run_all(Experiment.load(config))
    assert record.output == "ok"
    assert callbacks(record) == [
        ("callback:send_error_callback", {"code": 1}),
        ("callback:send_message_callback", "ok"),
    ]


def test_a_recorded_object_becomes_a_stand_in_whose_send_methods_are_output(
    tmp_path: Path,
) -> None:
    agent = """
    async def handle(data, websocket, raw: bytes):
        assert raw == b""
        assert not hasattr(websocket, "__iter__")
        await websocket.send_json({"answer": data["content"]})
        await websocket.close()
    """
    call = {"kwargs": {"data": {"content": "x"}, "websocket": FakeSocket(), "raw": b"\x00\xff"}}
    config, _ = make_project(tmp_path, agent, [call], inputs=[{"input": "hi"}])
    (record,) = run_all(Experiment.load(config))
    assert record.success, record.error
    assert record.output == {"answer": "hi"}
    assert callbacks(record) == [
        ("callback:websocket.send_json", {"answer": "hi"}),
        ("callback:websocket.close", None),
    ]


def test_list_index_paths_and_positional_arguments(tmp_path: Path) -> None:
    agent = """
    def handle(request, send):
        send([m["content"] for m in request["messages"]])
    """
    request = {"messages": [{"role": "user", "content": "old"}, {"role": "user", "content": "2"}]}
    config, _ = make_project(
        tmp_path,
        agent,
        [{"args": [request, send]}],
        inputs=[{"input": "new"}],
        replay={"override_param_path": "args.0.messages.0.content"},
    )
    (record,) = run_all(Experiment.load(config))
    assert record.output == ["new", "2"]
    # A positional callback is named by its parameter.
    assert callbacks(record) == [("callback:send", ["new", "2"])]


def test_each_call_is_a_fresh_copy_of_the_recording(tmp_path: Path) -> None:
    agent = """
    def handle(data, send, token):
        data.setdefault("seen", []).append(data["content"])
        send(list(data["seen"]))
    """
    config, _ = make_project(tmp_path, agent, [ws_call("s1")], iterations=2)
    for record in run_all(Experiment.load(config)):
        assert record.output == [record.input]  # nothing left over from another case


def test_runner_args_replace_recorded_keyword_arguments(tmp_path: Path) -> None:
    agent = """
    def handle(data, send, token, dry_run=False):
        send({"token": token, "dry_run": dry_run})
    """
    runner = {"timeout_seconds": 10, "max_retries": 0, "args": {"token": "test", "dry_run": True}}
    config, module = make_project(tmp_path, agent, [ws_call("s1")], inputs=[{"input": "hi"}])
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["runner"] = {**runner, "target": f"{module}:handle"}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    (record,) = run_all(Experiment.load(config))
    assert record.output == {"token": "test", "dry_run": True}


# --------------------------------------------------------------------------- other line shapes


def test_earlier_sdk_lines_with_callable_text_are_replayed(tmp_path: Path) -> None:
    line = {
        "_version": "1",
        "iteration": 0,
        "target": "MODULE:handle",
        "kwargs": {
            "data": {"content": "x", "session": "legacy"},
            "send": "<builtin:collector.send:async>",
            "token": "***",
        },
        "timestamp": "2025-01-17T14:30:22.123456",
    }
    config, _ = make_project(tmp_path, ECHO_ASYNC, [{"line": line}], inputs=[{"input": "hi"}])
    (record,) = run_all(Experiment.load(config))
    assert record.output == {"echo": "hi", "session": "legacy", "token": "***"}


def test_documented_example_lines_without_version_or_target(tmp_path: Path) -> None:
    agent = """
    def handle(data):
        return "got " + data["content"]
    """
    lines = [
        {"line": {"args": [], "kwargs": {"data": {"content": "a"}}, "timestamp": "2025-01-17Z"}},
        {"line": {"args": [], "kwargs": {"data": {"content": "b"}}, "timestamp": "2025-01-17Z"}},
    ]
    config, _ = make_project(tmp_path, agent, lines)
    records = run_all(Experiment.load(config))
    assert sorted(r.output for r in records) == ["got hello there", "got what's new?"]
    assert sorted(replayed_line(r) for r in records) == [1, 2]


def test_a_script_recording_is_replayed_for_the_same_function_with_a_notice(
    tmp_path: Path,
) -> None:
    config, module = make_project(
        tmp_path, ECHO_ASYNC, [{**ws_call("s1"), "target": "__main__:handle"}]
    )
    experiment = Experiment.load(config)
    (notice,) = experiment.notices
    assert "'__main__:handle'" in notice and f"'{module}:handle'" in notice
    assert all(r.success for r in run_all(experiment))


# --------------------------------------------------------------------------- errors up front


def test_a_missing_path_is_an_error_before_any_case_listing_nearby_paths(tmp_path: Path) -> None:
    config, module = make_project(
        tmp_path, ECHO_ASYNC, [ws_call("s1")], replay={"override_param_path": "data.contnet"}
    )
    with pytest.raises(ConfigError) as info:
        Experiment.load(config)
    message = str(info.value)
    assert str(config) in message and str(tmp_path / RECORDING) in message
    assert "line 1" in message and "'data.contnet'" in message
    assert "Nearest paths that exist: data.content" in message
    assert module not in sys.modules  # nothing ran, the agent was not even imported


def test_a_missing_recording_file_names_the_config_and_the_resolved_path(tmp_path: Path) -> None:
    config, _ = make_project(
        tmp_path, ECHO_ASYNC, [ws_call("s1")], replay={"recording_file": "recordings/none.jsonl"}
    )
    with pytest.raises(ConfigError) as info:
        Experiment.load(config)
    message = str(info.value)
    assert str(config) in message and str(tmp_path / "recordings" / "none.jsonl") in message
    assert "relative to the project root" in message


def test_recordings_of_another_function_are_an_error(tmp_path: Path) -> None:
    config, _ = make_project(
        tmp_path, ECHO_ASYNC, [{**ws_call("s1"), "target": "MODULE:other_handler"}]
    )
    with pytest.raises(ConfigError, match="other_handler' \\(1 call\\)"):
        Experiment.load(config)


def test_a_truncated_last_line_is_a_notice(tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, ECHO_ASYNC, [ws_call("s1"), ws_call("s2")])
    with (tmp_path / RECORDING).open("a", encoding="utf-8") as handle:
        handle.write('{"_version": "1", "kwargs": {"data": {"cont')
    experiment = Experiment.load(config)
    assert any("line 3" in n and "skipped" in n for n in experiment.notices)
    assert all(r.success for r in run_all(experiment))


def test_a_signature_that_rejects_the_recorded_call_fails_the_check(tmp_path: Path) -> None:
    agent = """
    async def handle(data, send, user_id):
        return None
    """
    config, _ = make_project(tmp_path, agent, [ws_call("s1")])
    experiment = Experiment.load(config)
    with pytest.raises(TargetError) as info:
        experiment.check()
    message = str(info.value)
    assert f"{tmp_path / RECORDING}, line 1" in message
    assert "unexpected parameter(s): token" in message
    assert "missing parameter(s): user_id" in message
    with pytest.raises(TargetError):
        experiment.prepare()


def test_fewer_cases_than_recordings_is_a_notice(tmp_path: Path) -> None:
    calls = [ws_call(f"s{i}") for i in range(3)]
    config, _ = make_project(tmp_path, ECHO_ASYNC, calls, inputs=[{"input": "hi"}])
    (notice,) = Experiment.load(config).notices
    assert "replay 1 of the 3 calls" in notice


# --------------------------------------------------------------------------- with the rest


def test_multi_turn_reuses_the_recording_each_turn_with_the_new_message(tmp_path: Path) -> None:
    agent = """
    async def handle(data, send, token):
        await send("echo: " + data["content"])
    """
    multi_turn = {
        "enabled": True,
        "max_turns": 5,
        "supervisor": {
            "provider": "mock",
            "metadata": {"scripted_questions": ["second question", "third question"]},
        },
    }
    config, _ = make_project(
        tmp_path, agent, [ws_call("s1")], inputs=[{"input": "first"}], multi_turn=multi_turn
    )
    (record,) = run_all(Experiment.load(config))
    assert record.success, record.error
    assert record.conversation_state is not None
    turns = [(t["role"], t["content"]) for t in record.conversation_state["turns"]]
    assert turns == [
        ("user", "first"),
        ("assistant", "echo: first"),
        ("user", "second question"),
        ("assistant", "echo: second question"),
        ("user", "third question"),
        ("assistant", "echo: third question"),
    ]
    assert record.output == "echo: third question"
    sent = [(o.input, o.metadata["turn"]) for o in record.observations if o.name == "callback:send"]
    assert sent == [("echo: first", 1), ("echo: second question", 2), ("echo: third question", 3)]


def test_parallel_runs_keep_each_case_to_its_own_callbacks(tmp_path: Path) -> None:
    agent = """
    import asyncio

    async def handle(data, send, token):
        async def later():
            await asyncio.sleep(0.02)
            await send(data["content"])

        asyncio.create_task(later())
    """
    inputs = [{"input": f"question {i}"} for i in range(8)]
    config, _ = make_project(
        tmp_path, agent, [ws_call("s1"), ws_call("s2")], inputs=inputs, parallel_runs=4
    )
    summary = Experiment.load(config).run()
    assert summary.successful == 8
    traces = read_jsonl(only_experiment_dir(tmp_path) / "traces.jsonl")
    assert all(t["output"] == t["input"] for t in traces)


def test_inputs_override_and_personas_still_apply(tmp_path: Path) -> None:
    agent = """
    def handle(data, send, token):
        send(data["content"])
    """
    config, _ = make_project(tmp_path, agent, [ws_call("s1")])
    (tmp_path / "inputs" / "other.yaml").write_text(
        yaml.safe_dump(
            {
                "inputs": [
                    {"input": "from other", "persona": "novice"},
                    {"input": "from other", "persona": "expert"},
                ]
            }
        ),
        encoding="utf-8",
    )
    experiment = Experiment.load(config, Overrides(inputs_file="inputs/other.yaml"))
    records = run_all(experiment)
    assert sorted((r.persona, r.output) for r in records) == [
        ("expert", "from other"),
        ("novice", "from other"),
    ]


@pytest.mark.slow
def test_xdist_workers_each_read_the_recordings(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    config, _ = make_project(
        pytester.path,
        ECHO_ASYNC,
        [ws_call("s1"), ws_call("s2")],
        inputs=[{"input": f"question {i}"} for i in range(4)],
    )
    result = pytester.runpytest_subprocess(
        "--fluxloop-config", str(config), "-p", "no:cacheprovider", "-n", "2"
    )
    result.assert_outcomes(passed=4)
    traces = read_jsonl(only_experiment_dir(pytester.path) / "traces.jsonl")
    assert {t["worker"] for t in traces} == {"gw0", "gw1"}
    assert all(t["output"]["echo"] == t["input"] for t in traces)
    assert sorted(t["output"]["session"] for t in traces) == ["s1", "s1", "s2", "s2"]
