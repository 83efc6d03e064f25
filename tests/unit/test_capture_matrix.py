"""Compatibility matrix: every way of calling the SDKs behaves the same with capture on.

Each case runs one call twice against the same scripted answer: first with the SDK unhooked
(capture off), then hooked and inside a trace. The SDK's objects (types, parsed results,
stream items, raw responses) and the request bytes the server received must be identical,
and the traced run must hold exactly one finished generation, with its usage.

OpenAI: sync/async × stream/non-stream × plain/raw/streaming/parse access × chat
completions/responses. ``raw`` is ``with_raw_response`` then ``.parse()``, ``streaming`` is
``with_streaming_response`` then ``.parse()``, ``parse`` is the structured-output helpers
(``chat.completions.parse`` / ``responses.parse``, and ``chat.completions.stream`` /
``responses.stream`` when streamed). Anthropic: sync/async × ``messages.create`` plain, raw
and streaming, each with and without ``stream=True``, and the ``messages.stream()`` helper
(``text_stream`` and ``get_final_message()``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pydantic
import pytest
from support.llm_server import (
    CHAT,
    MESSAGES,
    RESPONSES,
    FakeLLMServer,
    Scripted,
    anthropic_message,
    anthropic_stream,
    chat_completion,
    chat_stream,
    llm_server,
    responses_reply,
    responses_stream,
)

from pytest_fluxloop.integrations import install, uninstall
from pytest_fluxloop.sdk.context import CaptureSettings, TraceContext, trace_context

__all__ = ["llm_server"]  # the fixture, imported for pytest

TEXT = '{"answer": "42"}'
PIECES = ['{"answer": ', '"42"}']
CHAT_USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
USER = [{"role": "user", "content": "What is the answer?"}]


class Answer(pydantic.BaseModel):
    answer: str


@pytest.fixture(autouse=True)
def unhooked() -> Iterator[None]:
    uninstall()
    yield
    uninstall()


def dump(value: Any) -> Any:
    """A comparable form of what the SDK returned."""
    if isinstance(value, pydantic.BaseModel):
        return [type(value).__name__, value.model_dump(mode="json", warnings=False)]
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    return value


def one_generation(ctx: TraceContext) -> dict[str, Any]:
    starts = [o for o in ctx.observations if o.type == "span_start" and o.kind == "generation"]
    ends = [o for o in ctx.observations if o.type == "span_end" and o.kind == "generation"]
    assert len(starts) == len(ends) == 1, ctx.observations
    assert starts[0].observation_id == ends[0].observation_id
    return {"start": starts[0], "end": ends[0]}


def compare(server: FakeLLMServer, run: Any) -> dict[str, Any]:
    """``run()`` unhooked, then hooked in a trace; same results and request bytes."""
    before = len(server.requests())
    off = run()
    sent_off = server.requests()[before:]
    assert install() == []
    with trace_context("t1", capture=CaptureSettings()) as ctx:
        on = run()
    sent_on = server.requests()[before + len(sent_off) :]
    assert on == off
    assert len(sent_on) == len(sent_off) == 1
    assert sent_on[0].body == sent_off[0].body
    assert sent_on[0].headers == sent_off[0].headers
    generation = one_generation(ctx)
    end = generation["end"]
    assert end.metadata["status"] == "ok", end
    assert end.metadata["usage"] is not None and end.metadata["usage"]["input_tokens"]
    return generation


# --------------------------------------------------------------------------- openai


def openai_answer(api: str, stream: bool) -> Scripted:
    if api == "chat":
        return chat_stream(PIECES, usage=CHAT_USAGE) if stream else chat_completion(TEXT)
    return responses_stream(PIECES) if stream else responses_reply(TEXT)


def openai_call(c: Any, api: str, access: str, stream: bool) -> tuple[Any, dict[str, Any]]:
    """The method to call and its arguments."""
    if api == "chat":
        resource = c.chat.completions
        kwargs: dict[str, Any] = {"model": "gpt-test", "messages": USER}
        if stream:
            kwargs["stream_options"] = {"include_usage": True}
        if access == "parse":
            kwargs["response_format"] = Answer
            return (resource.stream if stream else resource.parse), kwargs
    else:
        resource = c.responses
        kwargs = {"model": "gpt-test", "input": "What is the answer?"}
        if access == "parse":
            kwargs["text_format"] = Answer
            return (resource.stream if stream else resource.parse), kwargs
    if stream:
        kwargs["stream"] = True
    target = {
        "plain": resource,
        "raw": resource.with_raw_response,
        "streaming": resource.with_streaming_response,
    }[access]
    return target.create, kwargs


def run_openai_sync(server: FakeLLMServer, api: str, access: str, stream: bool) -> Any:
    c = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    method, kwargs = openai_call(c, api, access, stream)
    if access == "parse" and stream:
        with method(**kwargs) as events:
            items = [e.type for e in events]
            final = events.get_final_completion() if api == "chat" else events.get_final_response()
        return [type(events).__name__, items, dump(final)]
    if access == "plain":
        result = method(**kwargs)
        if stream:
            assert isinstance(result, openai.Stream)
            return [type(result).__name__, dump(list(result)), result.response.is_closed]
        return dump(result)
    if access == "parse":
        return dump(method(**kwargs))
    if access == "raw":
        raw = method(**kwargs)
        parsed = raw.parse()
        items = dump(list(parsed)) if stream else dump(parsed)
        return [type(raw).__name__, raw.status_code, raw.headers["content-type"], items]
    with method(**kwargs) as response:
        parsed = response.parse()
        items = dump(list(parsed)) if stream else dump(parsed)
        return [type(response).__name__, response.status_code, items]


async def run_openai_async(server: FakeLLMServer, api: str, access: str, stream: bool) -> Any:
    c = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    method, kwargs = openai_call(c, api, access, stream)
    if access == "parse" and stream:
        async with method(**kwargs) as events:
            items = [e.type async for e in events]
            final = await (
                events.get_final_completion() if api == "chat" else events.get_final_response()
            )
        return [type(events).__name__, items, dump(final)]
    if access == "plain":
        result = await method(**kwargs)
        if stream:
            assert isinstance(result, openai.AsyncStream)
            async with result:
                items = [dump(e) async for e in result]
            return [type(result).__name__, items, result.response.is_closed]
        return dump(result)
    if access == "parse":
        return dump(await method(**kwargs))
    if access == "raw":
        raw = await method(**kwargs)
        parsed = raw.parse()  # the legacy raw response parses synchronously
        items = [dump(e) async for e in parsed] if stream else dump(parsed)
        return [type(raw).__name__, raw.status_code, raw.headers["content-type"], items]
    async with method(**kwargs) as response:
        parsed = await response.parse()
        items = [dump(e) async for e in parsed] if stream else dump(parsed)
        return [type(response).__name__, response.status_code, items]


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("access", ["plain", "raw", "streaming", "parse"])
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_openai(llm_server: FakeLLMServer, mode: str, stream: bool, access: str, api: str) -> None:
    path = CHAT if api == "chat" else RESPONSES
    llm_server.script(path, openai_answer(api, stream), openai_answer(api, stream))

    def run() -> Any:
        if mode == "sync":
            return run_openai_sync(llm_server, api, access, stream)
        return asyncio.run(run_openai_async(llm_server, api, access, stream))

    generation = compare(llm_server, run)
    start, end = generation["start"], generation["end"]
    assert start.name == ("openai.chat.completions" if api == "chat" else "openai.responses")
    assert start.metadata["stream"] is stream
    assert end.output == TEXT
    if stream:
        assert end.metadata["ttft_ms"] >= 0


# --------------------------------------------------------------------------- anthropic

ANTHROPIC_ACCESS = [
    ("plain", False),
    ("plain", True),
    ("raw", False),
    ("raw", True),
    ("streaming", False),
    ("streaming", True),
    ("helper", True),
]


def run_anthropic_sync(server: FakeLLMServer, access: str, stream: bool) -> Any:
    import anthropic

    c = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)
    kwargs: dict[str, Any] = {"model": "claude-test", "max_tokens": 64, "messages": USER}
    if access == "helper":
        with c.messages.stream(**kwargs) as helper:
            text = "".join(helper.text_stream)
            final = helper.get_final_message()
        return [type(helper).__name__, text, dump(final)]
    if stream:
        kwargs["stream"] = True
    if access == "plain":
        result = c.messages.create(**kwargs)
        if stream:
            assert isinstance(result, anthropic.Stream)
            return [type(result).__name__, dump(list(result))]
        return dump(result)
    if access == "raw":
        raw = c.messages.with_raw_response.create(**kwargs)
        parsed = raw.parse()
        items = dump(list(parsed)) if stream else dump(parsed)
        return [type(raw).__name__, raw.status_code, raw.headers["content-type"], items]
    with c.messages.with_streaming_response.create(**kwargs) as response:
        parsed = response.parse()
        items = dump(list(parsed)) if stream else dump(parsed)
        return [type(response).__name__, response.status_code, items]


async def run_anthropic_async(server: FakeLLMServer, access: str, stream: bool) -> Any:
    import anthropic

    c = anthropic.AsyncAnthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)
    kwargs: dict[str, Any] = {"model": "claude-test", "max_tokens": 64, "messages": USER}
    if access == "helper":
        async with c.messages.stream(**kwargs) as helper:
            text = "".join([t async for t in helper.text_stream])
            final = await helper.get_final_message()
        return [type(helper).__name__, text, dump(final)]
    if stream:
        kwargs["stream"] = True
    if access == "plain":
        result = await c.messages.create(**kwargs)
        if stream:
            assert isinstance(result, anthropic.AsyncStream)
            async with result:
                items = [dump(e) async for e in result]
            return [type(result).__name__, items]
        return dump(result)
    if access == "raw":
        raw = await c.messages.with_raw_response.create(**kwargs)
        parsed = await raw.parse()
        items = [dump(e) async for e in parsed] if stream else dump(parsed)
        return [type(raw).__name__, raw.status_code, raw.headers["content-type"], items]
    async with c.messages.with_streaming_response.create(**kwargs) as response:
        parsed = await response.parse()
        items = [dump(e) async for e in parsed] if stream else dump(parsed)
        return [type(response).__name__, response.status_code, items]


@pytest.mark.parametrize(
    ("access", "stream"),
    ANTHROPIC_ACCESS,
    ids=[f"{a}-{'stream' if s else 'call'}" for a, s in ANTHROPIC_ACCESS],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_anthropic(llm_server: FakeLLMServer, mode: str, access: str, stream: bool) -> None:
    pytest.importorskip("anthropic")
    answer = anthropic_stream(PIECES) if stream else anthropic_message(text=TEXT)
    llm_server.script(
        MESSAGES, answer, anthropic_stream(PIECES) if stream else anthropic_message(text=TEXT)
    )

    def run() -> Any:
        if mode == "sync":
            return run_anthropic_sync(llm_server, access, stream)
        return asyncio.run(run_anthropic_async(llm_server, access, stream))

    generation = compare(llm_server, run)
    start, end = generation["start"], generation["end"]
    assert start.name == "anthropic.messages"
    assert start.metadata["stream"] is stream
    assert end.output == TEXT
    assert end.metadata["finish_reason"] == "end_turn"
