"""The ``anthropic`` SDK's calls captured as generations, with the real client and a local
server (see ``test_capture_openai.py`` for the common rules: nothing of the client patched)."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Iterator
from typing import Any

import pytest
from support.capture_helpers import generations, only
from support.llm_server import (
    MESSAGES,
    FakeLLMServer,
    Scripted,
    anthropic_error,
    anthropic_message,
    anthropic_stream,
    anthropic_stream_parts,
    llm_server,
    sse,
    sse_part,
)

from pytest_fluxloop.integrations import anthropic as anthropic_capture
from pytest_fluxloop.integrations import install, uninstall
from pytest_fluxloop.sdk.context import CaptureSettings, acting_as, trace_context

anthropic = pytest.importorskip("anthropic")

__all__ = ["llm_server"]  # the fixture, imported for pytest

CONVERSATION = [{"role": "user", "content": "Where is my order?"}]


@pytest.fixture(autouse=True)
def capture() -> Iterator[None]:
    """Each test starts with the SDKs freshly hooked, and leaves them unhooked."""
    uninstall()
    assert install() == []
    yield
    uninstall()


def client(server: FakeLLMServer, **options: Any) -> Any:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0, **options)


def async_client(server: FakeLLMServer) -> Any:
    return anthropic.AsyncAnthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)


def create(c: Any, **options: Any) -> Any:
    return c.messages.create(
        model="claude-test", max_tokens=64, system="Be kind.", messages=CONVERSATION, **options
    )


def test_message_is_one_generation(llm_server: FakeLLMServer) -> None:
    usage = {"input_tokens": 80, "output_tokens": 15, "cache_read_input_tokens": 30}
    llm_server.script(MESSAGES, anthropic_message(text="On its way.", usage=usage))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        message = create(client(llm_server), stop_sequences=["END"])
    assert message.content[0].text == "On its way."
    start, end = only(ctx)
    assert start.name == end.name == "anthropic.messages"
    assert start.input == {"messages": CONVERSATION, "system": "Be kind."}
    assert start.metadata["parameters"] == {"max_tokens": 64, "stop_sequences": ["END"]}
    assert start.metadata["operation"] == "/v1/messages"
    assert start.metadata["provider"] == "anthropic" and start.role == "agent"
    assert end.output == "On its way."
    assert end.metadata["finish_reason"] == "end_turn"
    assert end.metadata["model"] == "claude-test"
    assert end.metadata["usage"] == {
        "input_tokens": 80,
        "output_tokens": 15,
        "cached_tokens": 30,
        "reasoning_tokens": None,
        "total_tokens": 95,
    }


def test_tool_use_blocks_are_the_output(llm_server: FakeLLMServer) -> None:
    llm_server.script(MESSAGES, anthropic_message(text="Checking.", tool_input={"id": 7}))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        create(client(llm_server))
    _, end = only(ctx)
    assert end.output == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_test", "name": "supervisor_decision", "input": {"id": 7}},
    ]
    assert end.metadata["finish_reason"] == "tool_use"


def test_stream_usage_is_start_plus_cumulative_delta(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        MESSAGES,
        anthropic_stream(
            ["Hel", "lo"], input_tokens=12, cache_read_input_tokens=4, output_tokens=9
        ),
    )
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        events = [e.type for e in create(client(llm_server), stream=True)]
    assert events[-1] == "message_stop"
    start, end = only(ctx)
    assert start.metadata["stream"] is True
    assert end.output == "Hello"
    assert end.metadata["usage"] == {
        "input_tokens": 12,
        "output_tokens": 9,  # message_delta's running total, not 1 + 9
        "cached_tokens": 4,
        "reasoning_tokens": None,
        "total_tokens": 21,
    }
    assert end.metadata["status"] == "ok" and end.metadata["ttft_ms"] >= 0


def test_stream_helper_text_stream_and_final_message(llm_server: FakeLLMServer) -> None:
    llm_server.script(MESSAGES, anthropic_stream(["Fine", " thanks"]))
    with (
        trace_context("t1", capture=CaptureSettings()) as ctx,
        client(llm_server).messages.stream(
            model="claude-test", max_tokens=64, messages=CONVERSATION
        ) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Fine thanks" and final.content[0].text == "Fine thanks"
    _, end = only(ctx)
    assert end.output == "Fine thanks" and end.metadata["usage"]["output_tokens"] == 15


def test_streamed_tool_input_is_assembled(llm_server: FakeLLMServer) -> None:
    base = anthropic_stream_parts([], stop_reason="tool_use")  # start, block, ping, stop ...
    block = {"type": "tool_use", "id": "toolu_1", "name": "find", "input": {}}
    start = {"type": "content_block_start", "index": 0, "content_block": block}
    deltas = [
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": piece},
        }
        for piece in ('{"q": ', '"shoes"}')
    ]
    parts = [base[0], sse_part(start, "content_block_start")]
    parts += [sse_part(delta, "content_block_delta") for delta in deltas] + base[3:]
    llm_server.script(MESSAGES, sse(parts))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        list(create(client(llm_server), stream=True))
    _, end = only(ctx)
    assert end.output == [{**block, "input": {"q": "shoes"}}]
    assert end.metadata["finish_reason"] == "tool_use"


def test_async_create_and_stream_helper(llm_server: FakeLLMServer) -> None:
    llm_server.script(MESSAGES, anthropic_message(text="plain"), anthropic_stream(["as", "ync"]))

    async def agent() -> list[str]:
        c = async_client(llm_server)
        message = await c.messages.create(model="m", max_tokens=5, messages=CONVERSATION)
        async with c.messages.stream(model="m", max_tokens=5, messages=CONVERSATION) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
        return [message.content[0].text, text, final.content[0].text]

    with trace_context("t1", capture=CaptureSettings()) as ctx:
        assert asyncio.run(agent()) == ["plain", "async", "async"]
    (_, plain), (_, streamed) = generations(ctx)
    assert plain.output == "plain" and streamed.output == "async"
    assert streamed.metadata["status"] == "ok" and streamed.metadata["ttft_ms"] >= 0


def test_error_event_mid_stream(llm_server: FakeLLMServer) -> None:
    parts = anthropic_stream_parts(["partial"])[:4]
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    parts.append(sse_part(error, "error"))
    llm_server.script(MESSAGES, sse(parts))
    with (
        trace_context("t1", capture=CaptureSettings()) as ctx,
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
    ):
        list(create(client(llm_server), stream=True))
    _, end = only(ctx)
    assert end.metadata["status"] == "error"
    assert end.error == "overloaded_error: Overloaded"
    assert end.metadata["usage"]["input_tokens"] == 80  # what message_start reported


def test_stream_cut_mid_way(llm_server: FakeLLMServer) -> None:
    llm_server.script(MESSAGES, sse(anthropic_stream_parts(["a"])[:4], cut=True))
    with (
        trace_context("t1", capture=CaptureSettings()) as ctx,
        pytest.raises(Exception, match="peer closed connection") as raised,
    ):
        list(create(client(llm_server), stream=True))
    _, end = only(ctx)
    assert end.metadata["status"] == "error"
    assert (end.error or "").startswith(type(raised.value).__name__)


def test_stream_closed_early_and_abandoned(llm_server: FakeLLMServer) -> None:
    closed = anthropic_stream(["one", "two"], hold_after=4)
    dropped = anthropic_stream(["one", "two"], hold_after=4)
    llm_server.script(MESSAGES, closed, dropped, anthropic_stream(["x"]))
    c = client(llm_server)
    try:
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            with c.messages.stream(model="m", max_tokens=5, messages=CONVERSATION) as stream:
                assert next(iter(stream.text_stream)) == "one"
            stream = create(c, stream=True)
            next(iter(stream))
            del stream  # started, dropped unfinished (refcount, no cycle in anthropic's Stream)
            stream = create(c, stream=True)
            del stream  # never read
            gc.collect()
    finally:
        closed.resume.set()
        dropped.resume.set()
    statuses = [end.metadata["status"] for _, end in generations(ctx)]
    assert statuses == ["closed", "abandoned", "abandoned"]
    closed_end = generations(ctx)[0][1]
    assert closed_end.output == "one"
    # Input counted (message_start); output unknown: message_delta never came.
    assert closed_end.metadata["usage"]["input_tokens"] == 80
    assert closed_end.metadata["usage"]["output_tokens"] is None


def test_status_error_and_count_tokens(llm_server: FakeLLMServer) -> None:
    llm_server.script(MESSAGES, anthropic_error(529, "Overloaded", type="overloaded_error"))
    llm_server.script("/v1/messages/count_tokens", Scripted(body={"input_tokens": 5}))
    c = client(llm_server)
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        with pytest.raises(anthropic.APIStatusError):
            create(c)
        assert c.messages.count_tokens(model="m", messages=CONVERSATION).input_tokens == 5
    _, end = only(ctx)  # count_tokens makes no generation
    assert end.metadata["status"] == "error" and (end.error or "").startswith("OverloadedError")


def test_supervisor_role_and_content_off(llm_server: FakeLLMServer) -> None:
    llm_server.script(MESSAGES, anthropic_message(text="secret"), anthropic_stream(["secret"]))
    with (
        trace_context("t1", capture=CaptureSettings(content=False)) as ctx,
        acting_as("supervisor"),
    ):
        create(client(llm_server))
        list(create(client(llm_server), stream=True))
    for start, end in generations(ctx):
        assert start.role == end.role == "supervisor"
        assert start.input is None and end.output is None
        assert "secret" not in end.model_dump_json() and "order" not in start.model_dump_json()
        assert end.metadata["usage"]["input_tokens"] == 80


def test_request_bytes_identical_with_and_without_capture(llm_server: FakeLLMServer) -> None:
    llm_server.script(MESSAGES, *[anthropic_message(text="x"), anthropic_stream(["y"])] * 2)
    c = client(llm_server)

    def calls() -> None:
        create(c)
        list(create(c, stream=True))

    calls()
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        calls()
    assert len(generations(ctx)) == 2
    requests = llm_server.requests()
    for a, b in zip(requests[:2], requests[2:], strict=True):
        assert a.body == b.body
        assert a.headers == b.headers


def test_another_instrumentation_is_noticed(llm_server: FakeLLMServer) -> None:
    from anthropic.resources.messages import Messages

    original = Messages.__dict__["create"]

    @functools.wraps(original)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **kwargs)

    uninstall()
    Messages.create = wrapped
    try:
        notices = install()
        llm_server.script(MESSAGES, anthropic_message(text="x"))
        with trace_context("t1", capture=CaptureSettings()) as ctx:
            create(client(llm_server))
    finally:
        Messages.create = original
    assert len(notices) == 1 and "Messages.create" in notices[0] and __name__ in notices[0]
    assert len(generations(ctx)) == 1


def test_extraction_failure_never_breaks_the_call(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("capture bug")

    monkeypatch.setattr(anthropic_capture._AnthropicStream, "event", broken)
    monkeypatch.setattr(anthropic_capture.AnthropicCapture, "reduce", broken)
    llm_server.script(MESSAGES, anthropic_message(text="fine"), anthropic_stream(["fine"]))
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        assert create(client(llm_server)).content[0].text == "fine"
        with client(llm_server).messages.stream(
            model="m", max_tokens=5, messages=CONVERSATION
        ) as stream:
            assert stream.get_final_text() == "fine"
    for _, end in generations(ctx):
        assert end.metadata["status"] == "ok"
        assert "capture bug" in end.metadata["capture_error"]
