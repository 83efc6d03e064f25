"""The runner settings of the earlier FluxLoop tool, working as its configs expect.

``stream_output_path`` (streaming agents: sync and async generators, other one-shot
iterables), ``factory`` / ``factory_kwargs`` (building a ``Class.method`` target's
instance), ``environment_vars`` (set before the agent is imported, put back after the run)
and ``retry_delay`` (the first retry's delay). Experiments are real projects in
``tmp_path``; timing tests use the engine directly with a short deadline.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from support.engine_helpers import FakeSleep, isolated_imports, make_case, target_of, unique

from pytest_fluxloop.config import loader
from pytest_fluxloop.engine import CaseExecutor, RunSettings
from pytest_fluxloop.engine.environment import (
    ENVIRONMENT_SET,
    apply_environment,
    restore_environment,
)
from pytest_fluxloop.errors import TargetError
from pytest_fluxloop.plugin.signals import ProcessGuard
from pytest_fluxloop.records import TraceRecord
from pytest_fluxloop.run import Experiment

FLAG = "FLUXLOOP_LEGACY_TEST_FLAG"
NEW = "FLUXLOOP_LEGACY_TEST_NEW"


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield
    restore_environment()  # a failed test must not leave its variables to the next


def write_project(
    root: Path,
    agent: str,
    *,
    runner: dict[str, Any] | None = None,
    inputs: tuple[str, ...] = ("hello",),
    multi_turn: dict[str, Any] | None = None,
    target: str = "run",
) -> tuple[Path, str]:
    """A project running ``agent`` (module source) as ``<module>:<target>``."""
    module = unique("fields")
    (root / f"{module}.py").write_text(textwrap.dedent(agent), encoding="utf-8")
    simulation: dict[str, Any] = {
        "name": "fields",
        "description": "legacy runner fields",
        "seed": 5,
        "runner": {"target": f"{module}:{target}", "timeout_seconds": 10, "max_retries": 0},
        "output_directory": "experiments",
    }
    simulation["runner"].update(runner or {})
    if multi_turn is not None:
        simulation["multi_turn"] = multi_turn
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "inputs").mkdir(exist_ok=True)
    config = root / "configs" / "simulation.yaml"
    config.write_text(yaml.safe_dump(simulation), encoding="utf-8")
    entries = [{"input": text, "persona": "novice_user"} for text in inputs]
    (root / "inputs" / "generated.yaml").write_text(
        yaml.safe_dump({"inputs": entries}), encoding="utf-8"
    )
    return config, module


def run_all(config: Path) -> list[TraceRecord]:
    experiment = Experiment.load(config)
    return [experiment.run_case(case).record for case in experiment.cases]


def only(config: Path) -> TraceRecord:
    (record,) = run_all(config)
    return record


def ok(record: TraceRecord) -> Any:
    assert record.success, record.error
    return record.output


def run_engine(agent: Any, timeout: float = 10.0, **settings: Any) -> TraceRecord:
    executor = CaseExecutor(
        target_of(agent), RunSettings(timeout_seconds=timeout, max_retries=0, **settings)
    )
    return executor.run(make_case("hi")).record


# --------------------------------------------------------------------------- streaming


def test_sync_generator_items_at_the_default_path_are_joined(tmp_path: Path) -> None:
    """Without stream_output_path, each item's ``update.delta`` (the earlier default)."""
    agent = """\
    def run(input_text):
        for word in ("Hello", ", ", input_text):
            yield {"update": {"delta": word}, "type": "chunk"}
    """
    config, _ = write_project(tmp_path, agent)
    assert ok(only(config)) == "Hello, hello"


def test_async_generator_items_at_a_configured_path(tmp_path: Path) -> None:
    agent = """\
    import asyncio


    async def run(input_text):
        for word in ("streamed ", "async ", input_text):
            await asyncio.sleep(0)
            yield {"message": {"delta": word}, "update": {"delta": "NOT THIS"}}
    """
    config, _ = write_project(tmp_path, agent, runner={"stream_output_path": "message.delta"})
    assert ok(only(config)) == "streamed async hello"


def test_attribute_items_are_read_along_the_path(tmp_path: Path) -> None:
    agent = """\
    from types import SimpleNamespace


    def run(input_text):
        for word in ("by ", "attribute"):
            yield SimpleNamespace(event=SimpleNamespace(text=SimpleNamespace(value=word)))
    """
    config, _ = write_project(tmp_path, agent, runner={"stream_output_path": "event.text.value"})
    assert ok(only(config)) == "by attribute"


def test_a_coroutine_returning_an_async_iterable_is_consumed(tmp_path: Path) -> None:
    agent = """\
    class Events:
        def __init__(self, words):
            self.words = list(words)

        def __aiter__(self):
            return self

        async def __anext__(self):
            if not self.words:
                raise StopAsyncIteration
            return {"update": {"delta": self.words.pop(0)}}


    async def run(input_text):
        return Events(["a", "b", "c"])
    """
    config, _ = write_project(tmp_path, agent)
    assert ok(only(config)) == "abc"


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["plain ", "strings"], "plain strings"),
        ([{"delta": "de"}, {"content": "con"}, {"text": "txt"}], "decontxt"),
        ([{"choices": [{"delta": {"content": "open"}}]}, {"choices": [{"delta": {}}]}], "open"),
        (
            [{"type": "content_block_delta", "delta": {"type": "text_delta", "text": "nested"}}],
            "nested",
        ),
        ([SimpleNamespace(delta="attr "), SimpleNamespace(text="fields")], "attr fields"),
        ([{"type": "start"}, "only this", {"type": "stop"}], "only this"),
    ],
    ids=["strings", "common-fields", "openai-choices", "nested-delta", "attributes", "mixed"],
)
def test_common_text_fields_when_the_path_finds_nothing(items: list[Any], expected: str) -> None:
    def run(input_text: str) -> Iterator[Any]:
        yield from items

    assert ok(run_engine(run)) == expected


def test_items_without_text_become_a_json_safe_list() -> None:
    def run(input_text: str) -> Iterator[Any]:
        yield {"score": 1}
        yield {"score": 2, "when": {1, 2}}
        yield b"raw"

    assert ok(run_engine(run)) == [{"score": 1}, {"score": 2, "when": [1, 2]}, "raw"]


def test_other_one_shot_iterables_are_streams_but_collections_are_values() -> None:
    class Stream:
        def __init__(self) -> None:
            self.left = ["it", "er"]

        def __iter__(self) -> Stream:
            return self

        def __next__(self) -> str:
            if not self.left:
                raise StopIteration
            return self.left.pop(0)

    def streaming(input_text: str) -> Stream:
        return Stream()

    assert ok(run_engine(streaming)) == "iter"
    for value in (["a", "b"], ("a", "b"), {"delta": "x"}, "text", b"bytes"):

        def plain(input_text: str, value: Any = value) -> Any:
            return value

        expected = list(value) if isinstance(value, tuple) else value
        assert ok(run_engine(plain)) == ("bytes" if isinstance(value, bytes) else expected), value


def test_a_stream_that_fails_part_way_fails_the_case_and_keeps_its_chunks(tmp_path: Path) -> None:
    agent = """\
    def run(input_text):
        yield {"update": {"delta": "half "}}
        yield {"update": {"delta": "an answer"}}
        raise ConnectionResetError("stream dropped")
    """
    config, _ = write_project(tmp_path, agent)
    record = only(config)
    assert record.status == "error" and not record.success
    assert record.error is not None
    assert record.error.type == "ConnectionResetError"
    assert record.error.message == "stream dropped"
    (kept,) = [o for o in record.observations if o.type == "stream"]
    assert kept.name == "stream_interrupted"
    assert kept.output == "half an answer"
    assert kept.error == "ConnectionResetError: stream dropped"
    assert kept.metadata == {"items": 2, "stream_output_path": "update.delta"}


def test_an_async_stream_that_fails_part_way() -> None:
    async def run(input_text: str) -> AsyncIterator[str]:
        yield "partial"
        raise ValueError("model overloaded")

    record = run_engine(run)
    assert record.status == "error"
    assert record.error is not None and record.error.message == "model overloaded"
    (kept,) = [o for o in record.observations if o.type == "stream"]
    assert kept.output == "partial"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_counts_toward_the_case_timeout(kind: str) -> None:
    def sync_run(input_text: str) -> Iterator[str]:
        while True:
            time.sleep(0.05)
            yield "tick "

    async def async_run(input_text: str) -> AsyncIterator[str]:
        import asyncio

        while True:
            await asyncio.sleep(0.05)
            yield "tick "

    agent = sync_run if kind == "sync" else async_run
    t0 = time.perf_counter()
    record = run_engine(agent, timeout=0.5)
    assert record.status == "timeout"
    assert time.perf_counter() - t0 < 5


def test_each_turn_of_a_conversation_streams(tmp_path: Path) -> None:
    agent = """\
    async def run(input_text, messages=None):
        yield {"update": {"delta": f"turn {len(messages) // 2 + 1}: "}}
        yield {"update": {"delta": input_text}}
    """
    multi_turn = {
        "enabled": True,
        "max_turns": 5,
        "supervisor": {"provider": "mock", "metadata": {"scripted_questions": ["more?"]}},
    }
    config, _ = write_project(tmp_path, agent, multi_turn=multi_turn)
    record = only(config)
    assert ok(record) == "turn 2: more?"
    assert record.conversation_state is not None
    replies = [t["content"] for t in record.conversation_state["turns"] if t["role"] != "user"]
    assert replies == ["turn 1: hello", "turn 2: more?"]


# --------------------------------------------------------------------------- factory

FACTORY_AGENT = """\
MADE = []


class Agent:
    def __init__(self, api_key, region="eu"):
        self.api_key = api_key
        self.region = region
        MADE.append(self)

    def run(self, input_text):
        return f"{self.api_key}/{self.region}: {input_text}"

    @staticmethod
    def ping(input_text):
        return "pong"


def build(api_key, region="eu"):
    return Agent(api_key, region=region)


def broken(**kwargs):
    raise RuntimeError("no credentials here")


def not_an_agent():
    return object()


def run(input_text):
    return input_text
"""


def factory_project(
    tmp_path: Path, factory: str, inputs: tuple[str, ...] = ("hello",), **runner: Any
) -> tuple[Path, str]:
    """A project whose ``runner.factory`` is ``factory`` (``MOD`` stands for the agent module)."""
    target = runner.pop("target", "Agent.run")
    config, module = write_project(tmp_path, FACTORY_AGENT, target=target, inputs=inputs)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["runner"]["factory"] = factory.replace("MOD", module)
    data["runner"].update(runner)
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    return config, module


def test_factory_builds_a_fresh_instance_per_case_with_its_kwargs(tmp_path: Path) -> None:
    config, module = factory_project(
        tmp_path,
        "MOD:build",
        inputs=("one", "two"),
        factory_kwargs={"api_key": "k-123", "region": "us"},
    )
    outputs = sorted(ok(record) for record in run_all(config))
    assert outputs == ["k-123/us: one", "k-123/us: two"]
    made = sys.modules[module].MADE
    assert len(made) == 2 and made[0] is not made[1]


def prepare_error(config: Path) -> str:
    with pytest.raises(TargetError) as info:
        Experiment.load(config).prepare()
    return str(info.value)


def test_factory_for_a_static_method_target(tmp_path: Path) -> None:
    config, _ = factory_project(
        tmp_path, "MOD:build", target="Agent.ping", factory_kwargs={"api_key": "k"}
    )
    assert ok(only(config)) == "pong"


def test_factory_that_is_not_importable_names_runner_factory(tmp_path: Path) -> None:
    message = prepare_error(factory_project(tmp_path, "no_such_module_xyz:build")[0])
    assert message.startswith("runner.factory 'no_such_module_xyz:build'")
    assert "not found" in message
    message = prepare_error(factory_project(tmp_path, "MOD:missing_builder")[0])
    assert message.startswith("runner.factory") and "missing_builder" in message


def test_factory_kwargs_that_do_not_fit_the_factory(tmp_path: Path) -> None:
    config, _ = factory_project(tmp_path, "MOD:build", factory_kwargs={"api_kye": "typo"})
    message = prepare_error(config)
    assert "runner.factory" in message and "runner.factory_kwargs" in message
    assert "api_kye" in message


def test_a_factory_that_raises_fails_the_case_naming_runner_factory(tmp_path: Path) -> None:
    record = only(factory_project(tmp_path, "MOD:broken")[0])
    assert record.status == "error" and record.error is not None
    assert record.error.type == "TargetError"
    assert "runner.factory" in record.error.message
    assert "RuntimeError" in record.error.message and "no credentials here" in record.error.message
    assert record.error.traceback is not None and "no credentials here" in record.error.traceback


def test_a_factory_whose_instance_lacks_the_method(tmp_path: Path) -> None:
    record = only(factory_project(tmp_path, "MOD:not_an_agent")[0])
    assert record.error is not None and record.error.type == "TargetError"
    assert "has no callable 'run'" in record.error.message


def test_a_factory_for_a_function_target_is_an_error(tmp_path: Path) -> None:
    message = prepare_error(factory_project(tmp_path, "MOD:build", target="run")[0])
    assert message.startswith("runner.factory")
    assert "'module:Class.method'" in message


def test_factory_kwargs_without_a_factory_names_both_keys(tmp_path: Path) -> None:
    config, _ = write_project(
        tmp_path, FACTORY_AGENT, target="Agent.run", runner={"factory_kwargs": {"api_key": "k"}}
    )
    message = prepare_error(config)
    assert "runner.factory_kwargs" in message and "runner.factory " in message


def test_without_a_factory_a_constructor_with_arguments_points_to_runner_factory(
    tmp_path: Path,
) -> None:
    config, _ = write_project(tmp_path, FACTORY_AGENT, target="Agent.run")
    message = prepare_error(config)
    assert "api_key" in message and "runner.factory" in message


# --------------------------------------------------------------------------- environment

ENV_AGENT = f"""\
import os

AT_IMPORT = os.environ.get("{FLAG}")


def run(input_text):
    return {{"at_import": AT_IMPORT, "at_call": os.environ.get("{FLAG}"),
             "new": os.environ.get("{NEW}")}}
"""


def read_traces(root: Path) -> list[dict[str, Any]]:
    (folder,) = sorted((root / "experiments").glob("exp_*"))
    text = (folder / "traces.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_environment_vars_are_set_before_import_and_restored_after_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FLAG, "from-the-shell")
    monkeypatch.delenv(NEW, raising=False)
    config, _ = write_project(
        tmp_path, ENV_AGENT, runner={"environment_vars": {FLAG: "from-config", NEW: 7}}
    )
    summary = Experiment.load(config).run()
    assert summary.successful == 1
    (trace,) = read_traces(tmp_path)
    # Explicit config wins over the environment, already when the module is imported.
    assert trace["output"] == {"at_import": "from-config", "at_call": "from-config", "new": "7"}
    assert os.environ[FLAG] == "from-the-shell"
    assert NEW not in os.environ
    assert ENVIRONMENT_SET == {}


def test_check_sets_the_variables_for_the_import_and_puts_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FLAG, raising=False)
    config, module = write_project(
        tmp_path, ENV_AGENT, runner={"environment_vars": {FLAG: "checked"}}
    )
    Experiment.load(config).check()
    assert sys.modules[module].AT_IMPORT == "checked"
    assert FLAG not in os.environ


def test_the_pytest_process_guard_restores_them_before_the_dotenv_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """.env sets FLAG, environment_vars overrides it: at the end neither is left behind."""
    monkeypatch.delenv(FLAG, raising=False)
    monkeypatch.delenv(NEW, raising=False)
    config, _ = write_project(
        tmp_path, ENV_AGENT, runner={"environment_vars": {FLAG: "from-config", NEW: "x"}}
    )
    (tmp_path / ".env").write_text(f"{FLAG}=from-dotenv\n", encoding="utf-8")
    guard = ProcessGuard()
    try:
        experiment = Experiment.load(config)
        assert os.environ[FLAG] == "from-dotenv"
        experiment.prepare(chdir=False)
        assert os.environ[FLAG] == "from-config" and os.environ[NEW] == "x"
    finally:
        guard.restore()
    assert FLAG not in os.environ and NEW not in os.environ
    assert loader.DOTENV_SET == {} and ENVIRONMENT_SET == {}


def test_a_variable_changed_since_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FLAG, "before")
    added = apply_environment({FLAG: "ours"})
    assert added == [FLAG] and os.environ[FLAG] == "ours"
    assert apply_environment({FLAG: "ours again"}) == []  # already ours: one restore
    os.environ[FLAG] = "someone else's"
    restore_environment(added)
    assert os.environ[FLAG] == "someone else's"
    assert ENVIRONMENT_SET == {}


# --------------------------------------------------------------------------- retry_delay

FLAKY_AGENT = """\
CALLS = []


def run(input_text):
    CALLS.append(input_text)
    if len(CALLS) < 3:
        raise ConnectionError("flaky backend")
    return "finally"
"""


def retried_delays(tmp_path: Path, **runner: Any) -> list[float]:
    config, _ = write_project(tmp_path, FLAKY_AGENT, runner={"max_retries": 3, **runner})
    experiment = Experiment.load(config)
    sleep = FakeSleep()
    target = experiment.prepare().target
    executor = CaseExecutor(target, experiment.settings(), sleep=sleep)
    record = executor.run(experiment.cases[0]).record
    assert ok(record) == "finally" and record.attempts == 3
    retries = [o for o in record.observations if o.type == "retry"]
    assert [o.metadata["delay_s"] for o in retries] == pytest.approx(sleep.calls, abs=1e-3)
    return sleep.calls


def test_retry_delay_is_the_delay_before_the_first_retry(tmp_path: Path) -> None:
    first, second = retried_delays(tmp_path, retry_delay=2.0)
    # Doubling after each retry, with the usual jitter factor in [0.5, 1].
    assert 1.0 <= first <= 2.0
    assert 2.0 <= second <= 4.0


def test_retry_delay_zero_retries_at_once(tmp_path: Path) -> None:
    assert retried_delays(tmp_path, retry_delay=0) == [0.0, 0.0]


def test_a_long_retry_delay_is_not_cut_to_the_default_cap(tmp_path: Path) -> None:
    first, _second = retried_delays(tmp_path, retry_delay=100)
    assert 50.0 <= first <= 100.0


def test_without_retry_delay_the_built_in_backoff_applies(tmp_path: Path) -> None:
    first, second = retried_delays(tmp_path)
    base = RunSettings().backoff_base
    assert base * 0.5 <= first <= base and base <= second <= base * 2
