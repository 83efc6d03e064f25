"""``FluxLoopClient``: file storage writes what ``instrument`` writes, into its own folder;
HTTP storage checks its collector settings (sending: tests/unit/test_shipping_client.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.sdk_helpers import fresh_sdk

import fluxloop
import pytest_fluxloop
from pytest_fluxloop import sdk
from pytest_fluxloop.records import Observation, TraceRecord
from pytest_fluxloop.redact import REDACTED
from pytest_fluxloop.sdk import settings, trace_context
from pytest_fluxloop.sdk.client import DEFAULT_OUTPUT_DIR, FluxLoopClient

SECRET = "sk-abcdefghijklmnopqrstuvwxyz0123"


@pytest.fixture(autouse=True)
def _clean_sdk_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No FLUXLOOP_* variables, an empty cwd, and the default config before and after."""
    fresh_sdk(monkeypatch, tmp_path)
    yield
    settings._config = None


@fluxloop.agent()
def support_agent(text: str) -> str:
    return lookup(text)


@fluxloop.tool()
def lookup(text: str) -> str:
    return f"found {text}"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_file_storage_writes_traces_and_observations(tmp_path: Path) -> None:
    out = tmp_path / "store"
    client = FluxLoopClient(storage="file", output_dir=out)
    with client.trace("checkout", user_id="u1", metadata={"api_key": SECRET}) as run:
        support_agent(f"order {SECRET}")
    assert run.mode == "trace"
    assert run.files == (out / "traces.jsonl", out / "observations.jsonl")
    assert client.traces_written == 1
    (trace,) = lines(out / "traces.jsonl")
    observations = lines(out / "observations.jsonl")
    record = TraceRecord.model_validate(trace)
    assert record.trace_id == run.trace_id
    assert record.case_id == "checkout"
    assert record.status == "success"
    assert trace["metadata"]["user_id"] == "u1"
    assert trace["metadata"]["api_key"] == REDACTED
    assert [(o["type"], o["name"], o["kind"]) for o in observations] == [
        ("span_start", "support_agent", "agent"),
        ("span_start", "lookup", "tool"),
        ("span_end", "lookup", "tool"),
        ("span_end", "support_agent", "agent"),
    ]
    for obs in observations:
        Observation.model_validate(obs)
    assert trace["observations"] == observations
    assert SECRET not in (out / "observations.jsonl").read_text()
    assert SECRET not in (out / "traces.jsonl").read_text()


def test_file_storage_lines_have_the_shape_instrument_writes(tmp_path: Path) -> None:
    fluxloop.configure(offline_store_dir=tmp_path / "instrument")
    with fluxloop.instrument("run"):
        support_agent("x")
    with FluxLoopClient(output_dir=tmp_path / "client") as client, client.trace("run"):
        support_agent("x")
    for name in ("traces.jsonl", "observations.jsonl"):
        ours = lines(tmp_path / "client" / name)
        theirs = lines(tmp_path / "instrument" / name)
        assert [sorted(line) for line in ours] == [sorted(line) for line in theirs]
    assert lines(tmp_path / "client" / "traces.jsonl")[0]["metadata"] == {
        "source": "instrument",
        "name": "run",
    }


def test_each_trace_is_appended_when_its_block_ends(tmp_path: Path) -> None:
    client = FluxLoopClient(output_dir=tmp_path)
    with client.trace("one"):
        support_agent("1")
        assert not (tmp_path / "traces.jsonl").exists()
    with pytest.raises(ZeroDivisionError), client.trace("two", type="chain"):
        _ = 1 / 0
    traces = lines(tmp_path / "traces.jsonl")
    assert [(t["case_id"], t["status"]) for t in traces] == [("one", "success"), ("two", "error")]
    assert traces[1]["error"]["type"] == "ZeroDivisionError"
    assert traces[1]["metadata"]["type"] == "chain"
    assert client.traces_written == 2


def test_async_with_client_trace(tmp_path: Path) -> None:
    @fluxloop.agent()
    async def answer(text: str) -> str:
        return text

    client = FluxLoopClient(output_dir=tmp_path)

    async def main() -> None:
        async with client.trace("async-run"):
            await answer("hi")

    asyncio.run(main())
    assert [o["type"] for o in lines(tmp_path / "observations.jsonl")] == [
        "span_start",
        "span_end",
    ]


def test_inside_a_case_a_client_trace_is_a_span_and_writes_nothing(tmp_path: Path) -> None:
    client = FluxLoopClient(output_dir=tmp_path / "store")
    with trace_context("case") as ctx, client.trace("step", type="tool") as run:
        support_agent("x")
    assert run.mode == "span"
    assert ctx.observations[0].name == "step" and ctx.observations[0].kind == "tool"
    assert not (tmp_path / "store").exists()
    assert client.traces_written == 0


def test_a_stream_left_open_ends_abandoned_with_its_trace(tmp_path: Path) -> None:
    @fluxloop.tool()
    def stream() -> Iterator[int]:
        yield from range(10)

    client = FluxLoopClient(output_dir=tmp_path)
    with client.trace("reader"):
        reader = stream()
        assert next(reader) == 0
    end = lines(tmp_path / "observations.jsonl")[-1]
    assert end["type"] == "span_end"
    assert end["metadata"] == {"items": 1, "abandoned": True}
    assert list(reader) == list(range(1, 10))  # the stream itself still works


def test_default_folder_is_the_configured_one_then_a_fixed_name(tmp_path: Path) -> None:
    fluxloop.configure(offline_store_dir="configured")
    assert FluxLoopClient().output_dir == tmp_path / "configured"
    fluxloop.reset_config()
    client = FluxLoopClient(storage="file")
    assert client.output_dir == tmp_path / DEFAULT_OUTPUT_DIR
    (tmp_path / "elsewhere").mkdir()
    os.chdir(tmp_path / "elsewhere")  # resolved at construction: the files stay put
    with client.trace("run"):
        support_agent("x")
    assert (tmp_path / DEFAULT_OUTPUT_DIR / "traces.jsonl").exists()


def test_close_refuses_new_traces_and_a_block_open_at_close_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = FluxLoopClient(output_dir=tmp_path)
    block = client.trace("late")
    with block:
        client.flush()
        client.close()
        client.close()  # idempotent
    assert client.closed
    assert block.files is None
    assert "trace 'late' not written" in caplog.text
    with pytest.raises(RuntimeError, match="closed"):
        client.trace("after")
    with pytest.raises(RuntimeError, match="closed"):
        client.write(block.record())
    with FluxLoopClient(output_dir=tmp_path) as other:
        pass
    assert other.closed


def test_a_write_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    client = FluxLoopClient(output_dir=blocker)
    with caplog.at_level(logging.WARNING), client.trace("run") as run:
        support_agent("x")
    assert run.status == "success" and run.files is None
    assert "trace 'run' not written" in caplog.text
    assert client.traces_written == 0
    with pytest.raises(OSError):
        client.write(run.record())


def test_concurrent_traces_write_whole_lines(tmp_path: Path) -> None:
    client = FluxLoopClient(output_dir=tmp_path)

    def many(prefix: str) -> None:
        for i in range(25):
            with client.trace(f"{prefix}{i}"):
                support_agent("x" * 2000)

    threads = [threading.Thread(target=many, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    traces = lines(tmp_path / "traces.jsonl")
    observations = lines(tmp_path / "observations.jsonl")
    assert len(traces) == 100 and len(observations) == 400
    assert client.traces_written == 100
    by_trace: dict[str, int] = {}
    for obs in observations:
        by_trace[obs["trace_id"]] = by_trace.get(obs["trace_id"], 0) + 1
    assert by_trace == {t["trace_id"]: 4 for t in traces}


def test_disabled_sdk_records_and_writes_nothing(tmp_path: Path) -> None:
    fluxloop.configure(enabled=False)
    client = FluxLoopClient(output_dir=tmp_path / "store")
    with client.trace("off") as run:
        support_agent("x")
    assert run.mode == "off"
    assert not (tmp_path / "store").exists()


# --------------------------------------------------------------------------- storage values


@pytest.mark.parametrize("url", ["http://localhost:8000", "https://collector.example.com/"])
def test_http_storage_sends_to_the_collector_url(url: str, tmp_path: Path) -> None:
    # Sending itself is tested against a real server in tests/unit/test_shipping_client.py.
    token = "client-token-123456"
    client = FluxLoopClient(storage="http", collector_url=url, api_key=token, output_dir=tmp_path)
    try:
        assert client.storage == "http"
        assert client.collector_url == url.rstrip("/")
        assert token not in repr(client)
    finally:
        client.close(timeout=0)


def test_http_storage_takes_the_configured_collector_url(tmp_path: Path) -> None:
    fluxloop.configure(collector_url="http://127.0.0.1:9")
    client = FluxLoopClient(storage="http", output_dir=tmp_path)
    client.close(timeout=0)
    assert client.collector_url == "http://127.0.0.1:9"


def test_http_storage_refuses_plain_http_to_another_host() -> None:
    fluxloop.configure(collector_url="http://collector:9000")
    with pytest.raises(ValueError, match="allow_insecure_http=True"):
        FluxLoopClient(storage="http")


@pytest.mark.parametrize(
    "url", ["localhost:8000", "ftp://host/x", "http://", "not a url", "http://[::1"]
)
def test_http_storage_needs_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="collector_url must be an http:// or https:// URL"):
        FluxLoopClient(storage="http", collector_url=url)


def test_http_storage_without_any_url() -> None:
    with pytest.raises(ValueError, match="needs collector_url"):
        FluxLoopClient(storage="http")


@pytest.mark.parametrize("storage", ["s3", "File", "", "http://localhost:8000"])
def test_unknown_storage_names_the_allowed_values(storage: str) -> None:
    with pytest.raises(ValueError) as info:
        FluxLoopClient(storage=storage)
    assert "'file', 'http'" in str(info.value)
    assert repr(storage) in str(info.value)


def test_collector_settings_with_file_storage_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='for storage="http"'):
        FluxLoopClient(storage="file", collector_url="http://localhost:8000")
    with pytest.raises(ValueError, match='for storage="http"'):
        FluxLoopClient(storage="file", allow_insecure_http=True)


def test_client_is_exported_everywhere() -> None:
    assert fluxloop.FluxLoopClient is FluxLoopClient
    assert pytest_fluxloop.FluxLoopClient is FluxLoopClient
    assert sdk.FluxLoopClient is FluxLoopClient
    for module in (sdk, pytest_fluxloop, fluxloop):
        assert "FluxLoopClient" in module.__all__


def test_a_production_trace_sums_its_generations_token_usage(tmp_path: Path) -> None:
    from pytest_fluxloop.sdk.context import current_trace
    from pytest_fluxloop.sdk.generation import Generation, token_counts

    client = FluxLoopClient(storage="file", output_dir=tmp_path)
    with client.trace("request"):
        gen = Generation(current_trace(), "p.chat", provider="p", model="m")  # type: ignore[arg-type]
        gen.finish(output="ok", usage=token_counts(input_tokens=5, output_tokens=2))
    client.close()
    line = json.loads((tmp_path / "traces.jsonl").read_text("utf-8").splitlines()[0])
    assert line["token_usage"]["agent"]["total_tokens"] == 7
