"""The earlier FluxLoop SDK's names work on ``import fluxloop``: decorators (every calling form,
on every kind of function), ``instrument``, the settings, ``load_env`` and argument recording."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.sdk_helpers import fresh_sdk

import fluxloop
import pytest_fluxloop
from pytest_fluxloop.records import Observation, TraceRecord
from pytest_fluxloop.redact import REDACTED
from pytest_fluxloop.sdk import decorators, recording, settings, trace_context
from pytest_fluxloop.sdk.context import current_span_id, current_trace

# What the earlier SDK's agents call (its __all__, less its own schema/client classes).
LEGACY_NAMES = (
    "agent",
    "prompt",
    "tool",
    "trace",
    "instrument",
    "configure",
    "load_env",
    "get_config",
    "reset_config",
    "enable_recording",
    "disable_recording",
    "set_recording_options",
    "record_call_args",
)


@pytest.fixture(autouse=True)
def _clean_sdk_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts from an environment without FLUXLOOP_* variables, in an empty cwd."""
    fresh_sdk(monkeypatch, tmp_path)
    fluxloop.set_recording_options(iteration_auto_increment=True)
    recording._iterations.clear()
    yield
    fluxloop.set_recording_options(iteration_auto_increment=True)
    recording._iterations.clear()
    settings.set_recording_override(None)
    settings._config = None  # rebuilt lazily from the environment monkeypatch restores


def spans(observations: list[Observation], type_: str = "span_start") -> list[Observation]:
    return [o for o in observations if o.type == type_]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", LEGACY_NAMES)
def test_every_legacy_name_is_on_fluxloop_and_pytest_fluxloop(name: str) -> None:
    assert callable(getattr(fluxloop, name))
    assert name in fluxloop.__all__
    assert getattr(pytest_fluxloop, name) is getattr(fluxloop, name)
    assert name in pytest_fluxloop.__all__


def test_fluxloop_all_names_resolve() -> None:
    for name in fluxloop.__all__:
        assert getattr(fluxloop, name) is not None, name
    assert fluxloop.__pytest_fluxloop__ is True


# --------------------------------------------------------------------------- decorator forms

# (decorator, expected span name, expected kind, expected extra start metadata)
FORMS: list[tuple[str, Callable[[Any], Any], str | None, str, dict[str, Any]]] = [
    ("agent bare", fluxloop.agent, None, "agent", {}),
    ("agent()", fluxloop.agent(), None, "agent", {}),
    ("agent(name=)", fluxloop.agent(name="SimpleAgent"), "SimpleAgent", "agent", {}),
    ("agent('name')", fluxloop.agent("Positional"), "Positional", "agent", {}),
    (
        "agent(metadata=, **meta)",
        fluxloop.agent(name="a", metadata={"team": "cx"}, tier=2),
        "a",
        "agent",
        {"team": "cx", "tier": 2},
    ),
    ("trace()", fluxloop.trace(), None, "trace", {}),
    ("trace(observation_type=)", fluxloop.trace(observation_type="chain"), None, "chain", {}),
    (
        "trace(enum)",
        fluxloop.trace(name="t", observation_type=fluxloop.ObservationType.TOOL),
        "t",
        "tool",
        {},
    ),
    (
        "tool(description=)",
        fluxloop.tool(description="Process input"),
        None,
        "tool",
        {"description": "Process input"},
    ),
    ("tool bare", fluxloop.tool, None, "tool", {}),
    (
        "prompt(model=)",
        fluxloop.prompt(model="simple-model"),
        None,
        "generation",
        {"model": "simple-model"},
    ),
    ("prompt(name=)", fluxloop.prompt(name="gen"), "gen", "generation", {}),
]


def _functions() -> dict[str, tuple[Callable[..., Any], Callable[[Callable[..., Any]], Any]]]:
    """Each kind of function with a runner that calls it with "x" and returns its result."""

    def sync_fn(text: str) -> str:
        return text.upper()

    async def async_fn(text: str) -> str:
        await asyncio.sleep(0)
        return text.upper()

    def gen_fn(text: str) -> Iterator[str]:
        yield text
        yield text.upper()

    async def agen_fn(text: str) -> AsyncIterator[str]:
        yield text
        await asyncio.sleep(0)
        yield text.upper()

    async def collect(agen: Any) -> list[Any]:
        return [item async for item in agen]

    return {
        "sync": (sync_fn, lambda f: f("x")),
        "async": (async_fn, lambda f: asyncio.run(f("x"))),
        "generator": (gen_fn, lambda f: list(f("x"))),
        "async generator": (agen_fn, lambda f: asyncio.run(collect(f("x")))),
    }


EXPECTED_RESULT = {
    "sync": "X",
    "async": "X",
    "generator": ["x", "X"],
    "async generator": ["x", "X"],
}


@pytest.mark.parametrize("kind", list(EXPECTED_RESULT))
@pytest.mark.parametrize(("form", "decorate", "span_name", "span_kind", "extra"), FORMS)
def test_decorator_form_records_inside_a_trace(
    kind: str,
    form: str,
    decorate: Callable[[Any], Any],
    span_name: str | None,
    span_kind: str,
    extra: dict[str, Any],
) -> None:
    fn, call = _functions()[kind]
    wrapped = decorate(fn)
    with trace_context("t-forms") as ctx:
        assert call(wrapped) == EXPECTED_RESULT[kind]
    start, end = ctx.observations
    assert (start.type, end.type) == ("span_start", "span_end")
    assert start.name == end.name == (span_name or fn.__name__)
    assert start.metadata == {"kind": span_kind, **extra}
    assert start.input == {"text": "x"}
    assert end.output == EXPECTED_RESULT[kind]
    assert end.error is None
    assert end.observation_id == start.observation_id
    assert current_span_id.get() is None
    if kind in ("generator", "async generator"):
        assert end.metadata == {"items": 2}


@pytest.mark.parametrize("kind", list(EXPECTED_RESULT))
@pytest.mark.parametrize(("form", "decorate"), [(f[0], f[1]) for f in FORMS])
def test_decorator_form_calls_straight_through_outside_a_trace(
    kind: str, form: str, decorate: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_record(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("recorded a span outside a trace")

    monkeypatch.setattr(decorators, "_start", must_not_record)
    monkeypatch.setattr(decorators, "_end", must_not_record)
    fn, call = _functions()[kind]
    assert current_trace() is None
    assert call(decorate(fn)) == EXPECTED_RESULT[kind]


@pytest.mark.parametrize(("form", "decorate"), [(f[0], f[1]) for f in FORMS])
def test_decorators_keep_the_kind_of_function(form: str, decorate: Callable[[Any], Any]) -> None:
    import inspect

    fns = _functions()
    assert inspect.iscoroutinefunction(decorate(fns["async"][0]))
    assert inspect.isgeneratorfunction(decorate(fns["generator"][0]))
    assert inspect.isasyncgenfunction(decorate(fns["async generator"][0]))
    sync = decorate(fns["sync"][0])
    assert not inspect.iscoroutinefunction(sync) and not inspect.isgeneratorfunction(sync)


def test_disabled_sdk_calls_straight_through_inside_a_trace() -> None:
    @fluxloop.agent()
    def run(text: str) -> str:
        fluxloop.event("inside")
        return text

    fluxloop.configure(enabled=False)
    with trace_context("t-off") as ctx:
        assert run("a") == "a"
    assert ctx.observations == []
    fluxloop.configure(enabled=True)
    with trace_context("t-on") as ctx:
        run("a")
    assert [o.type for o in ctx.observations] == ["span_start", "event", "span_end"]


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLOOP_ENABLED", "false")
    fluxloop.reset_config()
    with trace_context("t") as ctx:
        fluxloop.agent()(lambda: 1)()
    assert ctx.observations == []


@pytest.mark.parametrize(
    ("capture_input", "capture_output"), [(False, True), (True, False), (False, False)]
)
@pytest.mark.parametrize("factory", [fluxloop.agent, fluxloop.trace])
def test_capture_flags_leave_input_or_output_out(
    factory: Callable[..., Any], capture_input: bool, capture_output: bool
) -> None:
    @factory(capture_input=capture_input, capture_output=capture_output)
    def run(secret_question: str) -> str:
        return "secret answer"

    with trace_context("t") as ctx:
        assert run("secret question") == "secret answer"
    start, end = ctx.observations
    assert start.input == ({"secret_question": "secret question"} if capture_input else None)
    assert end.output == ("secret answer" if capture_output else None)


def test_invalid_observation_type_names_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        fluxloop.trace(observation_type="llm")
    message = str(info.value)
    assert "'llm'" in message
    for valid in ("agent", "span", "tool", "generation", "event", "chain", "evaluation"):
        assert valid in message


def test_name_given_twice_is_an_error() -> None:
    with pytest.raises(TypeError, match="name twice"):
        fluxloop.agent("a", name="b")


# --------------------------------------------------------------------------- prompt


class _Usage:
    def __init__(self) -> None:
        self.prompt_tokens = 7
        self.completion_tokens = 3
        self.total_tokens = 10


class _Response:
    """Shaped like an OpenAI response: the usage is an attribute object."""

    def __init__(self) -> None:
        self.usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        self.text = "hi"


def test_prompt_records_model_and_token_usage_from_a_dict() -> None:
    @fluxloop.prompt(model="gpt-test")
    def generate(prompt: str) -> dict[str, Any]:
        return {"text": prompt, "usage": {"prompt_tokens": 5, "completion_tokens": 2}}

    with trace_context("t") as ctx:
        generate("hello")
    start, end = ctx.observations
    assert start.metadata == {"kind": "generation", "model": "gpt-test"}
    assert end.metadata == {"token_usage": {"prompt_tokens": 5, "completion_tokens": 2}}


@pytest.mark.parametrize("is_async", [False, True])
def test_prompt_records_token_usage_from_an_attribute(is_async: bool) -> None:
    if is_async:

        @fluxloop.prompt(model="m")
        async def generate_async(prompt: str) -> _Response:
            return _Response()

        def call() -> Any:
            return asyncio.run(generate_async("p"))
    else:

        @fluxloop.prompt(model="m")
        def generate(prompt: str) -> _Response:
            return _Response()

        def call() -> Any:
            return generate("p")

    with trace_context("t") as ctx:
        call()
    end = spans(ctx.observations, "span_end")[0]
    assert end.metadata["token_usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "total_tokens": 10,
    }


def test_prompt_without_capture_tokens_records_no_usage() -> None:
    @fluxloop.prompt(model="m", capture_tokens=False)
    def generate(prompt: str) -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 1}}

    with trace_context("t") as ctx:
        generate("p")
    assert "token_usage" not in ctx.observations[1].metadata


def test_prompt_with_a_result_without_usage() -> None:
    @fluxloop.prompt()
    def generate(prompt: str) -> str:
        return prompt

    with trace_context("t") as ctx:
        generate("p")
    start, end = ctx.observations
    assert start.metadata == {"kind": "generation"}
    assert end.metadata == {}


# --------------------------------------------------------------------------- generators


def test_generator_body_spans_nest_under_it_but_the_consumer_does_not() -> None:
    @fluxloop.tool()
    def lookup(i: int) -> int:
        return i

    @fluxloop.agent()
    def stream(n: int) -> Iterator[int]:
        for i in range(n):
            yield lookup(i)

    with trace_context("t") as ctx:
        for _ in stream(2):
            fluxloop.event("consumer")
    stream_start = ctx.observations[0]
    by_name = {(o.type, o.name): o for o in ctx.observations}
    assert by_name[("span_start", "lookup")].parent_id == stream_start.observation_id
    consumer = [o for o in ctx.observations if o.name == "consumer"]
    assert len(consumer) == 2 and all(o.parent_id is None for o in consumer)
    assert current_span_id.get() is None


def test_generator_send_throw_and_return_value_pass_through() -> None:
    @fluxloop.agent()
    def echo() -> Iterator[Any]:
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "recovered"
        return "finished"

    def drive() -> tuple[list[Any], Any]:
        gen = echo()
        out = [next(gen), gen.send("ping"), gen.throw(KeyError("k"))]
        try:
            next(gen)
        except StopIteration as stop:
            return out, stop.value
        raise AssertionError("generator did not finish")

    with trace_context("t") as ctx:
        assert drive() == (["ready", "got ping", "recovered"], "finished")
    end = ctx.observations[-1]
    assert end.output == ["ready", "got ping", "recovered"]
    assert end.error is None
    assert drive() == (["ready", "got ping", "recovered"], "finished")  # outside a trace


def test_generator_closed_early_ends_its_span() -> None:
    closed = []

    @fluxloop.agent()
    def numbers() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed.append(True)

    with trace_context("t") as ctx:
        gen = numbers()
        assert [next(gen), next(gen)] == [0, 1]
        gen.close()
    assert closed == [True]
    end = ctx.observations[-1]
    assert end.type == "span_end"
    assert end.output == [0, 1]
    assert end.metadata == {"items": 2, "closed": True}
    assert current_span_id.get() is None


@pytest.mark.parametrize("is_async", [False, True])
def test_generator_that_raises_records_the_error(is_async: bool) -> None:
    if is_async:

        @fluxloop.agent()
        async def broken_async() -> AsyncIterator[int]:
            yield 1
            raise RuntimeError("stream broke")

        async def consume() -> list[int]:
            return [i async for i in broken_async()]

        def call() -> Any:
            return asyncio.run(consume())
    else:

        @fluxloop.agent()
        def broken() -> Iterator[int]:
            yield 1
            raise RuntimeError("stream broke")

        def call() -> Any:
            return list(broken())

    with trace_context("t") as ctx, pytest.raises(RuntimeError, match="stream broke"):
        call()
    end = ctx.observations[-1]
    assert end.error == "RuntimeError: stream broke"
    assert end.output is None
    assert end.metadata == {"items": 1}
    assert current_span_id.get() is None


def test_async_generator_asend_athrow_and_aclose_pass_through() -> None:
    cleaned = []

    @fluxloop.agent()
    async def chat() -> AsyncIterator[str]:
        try:
            message = yield "hello"
            try:
                yield f"echo {message}"
            except ValueError:
                yield "caught"
            yield "more"
        finally:
            cleaned.append(True)

    async def drive() -> list[str]:
        agen = chat()
        out = [await agen.asend(None), await agen.asend("hi"), await agen.athrow(ValueError())]
        await agen.aclose()
        return out

    with trace_context("t") as ctx:
        assert asyncio.run(drive()) == ["hello", "echo hi", "caught"]
    assert cleaned == [True]
    end = ctx.observations[-1]
    assert end.metadata == {"items": 3, "closed": True}
    cleaned.clear()
    assert asyncio.run(drive()) == ["hello", "echo hi", "caught"]  # outside a trace
    assert cleaned == [True]


def test_generator_output_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decorators, "MAX_CAPTURED_ITEMS", 3)

    @fluxloop.agent()
    def many() -> Iterator[int]:
        yield from range(10)

    with trace_context("t") as ctx:
        assert list(many()) == list(range(10))
    end = ctx.observations[-1]
    assert end.output == [0, 1, 2]
    assert end.metadata == {"items": 10}


# --------------------------------------------------------------------------- instrument


@fluxloop.agent(name="SimpleAgent")
def simple_agent(text: str) -> str:
    return answer(text)


@fluxloop.prompt(model="simple-model")
def answer(text: str) -> str:
    return f"echo: {text}"


def test_instrument_outside_a_case_records_into_a_new_trace(tmp_path: Path) -> None:
    assert current_trace() is None
    with fluxloop.instrument("test_run", session_id="s1", user_id="u1", tags=["a"]) as run:
        assert current_trace() is not None
        assert simple_agent("hi") == "echo: hi"
    assert current_trace() is None
    assert run.name == "test_run"
    assert run.mode == "trace"
    assert run.status == "success"
    assert [(o.type, o.name) for o in run.observations] == [
        ("span_start", "SimpleAgent"),
        ("span_start", "answer"),
        ("span_end", "answer"),
        ("span_end", "SimpleAgent"),
    ]
    assert {o.trace_id for o in run.observations} == {run.trace_id}
    # No offline folder configured: nothing is written anywhere.
    assert run.files is None
    assert list(tmp_path.iterdir()) == []


def test_instrument_uses_the_given_trace_id() -> None:
    with fluxloop.instrument("named", trace_id="trace-42") as run:
        simple_agent("x")
    assert run.trace_id == "trace-42"
    assert {o.trace_id for o in run.observations} == {"trace-42"}


@pytest.mark.parametrize("via_env", [False, True])
def test_instrument_writes_jsonl_when_an_offline_dir_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_env: bool
) -> None:
    out = tmp_path / "offline"
    if via_env:
        monkeypatch.setenv("FLUXLOOP_OFFLINE_DIR", str(out))
        fluxloop.reset_config()
    else:
        fluxloop.configure(offline_store_dir=out)
    with fluxloop.instrument("run1", metadata={"api_key": "sk-abcdefghijklmnopqrstuv"}) as run:
        simple_agent("first")
    with fluxloop.instrument("run2"):
        simple_agent("second sk-abcdefghijklmnopqrstuvwxyz")
    assert run.files == (out / "traces.jsonl", out / "observations.jsonl")
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    observations = [
        json.loads(line) for line in (out / "observations.jsonl").read_text().splitlines()
    ]
    assert [t["case_id"] for t in traces] == ["run1", "run2"]
    assert traces[0]["trace_id"] == run.trace_id
    assert traces[0]["status"] == "success" and traces[0]["success"] is True
    assert traces[0]["metadata"]["api_key"] == REDACTED
    TraceRecord.model_validate(traces[0])
    assert len(observations) == 8
    assert {o["trace_id"] for o in observations[:4]} == {run.trace_id}
    for obs in observations:
        Observation.model_validate(obs)
    assert "sk-abcdefghijklmnopqrstuvwxyz" not in (out / "observations.jsonl").read_text()


def test_instrument_writes_nothing_when_the_offline_store_is_disabled(tmp_path: Path) -> None:
    fluxloop.configure(offline_store_dir=tmp_path / "offline", offline_store_enabled=False)
    with fluxloop.instrument("run") as run:
        simple_agent("x")
    assert len(run.observations) == 4
    assert not (tmp_path / "offline").exists()


def test_instrument_records_an_exception_and_reraises(tmp_path: Path) -> None:
    fluxloop.configure(offline_store_dir=tmp_path)
    with pytest.raises(ZeroDivisionError), fluxloop.instrument("boom") as run:
        simple_agent("x")
        _ = 1 / 0
    assert run.status == "error"
    assert run.error == "ZeroDivisionError: division by zero"
    (trace,) = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert trace["status"] == "error" and trace["success"] is False
    assert trace["error"]["type"] == "ZeroDivisionError"
    assert current_trace() is None


def test_instrument_inside_a_case_is_a_span_of_the_case_trace() -> None:
    with trace_context("case-trace") as ctx:
        with fluxloop.instrument("step", user_id="u") as run:
            simple_agent("x")
        assert current_trace() is ctx
    assert run.mode == "span"
    assert run.trace_id == "case-trace"
    start, *inner, end = ctx.observations
    assert (start.type, start.name) == ("span_start", "step")
    assert start.metadata == {"kind": "trace", "user_id": "u"}
    assert inner[0].parent_id == start.observation_id
    assert (end.type, end.observation_id) == ("span_end", start.observation_id)
    assert run.observations is ctx.observations


def test_instrument_inside_a_case_records_the_error_on_its_span() -> None:
    with trace_context("case") as ctx, pytest.raises(KeyError), fluxloop.instrument("step"):
        raise KeyError("missing")
    end = ctx.observations[-1]
    assert end.error == "KeyError: 'missing'"
    assert current_span_id.get() is None


def test_instrument_works_with_async_with() -> None:
    @fluxloop.agent()
    async def run_async(text: str) -> str:
        return text

    async def main() -> Any:
        async with fluxloop.instrument("async-run") as run:
            await run_async("a")
        return run

    run = asyncio.run(main())
    assert run.mode == "trace"
    assert [o.type for o in run.observations] == ["span_start", "span_end"]


def test_instrument_records_nothing_when_disabled() -> None:
    fluxloop.configure(enabled=False)
    with fluxloop.instrument("off") as run:
        simple_agent("x")
    assert run.mode == "off"
    assert run.observations == []


# --------------------------------------------------------------------------- settings


def test_config_defaults_match_the_earlier_sdk() -> None:
    config = fluxloop.get_config()
    assert config.enabled is True
    assert config.record_args is False
    assert config.offline_store_enabled is True
    assert config.offline_store_dir is None
    assert (config.batch_size, config.flush_interval, config.max_queue_size) == (10, 5.0, 1000)
    assert (config.timeout, config.sample_rate) == (10.0, 1.0)
    assert config.environment == "development"
    assert fluxloop.get_config() is config


def test_config_reads_fluxloop_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLOOP_BATCH_SIZE", "25")
    monkeypatch.setenv("FLUXLOOP_SAMPLE_RATE", "0.5")
    monkeypatch.setenv("FLUXLOOP_DEBUG", "true")
    monkeypatch.setenv("FLUXLOOP_SERVICE_NAME", "svc")
    monkeypatch.setenv("FLUXLOOP_API_KEY", "key-from-env-123")
    config = fluxloop.reset_config()
    assert (config.batch_size, config.sample_rate, config.debug) == (25, 0.5, True)
    assert config.service_name == "svc"
    assert config.api_key == "key-from-env-123"


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLOOP_BATCH_SIZE", "lots")
    with pytest.raises(ValueError, match="FLUXLOOP_BATCH_SIZE"):
        fluxloop.reset_config()
    settings._config = None
    # The decorators keep recording meanwhile: a bad setting never breaks the agent.
    with trace_context("t") as ctx:
        fluxloop.agent()(lambda: 1)()
    assert len(ctx.observations) == 2


def test_configure_changes_and_reset_restores() -> None:
    config = fluxloop.configure(service_name="svc", batch_size="20", debug="yes")
    assert config is fluxloop.get_config()
    assert (config.service_name, config.batch_size, config.debug) == ("svc", 20, True)
    assert fluxloop.reset_config().service_name is None


def test_configure_unknown_key_names_it_and_lists_the_known_ones() -> None:
    before = fluxloop.get_config()
    with pytest.raises(ValueError) as info:
        fluxloop.configure(colector_url="http://x", debug=True)
    message = str(info.value)
    assert "colector_url" in message
    for known in ("collector_url", "api_key", "sample_rate", "offline_store_dir"):
        assert known in message
    assert fluxloop.get_config() is before


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("sample_rate", 1.5, "sample_rate"),
        ("sample_rate", -0.1, "sample_rate"),
        ("batch_size", 0, "batch_size"),
        ("batch_size", 101, "batch_size"),
        ("collector_url", "not a url", "collector_url"),
        ("collector_url", "localhost:8000", "collector_url"),
        ("enabled", "maybe", "enabled"),
        ("timeout", "soon", "timeout"),
    ],
)
def test_configure_validates_ranges(key: str, value: Any, match: str) -> None:
    before = fluxloop.get_config()
    with pytest.raises(ValueError, match=match):
        fluxloop.configure(**{key: value})
    assert fluxloop.get_config() is before


def test_collector_url_loses_its_trailing_slash() -> None:
    config = fluxloop.configure(collector_url="https://collector.example.com/")
    assert config.collector_url == "https://collector.example.com"


def test_api_key_is_masked_in_repr_and_str() -> None:
    config = fluxloop.configure(api_key="sk-live-very-secret-value")
    for text in (repr(config), str(config), f"{config}", repr([config])):
        assert "very-secret" not in text
        assert "api_key='***'" in text
    assert config.api_key == "sk-live-very-secret-value"
    assert config.to_dict()["api_key"] == "***"
    assert config.to_dict(reveal_secrets=True)["api_key"] == "sk-live-very-secret-value"


# --------------------------------------------------------------------------- load_env


def test_load_env_never_overrides_the_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUXLOOP_SERVICE_NAME", "from-shell")
    monkeypatch.delenv("LEGACY_TEST_ONLY_IN_FILE", raising=False)
    (tmp_path / ".env").write_text(
        "FLUXLOOP_SERVICE_NAME=from-file\nLEGACY_TEST_ONLY_IN_FILE=yes\n", encoding="utf-8"
    )
    assert fluxloop.load_env() is True  # default: .env in the current directory
    assert os.environ["FLUXLOOP_SERVICE_NAME"] == "from-shell"
    assert os.environ["LEGACY_TEST_ONLY_IN_FILE"] == "yes"
    assert fluxloop.get_config().service_name == "from-shell"


def test_load_env_override_true_and_folder_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / ".env").write_text("FLUXLOOP_SERVICE_NAME=from-file\n", encoding="utf-8")
    monkeypatch.setenv("FLUXLOOP_SERVICE_NAME", "from-shell")
    fluxloop.configure(debug=True)
    assert fluxloop.load_env(folder, override=True) is True
    assert os.environ["FLUXLOOP_SERVICE_NAME"] == "from-file"
    # refresh_config rebuilt the config from the environment.
    assert fluxloop.get_config().service_name == "from-file"
    assert fluxloop.get_config().debug is False


def test_load_env_without_refresh_keeps_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLUXLOOP_SERVICE_NAME", raising=False)
    env = tmp_path / "custom.env"
    env.write_text("FLUXLOOP_SERVICE_NAME=from-file\n", encoding="utf-8")
    fluxloop.get_config()
    assert fluxloop.load_env(str(env), refresh_config=False) is True
    assert fluxloop.get_config().service_name is None
    assert os.environ["FLUXLOOP_SERVICE_NAME"] == "from-file"


def test_load_env_missing_file_returns_false(tmp_path: Path) -> None:
    assert fluxloop.load_env() is False
    assert fluxloop.load_env(tmp_path / "nope.env") is False


def test_load_env_default_is_documented_as_not_overriding() -> None:
    doc = fluxloop.load_env.__doc__ or ""
    assert "Default False" in doc and "earlier FluxLoop SDK" in doc


# --------------------------------------------------------------------------- recording


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_recording_is_off_by_default(tmp_path: Path) -> None:
    assert fluxloop.record_call_args("t", message="hi") is None
    assert list(tmp_path.iterdir()) == []


def test_record_call_args_line_shape_placeholders_and_redaction(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "args.jsonl"
    fluxloop.enable_recording(str(out))

    def send(text: str) -> None: ...

    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque thing>"

    with socket.socket() as sock:
        fluxloop.record_call_args(
            "app.main:handler",
            message="hello",
            count=3,
            send=send,
            sock=sock,
            blob=b"\x00\x01\x02",
            thing=Opaque(),
            api_key="plain-value-123",
            headers={"Authorization": "Bearer abc.def.ghi", "x-trace": "1"},
            note="my key is sk-abcdefghijklmnopqrstuvwx",
        )
    (line,) = _lines(out)
    assert list(line) == ["_version", "target", "iteration", "args", "kwargs", "timestamp"]
    assert line["_version"] == "1"
    assert line["target"] == "app.main:handler"
    assert line["iteration"] == 0
    assert line["args"] == []
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    kwargs = line["kwargs"]
    assert kwargs["message"] == "hello" and kwargs["count"] == 3
    assert kwargs["send"] == {"__fluxloop__": "callable", "name": "send"}
    assert kwargs["sock"]["__fluxloop__"] == "object"
    assert kwargs["sock"]["type"] == "socket.socket"
    assert kwargs["blob"] == {"__fluxloop__": "bytes", "length": 3}
    assert kwargs["thing"] == {
        "__fluxloop__": "object",
        "type": f"{Opaque.__module__}.{Opaque.__qualname__}",
        "repr": "<Opaque thing>",
    }
    assert kwargs["api_key"] == REDACTED
    assert kwargs["headers"] == {"Authorization": REDACTED, "x-trace": "1"}
    assert "sk-abcdefghijklmnopqrstuvwx" not in out.read_text()
    assert REDACTED in kwargs["note"]


def test_record_call_args_iterations(tmp_path: Path) -> None:
    out = tmp_path / "args.jsonl"
    fluxloop.enable_recording(out)
    for _ in range(3):
        fluxloop.record_call_args("a")
    fluxloop.record_call_args("b")
    fluxloop.record_call_args("a", iteration=10)
    fluxloop.record_call_args("a")
    fluxloop.set_recording_options(iteration_auto_increment=False)
    fluxloop.record_call_args("a")
    assert [(r["target"], r["iteration"]) for r in _lines(out)] == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("a", 10),
        ("a", 11),
        ("a", 0),
    ]


def test_disable_recording_stops_it(tmp_path: Path) -> None:
    out = tmp_path / "args.jsonl"
    fluxloop.enable_recording(out)
    fluxloop.record_call_args("a")
    fluxloop.disable_recording()
    assert fluxloop.record_call_args("a") is None
    assert len(_lines(out)) == 1


@pytest.mark.parametrize("file_value", [None, ""])
def test_recording_from_the_environment_defaults_to_recordings_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_value: str | None
) -> None:
    monkeypatch.setenv("FLUXLOOP_RECORD_ARGS", "true")
    if file_value is not None:
        monkeypatch.setenv("FLUXLOOP_RECORDING_FILE", file_value)
    fluxloop.reset_config()
    fluxloop.record_call_args("t", x=1)
    (line,) = _lines(tmp_path / "recordings" / "args_recording.jsonl")
    assert line["kwargs"] == {"x": 1}


def test_recording_from_configure(tmp_path: Path) -> None:
    fluxloop.configure(record_args=True, recording_file=str(tmp_path / "c.jsonl"))
    fluxloop.record_call_args("t", x=1)
    assert len(_lines(tmp_path / "c.jsonl")) == 1
    fluxloop.disable_recording()
    fluxloop.record_call_args("t", x=2)
    fluxloop.configure(record_args=True)  # the config decides again
    fluxloop.record_call_args("t", x=3)
    assert [r["kwargs"]["x"] for r in _lines(tmp_path / "c.jsonl")] == [1, 3]


def test_recording_from_threads_writes_whole_lines(tmp_path: Path) -> None:
    out = tmp_path / "args.jsonl"
    fluxloop.enable_recording(out)
    barrier = threading.Barrier(8)
    payload = "x" * 20_000  # larger than any I/O buffer, so a torn write would show

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(25):
            fluxloop.record_call_args(f"t{n}", n=n, i=i, payload=payload)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    lines = _lines(out)
    assert len(lines) == 200
    assert all(r["kwargs"]["payload"] == payload for r in lines)
    for n in range(8):
        mine = [r for r in lines if r["target"] == f"t{n}"]
        assert sorted(r["iteration"] for r in mine) == list(range(25))


def test_write_call_record_is_reusable(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "r.jsonl"
    record = recording.write_call_record(out, "mod:fn", ("pos", print), {"token": "abcdefgh"})
    assert record["args"] == ["pos", {"__fluxloop__": "callable", "name": "print"}]
    assert record["kwargs"] == {"token": REDACTED}
    assert record["iteration"] is None
    assert _lines(out) == [record]


# --------------------------------------------------------------------------- sample agent

SAMPLE_AGENT = '''
"""A small agent written the way the earlier FluxLoop templates instrument theirs."""

from typing import Any, Dict

import fluxloop


@fluxloop.agent(name="SimpleAgent")
def run(input_text: str) -> str:
    analysis = analyse(input_text)
    return reply(analysis)


@fluxloop.prompt(model="simple-model")
def reply(analysis: Dict[str, Any]) -> str:
    return "Hi there!" if analysis["greeting"] else "Tell me more."


@fluxloop.tool(description="Look for a greeting in the text")
def analyse(text: str) -> Dict[str, Any]:
    return {"greeting": text.lower().startswith(("hi", "hello")), "words": len(text.split())}


if __name__ == "__main__":
    with fluxloop.instrument("test_run") as trace:
        result = run("Hello, what can you do?")
        print(f"Result: {result}")
    print(f"Observations: {len(trace.observations)}")
'''


@pytest.mark.parametrize("offline", [False, True])
def test_sample_agent_runs_as_a_script(tmp_path: Path, offline: bool) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(textwrap.dedent(SAMPLE_AGENT), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXLOOP_")}
    if offline:
        env["FLUXLOOP_OFFLINE_DIR"] = str(tmp_path / "traces")
    proc = subprocess.run(
        [sys.executable, "agent.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Result: Hi there!" in proc.stdout
    assert "Observations: 6" in proc.stdout
    if offline:
        (trace,) = _lines(tmp_path / "traces" / "traces.jsonl")
        assert trace["case_id"] == "test_run"
        assert len(_lines(tmp_path / "traces" / "observations.jsonl")) == 6
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.py"]
