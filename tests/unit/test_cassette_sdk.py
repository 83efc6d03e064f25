"""Cassettes at the SDKs' request path, with the real ``openai`` and ``anthropic`` clients and
servers on 127.0.0.1 (``pytest_fluxloop.integrations.cassette_tape``).

Each round trip records a call with a tape current, writes the cassette and reads it back,
then replays it with a fresh tape twice: once with the server still running (it must receive
nothing) and once after the server is gone. What the SDK returns on replay must equal what it
returned live. Nothing of the clients is patched.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from support.capture_helpers import generations, only
from support.cassette_helpers import tape
from support.echo_llm import EchoServer, running_echo_server
from support.llm_server import (
    CHAT,
    FakeLLMServer,
    Scripted,
    chat_completion,
    chat_stream,
    chat_stream_parts,
    llm_server,
    openai_error,
)

from pytest_fluxloop.cassettes.errors import CassetteMiss
from pytest_fluxloop.cassettes.files import read_cassette, write_cassette
from pytest_fluxloop.cassettes.model import Cassette
from pytest_fluxloop.cassettes.session import CaseTape, Mode, current_tape
from pytest_fluxloop.integrations import install, uninstall
from pytest_fluxloop.redact import Redactor
from pytest_fluxloop.sdk.context import CaptureSettings, acting_as, current_turn, trace_context

__all__ = ["llm_server"]  # the fixture, imported for pytest

REDACTOR = Redactor(include_env=False)
VERSIONS = {"pytest_fluxloop": "test"}
QUESTION = [{"role": "user", "content": "where is my order"}]


@pytest.fixture(autouse=True)
def capture() -> Iterator[None]:
    """Each test starts with the SDKs freshly hooked, and leaves them unhooked."""
    uninstall()
    assert install() == []
    yield
    uninstall()


@contextmanager
def on(t: CaseTape) -> Iterator[CaseTape]:
    token = current_tape.set(t)
    try:
        yield t
    finally:
        current_tape.reset(token)


def oai(url: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", **{"max_retries": 0, **options})


def aoai(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)


def ant(url: str, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="sk-ant-test", **{"max_retries": 0, **options})


def aant(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-test", max_retries=0)


Call = Callable[[str], Any]


def record(path: Path, call: Call, url: str, mode: Mode = "record") -> tuple[Any, Cassette]:
    """``call(url)`` on a recording tape; the cassette written to ``path`` and read back."""
    t = tape(mode, path)
    with on(t):
        live = call(url)
    assert t.misses == [] and t.failures == []
    cassette = t.result(VERSIONS)
    assert cassette is not None
    write_cassette(path, cassette, REDACTOR)
    return live, read_cassette(path)


def replay(path: Path, loaded: Cassette, call: Call, url: str) -> tuple[Any, CaseTape]:
    """``call(url)`` on a fresh replaying tape of ``loaded``."""
    t = tape("replay", path, loaded)
    with on(t):
        result = call(url)
    assert t.misses == [] and t.failures == []
    return result, t


def closed_url() -> str:
    """The URL of a port on 127.0.0.1 nobody listens on (a connection is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoServer]:
    """One echo server for the module (stopping one takes half a second)."""
    with running_echo_server() as server:
        yield server


@pytest.fixture
def echo(echo_server: EchoServer) -> Iterator[EchoServer]:
    """The module's echo server, with no request recorded yet."""
    echo_server.requests.clear()
    yield echo_server


def round_trip(tmp_path: Path, server: EchoServer, call: Call) -> tuple[Any, Cassette]:
    """Record ``call``, replay it with the server up (it receives nothing) and with no
    server at all; every replay returns what the live call did. Returns the live result and
    the cassette."""
    path = tmp_path / "case.json"
    live, loaded = record(path, call, server.url)
    served = len(server.requests)
    assert served == len(loaded.interactions) > 0
    again, t = replay(path, loaded, call, server.url)
    assert len(server.requests) == served  # replay never reaches the server
    assert again == live
    assert t.replayed == len(loaded.interactions) and t.unused() == []
    offline, _ = replay(path, loaded, call, closed_url())  # no server: nothing to reach
    assert offline == live
    return live, loaded


# --------------------------------------------------------------------------- openai


def test_chat_completion(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        reply = oai(url).chat.completions.create(model="gpt-test", messages=QUESTION)
        return reply.model_dump()

    live, loaded = round_trip(tmp_path, echo, call)
    assert live["choices"][0]["message"]["content"] == "echo: where is my order"
    assert live["choices"][0]["finish_reason"] == "stop"
    assert live["usage"]["prompt_tokens"] == 4 and live["usage"]["completion_tokens"] == 5
    (recorded,) = loaded.interactions
    assert (recorded.provider, recorded.endpoint, recorded.position) == (
        "openai",
        "/chat/completions",
        "agent/0/0",
    )
    assert recorded.request == {"model": "gpt-test", "messages": QUESTION}
    assert recorded.response["status"] == 200
    assert recorded.response["content_type"] == "application/json"
    assert (
        recorded.response["json"]["choices"][0]["message"]["content"]
        == live["choices"][0]["message"]["content"]
    )


def test_chat_stream_with_usage(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        stream = oai(url).chat.completions.create(
            model="gpt-test",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
        assert isinstance(stream, openai.Stream)
        return [chunk.model_dump() for chunk in stream]

    live, loaded = round_trip(tmp_path, echo, call)
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in live if c["choices"])
    assert text == "echo: where is my order"
    assert [c["choices"][0]["finish_reason"] for c in live if c["choices"]][-1] == "stop"
    assert live[-1]["choices"] == [] and live[-1]["usage"]["total_tokens"] == 9
    response = loaded.interactions[0].response
    # Whole, although the SDK stops reading at [DONE] and closes the body.
    assert response["content_type"] == "text/event-stream" and response["complete"] is True
    assert response["events"][-1] == {"data": "[DONE]"}
    assert len(response["events"]) == len(live) + 1
    assert [e["json"] for e in response["events"][:-1]][-1]["usage"]["total_tokens"] == 9


def test_responses_api(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        reply = oai(url).responses.create(model="gpt-test", input="track it", instructions="Hi")
        return reply.output_text, reply.model_dump()

    (text, _), loaded = round_trip(tmp_path, echo, call)
    assert text == "echo: track it"
    assert loaded.interactions[0].endpoint == "/responses"
    assert loaded.interactions[0].request == {
        "model": "gpt-test",
        "input": "track it",
        "instructions": "Hi",
    }


def test_responses_stream(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        stream = oai(url).responses.create(model="gpt-test", input="stream it", stream=True)
        return [event.model_dump() for event in stream]

    live, _ = round_trip(tmp_path, echo, call)
    assert live[-1]["type"] == "response.completed"
    assert live[-1]["response"]["usage"]["output_tokens"] == 3


def test_with_raw_response(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        raw = oai(url).chat.completions.with_raw_response.create(
            model="gpt-test", messages=QUESTION
        )
        return raw.status_code, raw.headers["content-type"], raw.parse().model_dump()

    (status, content_type, parsed), _ = round_trip(tmp_path, echo, call)
    assert (status, content_type) == (200, "application/json")
    assert parsed["choices"][0]["message"]["content"] == "echo: where is my order"


def test_with_streaming_response(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        client = oai(url)
        with client.chat.completions.with_streaming_response.create(
            model="gpt-test", messages=QUESTION
        ) as response:
            return response.status_code, response.parse().model_dump()

    (status, parsed), loaded = round_trip(tmp_path, echo, call)
    assert status == 200
    assert parsed["choices"][0]["message"]["content"] == "echo: where is my order"
    assert "json" in loaded.interactions[0].response  # read as a stream, kept as JSON


def test_async_create_and_stream(tmp_path: Path, echo: EchoServer) -> None:
    async def agent(url: str) -> Any:
        client = aoai(url)
        reply = await client.chat.completions.create(model="gpt-test", messages=QUESTION)
        stream = await client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "and now streamed"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert isinstance(stream, openai.AsyncStream)
        async with stream:
            chunks = [chunk.model_dump() async for chunk in stream]
        return reply.model_dump(), chunks

    (reply, chunks), loaded = round_trip(tmp_path, echo, lambda url: asyncio.run(agent(url)))
    assert reply["choices"][0]["message"]["content"] == "echo: where is my order"
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"]) == (
        "echo: and now streamed"
    )
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert [i.position for i in loaded.interactions] == ["agent/0/0", "agent/0/1"]
    assert loaded.interactions[1].response["complete"] is True


# --------------------------------------------------------------------------- anthropic


def test_anthropic_message(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        message = ant(url).messages.create(
            model="claude-test", max_tokens=64, system="Be kind.", messages=QUESTION
        )
        return message.model_dump()

    live, loaded = round_trip(tmp_path, echo, call)
    assert live["content"][0]["text"] == "echo: where is my order"
    assert live["stop_reason"] == "end_turn"
    assert live["usage"]["input_tokens"] == 6 and live["usage"]["output_tokens"] == 5
    (recorded,) = loaded.interactions
    assert (recorded.provider, recorded.endpoint) == ("anthropic", "/v1/messages")
    assert loaded.models() == {"agent": ["claude-test"]}


def test_anthropic_stream_helper(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        with ant(url).messages.stream(
            model="claude-test", max_tokens=64, messages=QUESTION
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        return text, final.model_dump()

    (text, final), _ = round_trip(tmp_path, echo, call)
    assert text == "echo: where is my order"
    assert final["usage"]["output_tokens"] == 5 and final["stop_reason"] == "end_turn"


def test_anthropic_stream_events(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> Any:
        events = ant(url).messages.create(
            model="claude-test", max_tokens=64, messages=QUESTION, stream=True
        )
        return [event.model_dump() for event in events]

    live, loaded = round_trip(tmp_path, echo, call)
    assert [e["type"] for e in live] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    response = loaded.interactions[0].response
    assert [e["event"] for e in response["events"]] == [e["type"] for e in live]
    assert response["complete"] is True


def test_anthropic_async_stream_helper(tmp_path: Path, echo: EchoServer) -> None:
    async def agent(url: str) -> Any:
        async with aant(url).messages.stream(
            model="claude-test", max_tokens=64, messages=QUESTION
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
        return text, final.model_dump()

    (text, final), _ = round_trip(tmp_path, echo, lambda url: asyncio.run(agent(url)))
    assert text == "echo: where is my order"
    assert final["usage"]["input_tokens"] == 4


# --------------------------------------------------------------------------- misses


def _recorded_chat(path: Path, url: str) -> Cassette:
    def call(u: str) -> Any:
        return oai(u).chat.completions.create(model="gpt-test", messages=QUESTION)

    return record(path, call, url)[1]


def test_a_miss_is_raised_before_any_request_and_without_retries(
    tmp_path: Path, echo: EchoServer
) -> None:
    path = tmp_path / "case.json"
    loaded = _recorded_chat(path, echo.url)
    served = len(echo.requests)
    t = tape("replay", path, loaded)
    changed = [{"role": "user", "content": "where is my parcel"}]
    client = oai(echo.url, max_retries=2)
    started = time.monotonic()
    with on(t), pytest.raises(CassetteMiss) as info:
        client.chat.completions.create(model="gpt-test", messages=changed)
    with on(t), pytest.raises(CassetteMiss):
        client.chat.completions.create(model="gpt-test", messages=changed, stream=True)
    assert time.monotonic() - started < 5  # no retry sleeps (0.5 s, 1 s ... each)
    assert len(echo.requests) == served
    message = str(info.value)
    assert str(path) in message
    assert '-      "content": "where is my order",' in message
    assert '+      "content": "where is my parcel",' in message
    assert len(t.misses) == 2 and t.replayed == 0


def test_anthropic_miss_is_raised_before_any_request(tmp_path: Path, echo: EchoServer) -> None:
    t = tape("replay", tmp_path / "case.json", None)
    client = ant(echo.url, max_retries=2)
    started = time.monotonic()
    with on(t), pytest.raises(CassetteMiss, match="Nothing was recorded"):
        client.messages.create(model="claude-test", max_tokens=8, messages=QUESTION)
    with (
        on(t),
        pytest.raises(CassetteMiss),
        client.messages.stream(model="claude-test", max_tokens=8, messages=QUESTION) as stream,
    ):
        list(stream.text_stream)
    assert time.monotonic() - started < 5
    assert echo.requests == []


def test_role_and_turn_are_part_of_the_match(tmp_path: Path, echo: EchoServer) -> None:
    path = tmp_path / "case.json"
    token = current_turn.set(1)
    try:
        loaded = _recorded_chat(path, echo.url)
        client = oai(echo.url)

        def ask() -> Any:
            return client.chat.completions.create(model="gpt-test", messages=QUESTION)

        with (
            acting_as("judge"),
            on(tape("replay", path, loaded)),
            pytest.raises(CassetteMiss) as info,
        ):
            ask()
        assert "judge call #1 of turn 1" in str(info.value)
        with on(tape("replay", path, loaded)):
            current_turn.set(2)
            with pytest.raises(CassetteMiss, match="agent call #1 of turn 2"):
                ask()
            current_turn.set(1)
            assert ask().choices[0].message.content == "echo: where is my order"
    finally:
        current_turn.reset(token)
    assert len(echo.requests) == 1
    assert loaded.interactions[0].position == "agent/1/0"


def test_new_mode_replays_known_calls_and_records_the_rest(
    tmp_path: Path, echo: EchoServer
) -> None:
    path = tmp_path / "case.json"
    loaded = _recorded_chat(path, echo.url)
    t = tape("new", path, loaded)
    client = oai(echo.url)
    with on(t):
        client.chat.completions.create(model="gpt-test", messages=QUESTION)
        fresh = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "something new"}]
        )
    assert fresh.choices[0].message.content == "echo: something new"
    assert len(echo.requests) == 2  # the recording, and the new call only
    result = t.result(VERSIONS)
    assert result is not None
    assert [i.position for i in result.interactions] == ["agent/0/0", "agent/0/1"]
    assert t.replayed == 1


# --------------------------------------------------------------------------- what is recorded


def test_a_stream_closed_early_is_recorded_incomplete_and_replays(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    held = chat_stream(["one", " two", " three"], hold_after=2)
    llm_server.script(CHAT, held)
    path = tmp_path / "case.json"

    def ask(url: str) -> Any:
        return oai(url).chat.completions.create(model="gpt-test", messages=QUESTION, stream=True)

    t = tape("record", path)
    try:
        with on(t):
            stream = ask(llm_server.url)
            first = [next(stream).model_dump(), next(stream).model_dump()]
            stream.close()
    finally:
        held.resume.set()
    cassette = t.result(VERSIONS)
    assert cassette is not None
    response = cassette.interactions[0].response
    assert response["complete"] is False
    assert len(response["events"]) == 2  # what was read, no more
    assert response["events"][1]["json"]["choices"][0]["delta"]["content"] == "one"
    write_cassette(path, cassette, REDACTOR)
    served = len(llm_server.requests())
    with on(tape("replay", path, read_cassette(path))):
        replayed = [chunk.model_dump() for chunk in ask(llm_server.url)]
    assert replayed == first
    assert first[1]["choices"][0]["delta"]["content"] == "one"
    assert len(llm_server.requests()) == served


def test_only_the_successful_attempt_is_recorded(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    llm_server.script(
        CHAT,
        openai_error(500, "overloaded", type="server_error", headers={"retry-after-ms": "1"}),
        chat_completion("after a retry"),
    )
    path = tmp_path / "case.json"

    def ask(url: str) -> Any:
        client = oai(url, max_retries=1)
        return client.chat.completions.create(model="gpt-test", messages=QUESTION).model_dump()

    live, loaded = record(path, ask, llm_server.url)
    assert live["choices"][0]["message"]["content"] == "after a retry"
    assert len(llm_server.requests(CHAT)) == 2
    (recorded,) = loaded.interactions
    assert recorded.response["status"] == 200 and recorded.position == "agent/0/0"
    assert "overloaded" not in path.read_text(encoding="utf-8")
    again, _ = replay(path, loaded, ask, llm_server.url)
    assert again == live
    assert len(llm_server.requests(CHAT)) == 2


def test_an_error_answer_records_nothing(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, openai_error(400, "bad request"))
    t = tape("record", tmp_path / "case.json")
    with on(t), pytest.raises(openai.BadRequestError):
        oai(llm_server.url).chat.completions.create(model="gpt-test", messages=QUESTION)
    assert t.result(VERSIONS) is None


def test_a_gzipped_stream_is_recorded_decoded(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    body = b"".join(chat_stream_parts(["zip", "ped"], usage={"prompt_tokens": 1}))
    llm_server.script(
        CHAT, Scripted(parts=[gzip.compress(body)], headers={"Content-Encoding": "gzip"})
    )
    path = tmp_path / "case.json"

    def ask(url: str) -> Any:
        stream = oai(url).chat.completions.create(model="gpt-test", messages=QUESTION, stream=True)
        return [chunk.model_dump(exclude_unset=True) for chunk in stream]

    live, loaded = record(path, ask, llm_server.url)
    events = loaded.interactions[0].response["events"]
    assert events[-1] == {"data": "[DONE]"}
    assert events[1]["json"]["choices"][0]["delta"]["content"] == "zip"
    again, _ = replay(path, loaded, ask, llm_server.url)
    assert again == live
    assert len(llm_server.requests(CHAT)) == 1


# --------------------------------------------------------------------------- capture on replay


def _captured(call: Call, url: str, t: CaseTape) -> list[tuple[Any, ...]]:
    with trace_context("t1", capture=CaptureSettings()) as ctx, on(t):
        call(url)
    return [
        (
            start.name,
            start.input,
            end.output,
            end.metadata["usage"],
            end.metadata["finish_reason"],
            end.metadata["model"],
            end.metadata["status"],
            end.error,
        )
        for start, end in generations(ctx)
    ]


def test_replayed_calls_are_captured_as_live(tmp_path: Path, echo: EchoServer) -> None:
    def call(url: str) -> None:
        client = oai(url)
        client.chat.completions.create(model="gpt-test", messages=QUESTION)
        for _ in client.chat.completions.create(
            model="gpt-test",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        ):
            pass
        with ant(url).messages.stream(
            model="claude-test", max_tokens=64, messages=QUESTION
        ) as stream:
            stream.get_final_message()

    path = tmp_path / "case.json"
    t = tape("record", path)
    live = _captured(call, echo.url, t)
    cassette = t.result(VERSIONS)
    assert cassette is not None
    write_cassette(path, cassette, REDACTOR)
    served = len(echo.requests)
    replayed = _captured(call, echo.url, tape("replay", path, read_cassette(path)))
    assert len(echo.requests) == served
    assert replayed == live
    assert [row[2] for row in live] == ["echo: where is my order"] * 3
    assert live[0][3]["input_tokens"] == 4 and live[1][3]["output_tokens"] == 5
    assert all(row[6] == "ok" for row in live)


def test_a_miss_is_captured_as_the_generation_error(tmp_path: Path, echo: EchoServer) -> None:
    with (
        trace_context("t1", capture=CaptureSettings()) as ctx,
        on(tape("replay", tmp_path / "case.json")),
        pytest.raises(CassetteMiss),
    ):
        oai(echo.url).chat.completions.create(model="gpt-test", messages=QUESTION)
    _, end = only(ctx)
    assert end.metadata["status"] == "error"
    assert end.error is not None and end.error.startswith("CassetteMiss")
    assert echo.requests == []


def test_no_tape_no_effect(echo: EchoServer) -> None:
    reply = oai(echo.url).chat.completions.create(model="gpt-test", messages=QUESTION)
    assert reply.choices[0].message.content == "echo: where is my order"
    assert len(echo.requests) == 1
