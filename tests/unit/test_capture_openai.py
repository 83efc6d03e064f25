"""The ``openai`` SDK's calls captured as generations, with the real client and a local server.

Every test drives ``openai.OpenAI`` / ``AsyncOpenAI`` against the scripted server of
:mod:`support.llm_server` inside a trace, after :func:`pytest_fluxloop.integrations.install`,
and reads the trace's observations. Nothing of the client is patched.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import Iterator
from typing import Any

import openai
import pydantic
import pytest
from support.capture_helpers import generations, only
from support.llm_server import (
    CHAT,
    RESPONSES,
    FakeLLMServer,
    Scripted,
    chat_completion,
    chat_stream,
    llm_server,
    openai_error,
    responses_reply,
    responses_stream,
    sse,
    sse_part,
)

from pytest_fluxloop.integrations import install, uninstall
from pytest_fluxloop.integrations import openai as openai_capture
from pytest_fluxloop.sdk import configure, reset_config
from pytest_fluxloop.sdk.context import (
    CaptureSettings,
    acting_as,
    framework_generation,
    trace_context,
)
from pytest_fluxloop.sdk.decorators import tool

__all__ = ["llm_server"]  # the fixture, imported for pytest

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
CHAT_USAGE = {
    "prompt_tokens": 100,
    "completion_tokens": 20,
    "total_tokens": 120,
    "prompt_tokens_details": {"cached_tokens": 40},
    "completion_tokens_details": {"reasoning_tokens": 7},
}


@pytest.fixture(autouse=True)
def capture() -> Iterator[None]:
    """Each test starts with the SDKs freshly hooked, and leaves them unhooked."""
    uninstall()
    assert install() == []
    yield
    uninstall()


def client(server: FakeLLMServer, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, **options
    )


def async_client(server: FakeLLMServer, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.openai_base_url, api_key="sk-test", max_retries=0, **options
    )


def ask(c: openai.OpenAI, **options: Any) -> Any:
    return c.chat.completions.create(model="gpt-test", messages=MESSAGES, **options)


# --------------------------------------------------------------------------- plain calls


def test_chat_completion_is_one_generation_under_its_span(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_completion("Hello!", model="gpt-test-0613", usage=CHAT_USAGE))

    @tool()
    def lookup() -> str:
        reply = ask(client(llm_server), temperature=0.2, max_tokens=50)
        return str(reply.choices[0].message.content)

    with trace_context("t1", capture=CaptureSettings()) as ctx:
        assert lookup() == "Hello!"
    start, end = only(ctx)
    tool_span = next(o for o in ctx.observations if o.kind == "tool" and o.type == "span_start")
    assert start.parent_id == tool_span.observation_id == end.parent_id
    assert start.name == end.name == "openai.chat.completions"
    assert start.role == end.role == "agent"
    assert start.input == {"messages": MESSAGES}
    assert start.metadata["parameters"] == {"temperature": 0.2, "max_tokens": 50}
    assert start.metadata["model"] == "gpt-test"
    assert start.metadata["operation"] == "/chat/completions"
    assert start.metadata["provider"] == "openai"
    assert start.metadata["stream"] is False
    assert end.output == "Hello!"
    assert end.error is None
    assert end.duration_ms is not None and end.duration_ms > 0
    meta = end.metadata
    assert meta["model"] == "gpt-test-0613"  # as the response names it
    assert meta["finish_reason"] == "stop"
    assert meta["status"] == "ok"
    assert meta["usage_source"] == "response"
    assert meta["usage"] == {
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_tokens": 40,
        "reasoning_tokens": 7,
        "total_tokens": 120,
    }
    assert "ttft_ms" not in meta


def test_responses_api_usage_and_output(llm_server: FakeLLMServer) -> None:
    llm_server.script(RESPONSES, responses_reply("Sure.", model="gpt-resp"))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        reply = client(llm_server).responses.create(
            model="gpt-resp", input="Help me", instructions="Be kind", max_output_tokens=30
        )
    assert reply.output_text == "Sure."
    start, end = only(ctx)
    assert start.name == "openai.responses"
    assert start.input == {"input": "Help me", "instructions": "Be kind"}
    assert start.metadata["parameters"] == {"max_output_tokens": 30}
    assert end.output == "Sure."
    assert end.metadata["finish_reason"] == "completed"
    assert end.metadata["usage"] == {
        "input_tokens": 50,
        "output_tokens": 10,
        "cached_tokens": 5,
        "reasoning_tokens": 3,
        "total_tokens": 60,
    }


def test_tool_calls_are_the_output(llm_server: FakeLLMServer) -> None:
    scripted = chat_completion(None, finish_reason="tool_calls")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
    }
    scripted.body["choices"][0]["message"]["tool_calls"] = [call]
    llm_server.script(CHAT, scripted)
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        ask(client(llm_server), tools=[{"type": "function", "function": {"name": "lookup"}}])
    start, end = only(ctx)
    assert start.metadata["parameters"]["tools"][0]["function"]["name"] == "lookup"
    assert end.output == {"content": None, "tool_calls": [call]}
    assert end.metadata["finish_reason"] == "tool_calls"


def test_structured_parse_and_its_length_error(llm_server: FakeLLMServer) -> None:
    class Answer(pydantic.BaseModel):
        answer: str

    llm_server.script(
        CHAT,
        chat_completion('{"answer": "42"}'),
        chat_completion('{"answer": "4', finish_reason="length"),
    )
    c = client(llm_server)
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        parsed = c.chat.completions.parse(model="m", messages=MESSAGES, response_format=Answer)
        with pytest.raises(openai.LengthFinishReasonError):
            c.chat.completions.parse(model="m", messages=MESSAGES, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(answer="42")
    (_, ok), (_, failed) = generations(ctx)
    assert ok.output == '{"answer": "42"}' and ok.metadata["status"] == "ok"
    assert failed.metadata["status"] == "error"
    assert failed.error is not None and failed.error.startswith("LengthFinishReasonError")
    assert failed.metadata["finish_reason"] == "length"
    assert failed.metadata["usage"]["input_tokens"] == 100  # the tokens were spent


def test_embeddings_recorded_without_vectors(llm_server: FakeLLMServer) -> None:
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "emb-test",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    llm_server.script("/v1/embeddings", Scripted(body=body))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        client(llm_server).embeddings.create(model="emb-test", input="three words here")
    start, end = only(ctx)
    assert start.name == "openai.embeddings"
    assert start.input == {"input": "three words here"}
    assert end.output is None
    assert end.metadata["usage"]["input_tokens"] == 3
    assert end.metadata["usage"]["output_tokens"] is None


def test_non_generation_endpoints_are_not_recorded(llm_server: FakeLLMServer) -> None:
    llm_server.script("/v1/models", Scripted(body={"object": "list", "data": []}))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        assert list(client(llm_server).models.list()) == []
    assert ctx.observations == []


# --------------------------------------------------------------------------- streams


def test_stream_with_usage_records_ttft_and_usage(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_stream(["Hel", "lo"], model="gpt-s", usage=CHAT_USAGE))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        stream = ask(client(llm_server), stream=True, stream_options={"include_usage": True})
        assert isinstance(stream, openai.Stream)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello"
    start, end = only(ctx)
    assert start.metadata["stream"] is True
    assert start.metadata["parameters"] == {"stream_options": {"include_usage": True}}
    meta = end.metadata
    assert end.output == "Hello"
    assert meta["status"] == "ok" and meta["finish_reason"] == "stop" and meta["model"] == "gpt-s"
    assert meta["usage"]["input_tokens"] == 100 and meta["usage"]["cached_tokens"] == 40
    assert meta["usage_source"] == "response"
    assert 0 <= meta["ttft_ms"] <= end.duration_ms


def test_stream_without_usage_is_missing_not_zero(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_stream(["a", "b"]))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        for _ in ask(client(llm_server), stream=True):
            pass
    _, end = only(ctx)
    assert end.metadata["usage"] is None
    assert end.metadata["usage_source"] == "missing"
    assert end.metadata["status"] == "ok"


def test_streamed_tool_call_is_assembled(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        CHAT,
        chat_stream(
            [], tool_call={"name": "find", "arguments": '{"q": 1}'}, finish_reason="tool_calls"
        ),
    )
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        list(ask(client(llm_server), stream=True))
    _, end = only(ctx)
    assert end.output == {
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "find", "arguments": '{"q": 1}'},
            }
        ],
    }
    assert end.metadata["finish_reason"] == "tool_calls"


def test_responses_stream(llm_server: FakeLLMServer) -> None:
    llm_server.script(RESPONSES, responses_stream(["Gre", "at"], model="gpt-r"))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        events = [
            e.type
            for e in client(llm_server).responses.create(model="gpt-r", input="x", stream=True)
        ]
    assert events[-1] == "response.completed"
    _, end = only(ctx)
    assert end.output == "Great"
    assert end.metadata["usage"]["reasoning_tokens"] == 3
    assert end.metadata["finish_reason"] == "completed"
    assert end.metadata["ttft_ms"] >= 0


def test_stream_closed_early_is_closed_once(llm_server: FakeLLMServer) -> None:
    scripted = chat_stream(["one", "two", "three"], hold_after=2)
    llm_server.script(CHAT, scripted)
    try:
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            stream = ask(client(llm_server), stream=True)
            first = [next(stream), next(stream)]
            stream.close()
            stream.close()
    finally:
        scripted.resume.set()
    assert first[1].choices[0].delta.content == "one"
    _, end = only(ctx)
    assert end.metadata["status"] == "closed"
    assert end.output == "one"  # what arrived before the close
    assert end.error is None


def test_stream_abandoned_unstarted_and_started(llm_server: FakeLLMServer) -> None:
    held = chat_stream(["one", "two"], hold_after=2)
    llm_server.script(CHAT, chat_stream(["x"]), held)
    c = client(llm_server)
    try:
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            stream = ask(c, stream=True)
            del stream
            gc.collect()
            stream = ask(c, stream=True)
            next(stream)
            del stream
            gc.collect()
    finally:
        held.resume.set()
    pairs = generations(ctx)
    assert [end.metadata["status"] for _, end in pairs] == ["abandoned", "abandoned"]


def test_async_stream_abandoned(llm_server: FakeLLMServer) -> None:
    held = chat_stream(["one", "two"], hold_after=2)
    llm_server.script(CHAT, held)

    async def agent() -> None:
        stream = await async_client(llm_server).chat.completions.create(
            model="m", messages=MESSAGES, stream=True
        )
        await stream.__anext__()
        del stream
        gc.collect()

    try:
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            asyncio.run(agent())
    finally:
        held.resume.set()
    _, end = only(ctx)
    assert end.metadata["status"] == "abandoned"


def test_stream_cut_mid_way_is_an_error(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_stream(["a", "b"], done=False, cut=True))
    with (
        trace_context("t1", capture=CaptureSettings()) as ctx,
        pytest.raises(openai.APIConnectionError),
    ):
        for _ in ask(client(llm_server), stream=True):
            pass
    _, end = only(ctx)
    assert end.metadata["status"] == "error"
    assert end.error is not None and "RemoteProtocolError" in end.error


def test_error_event_mid_stream_is_an_error(llm_server: FakeLLMServer) -> None:
    from support.llm_server import chat_stream_parts

    parts = chat_stream_parts(["a"], done=False)[:2]
    parts.append(sse_part({"error": {"message": "overloaded", "type": "server_error"}}))
    llm_server.script(CHAT, sse(parts))
    with (
        trace_context("t1", capture=CaptureSettings()) as ctx,
        pytest.raises(openai.APIError, match="overloaded"),
    ):
        for _ in ask(client(llm_server), stream=True):
            pass
    _, end = only(ctx)
    assert end.metadata["status"] == "error"
    assert end.error == "server_error: overloaded"


def test_streaming_response_closed_unread(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_completion("unread"))
    c = client(llm_server)
    with (
        trace_context("t1", capture=CaptureSettings()) as ctx,
        c.chat.completions.with_streaming_response.create(model="m", messages=MESSAGES) as response,
    ):
        assert response.status_code == 200
    _, end = only(ctx)
    assert end.metadata["status"] == "closed"


def test_async_stream_and_call(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_completion("plain"), chat_stream(["as", "ync"], usage=CHAT_USAGE))

    async def agent() -> list[str]:
        c = async_client(llm_server)
        reply = await c.chat.completions.create(model="m", messages=MESSAGES)
        stream = await c.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, openai.AsyncStream)
        texts = [str(reply.choices[0].message.content)]
        async with stream:
            texts += [c.choices[0].delta.content or "" async for c in stream if c.choices]
        return texts

    with trace_context("t1", capture=CaptureSettings()) as ctx:
        assert asyncio.run(agent()) == ["plain", "", "as", "ync", ""]
    (_, plain), (_, streamed) = generations(ctx)
    assert plain.output == "plain" and plain.metadata["stream"] is False
    assert streamed.output == "async" and streamed.metadata["usage"]["output_tokens"] == 20
    assert streamed.metadata["status"] == "ok" and streamed.metadata["ttft_ms"] >= 0


def test_async_stream_closed_early(llm_server: FakeLLMServer) -> None:
    scripted = chat_stream(["one", "two"], hold_after=2)
    llm_server.script(CHAT, scripted)

    async def agent() -> None:
        stream = await async_client(llm_server).chat.completions.create(
            model="m", messages=MESSAGES, stream=True
        )
        await stream.__anext__()
        await stream.close()

    try:
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            asyncio.run(agent())
    finally:
        scripted.resume.set()
    _, end = only(ctx)
    assert end.metadata["status"] == "closed"


# --------------------------------------------------------------------------- errors


def test_status_error_recorded_and_reraised(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, openai_error(400, "bad request", code="bad"))
    with (
        trace_context("t1", capture=CaptureSettings()) as ctx,
        pytest.raises(openai.BadRequestError) as raised,
    ):
        ask(client(llm_server))
    assert raised.value.status_code == 400
    _, end = only(ctx)
    assert end.metadata["status"] == "error"
    assert end.error is not None and end.error.startswith("BadRequestError")
    assert end.metadata["usage"] is None and end.output is None


def test_connection_error_and_timeout(llm_server: FakeLLMServer) -> None:
    slow = Scripted(parts=[b"{}"], content_type="application/json", hold_after=0)
    llm_server.script(CHAT, Scripted(drop=True), slow)
    try:
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            with pytest.raises(openai.APIConnectionError):
                ask(client(llm_server))
            with pytest.raises(openai.APITimeoutError):
                ask(client(llm_server, timeout=0.05))
    finally:
        slow.resume.set()
    errors = [end.error or "" for _, end in generations(ctx)]
    assert errors[0].startswith("APIConnectionError")
    assert errors[1].startswith("APITimeoutError")


def test_retries_make_one_generation(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        CHAT,
        openai_error(500, "oops", type="server_error", headers={"retry-after-ms": "1"}),
        chat_completion("second try"),
    )
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        ask(client(llm_server).with_options(max_retries=1))
    _, end = only(ctx)
    assert end.output == "second try"
    assert end.metadata["retries"] == 1


# --------------------------------------------------------------------------- when not to record


def test_role_is_supervisor_inside_acting_as(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_completion("x"), chat_stream(["y"]))
    with trace_context("t1", capture=CaptureSettings()) as ctx, acting_as("supervisor"):
        ask(client(llm_server))
        list(ask(client(llm_server), stream=True))
    assert [(s.role, e.role) for s, e in generations(ctx)] == [("supervisor", "supervisor")] * 2


def test_nothing_recorded_when_capture_does_not_apply(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, *[chat_completion("x") for _ in range(4)])
    c = client(llm_server)
    ask(c)  # no trace at all
    with trace_context("t1", capture=CaptureSettings(llm=False)) as off:
        ask(c)
    with trace_context("t2", capture=CaptureSettings()) as framework:
        token = framework_generation.set("langchain")
        try:
            ask(c)
        finally:
            framework_generation.reset(token)
    configure(enabled=False)
    try:
        with trace_context("t3", capture=CaptureSettings()) as disabled:
            ask(c)
    finally:
        reset_config()
    assert off.observations == framework.observations == disabled.observations == []
    assert len(llm_server.requests(CHAT)) == 4


def test_content_off_keeps_no_text(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_completion("secret reply"), chat_stream(["secret"]))
    with trace_context("t1", capture=CaptureSettings(content=False)) as ctx:
        ask(client(llm_server), temperature=0.5)
        list(ask(client(llm_server), stream=True))
    for start, end in generations(ctx):
        assert start.input is None and end.output is None
        assert "secret" not in start.model_dump_json() + end.model_dump_json()
        assert "Hi there" not in start.model_dump_json()
    assert generations(ctx)[0][1].metadata["usage"]["input_tokens"] == 100


def test_request_bytes_identical_with_and_without_capture(llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, *[chat_completion("x"), chat_stream(["y"])] * 2)
    c = client(llm_server)

    def calls() -> None:
        ask(c, temperature=0.1)
        list(ask(c, stream=True))

    calls()
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        calls()
    assert len(generations(ctx)) == 2
    without, with_ = llm_server.requests()[:2], llm_server.requests()[2:]
    for a, b in zip(without, with_, strict=True):
        assert a.body == b.body
        assert a.headers == b.headers
    assert b"stream_options" not in with_[1].body


# --------------------------------------------------------------------------- install


def test_install_twice_records_each_call_once(llm_server: FakeLLMServer) -> None:
    assert install() == []
    assert openai_capture.install() == []
    llm_server.script(CHAT, chat_completion("x"))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        ask(client(llm_server))
    assert len(generations(ctx)) == 1


def test_another_instrumentation_is_noticed_and_kept(llm_server: FakeLLMServer) -> None:
    from openai.resources.chat.completions import Completions

    seen: list[str] = []
    original = Completions.__dict__["create"]

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append("other")
        return original(self, *args, **kwargs)

    uninstall()
    Completions.create = create  # type: ignore[method-assign]
    try:
        notices = install()
        llm_server.script(CHAT, chat_completion("x"))
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            ask(client(llm_server))
    finally:
        Completions.create = original  # type: ignore[method-assign]
    assert len(notices) == 1
    assert f"module {__name__}" in notices[0] and "Completions.create" in notices[0]
    assert "records each call once" in notices[0]
    assert seen == ["other"]
    assert len(generations(ctx)) == 1


def test_a_wrapper_around_the_request_path_is_wrapped_not_doubled(
    llm_server: FakeLLMServer,
) -> None:
    from openai._base_client import SyncAPIClient

    uninstall()
    original = SyncAPIClient.__dict__["request"]

    @functools.wraps(original)
    def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **kwargs)

    SyncAPIClient.request = request  # type: ignore[method-assign]
    try:
        notices = install()
        assert install() == []
        llm_server.script(CHAT, chat_completion("x"))
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            ask(client(llm_server))
        uninstall()
        assert SyncAPIClient.__dict__["request"] is request
    finally:
        SyncAPIClient.request = original  # type: ignore[method-assign]
    assert len(notices) == 1 and "SyncAPIClient.request" in notices[0]
    assert len(generations(ctx)) == 1


def test_foreign_wrappers_are_told_apart() -> None:
    from openai._base_client import SyncAPIClient
    from openai.resources.chat.completions import Completions

    from pytest_fluxloop.integrations.capture_hooks import foreign_wrapper

    sdk_create = Completions.__dict__["create"]  # the SDK's own decorator wraps it
    assert foreign_wrapper(sdk_create, "openai") is None
    assert foreign_wrapper(SyncAPIClient.__dict__["request"], "openai") is None  # ours

    @functools.wraps(sdk_create)
    def plain(*args: Any, **kwargs: Any) -> Any:
        return sdk_create(*args, **kwargs)

    assert foreign_wrapper(plain, "openai") == __name__  # not the copied __module__

    def tracer(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    class FunctionWrapper:  # what wrapt.wrap_function_wrapper installs
        __module__ = "wrapt.wrappers"

        def __init__(self) -> None:
            self.__wrapped__ = sdk_create
            self._self_wrapper = tracer

    assert foreign_wrapper(FunctionWrapper(), "openai") == __name__


def test_extraction_failures_never_break_the_call(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("capture bug")

    llm_server.script(CHAT, chat_completion("one"), chat_completion("two"), chat_stream(["three"]))
    c = client(llm_server)
    with (
        caplog.at_level(logging.WARNING, "pytest_fluxloop.capture"),
        trace_context("t1", capture=CaptureSettings()) as ctx,
    ):
        with monkeypatch.context() as m:
            m.setattr(openai_capture.OpenAICapture, "describe", broken)
            assert ask(c).choices[0].message.content == "one"
        with monkeypatch.context() as m:
            m.setattr(openai_capture.OpenAICapture, "reduce", broken)
            assert ask(c).choices[0].message.content == "two"
        with monkeypatch.context() as m:
            m.setattr(openai_capture._OpenAIStream, "event", broken)
            chunks = list(ask(c, stream=True))
    assert "".join(x.choices[0].delta.content or "" for x in chunks) == "three"
    event = next(o for o in ctx.observations if o.name == "capture_error")
    assert event.kind == "event" and "capture bug" in event.metadata["error"]
    (_, reduced), (_, streamed) = generations(ctx)
    assert reduced.metadata["status"] == "ok" and "capture bug" in reduced.metadata["capture_error"]
    assert (
        streamed.metadata["status"] == "ok" and "capture bug" in streamed.metadata["capture_error"]
    )
    assert sum("could not capture" in r.message for r in caplog.records) == 3  # once per stage
