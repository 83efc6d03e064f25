"""``FluxLoopClient(storage="http")`` end to end: traces of a running application reach a
real HTTP collector on 127.0.0.1 as file storage would have written them; a collector that
is down costs the application nothing and leaves the traces in the spool for a push."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.collector_stub import CollectorStub, free_port
from support.sdk_helpers import fresh_sdk

import fluxloop
from pytest_fluxloop.redact import REDACTED
from pytest_fluxloop.sdk import settings
from pytest_fluxloop.sdk.client import FluxLoopClient
from pytest_fluxloop.shipping.push import push_spool
from pytest_fluxloop.shipping.spool import spooled_files
from pytest_fluxloop.shipping.target import TOKEN_ENV, collector_target

TOKEN = "client-token-0123456789"
SECRET = "sk-abcdefghijklmnopqrstuvwxyz0123"


@pytest.fixture(autouse=True)
def _clean_sdk_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    fresh_sdk(monkeypatch, tmp_path)
    # Batches go out fast: the default waits up to flush_interval (5 s) for more traces.
    fluxloop.configure(flush_interval=0.05)
    yield
    settings._config = None


@fluxloop.tool()
def lookup(text: str) -> str:
    return f"found {text}"


@fluxloop.agent()
def support_agent(text: str) -> str:
    return lookup(text)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_http_storage_sends_what_file_storage_writes(tmp_path: Path) -> None:
    with CollectorStub(token=TOKEN) as stub:
        client = FluxLoopClient(
            storage="http", collector_url=stub.url, api_key=TOKEN, output_dir=tmp_path / "spool"
        )
        files = FluxLoopClient(storage="file", output_dir=tmp_path / "files")
        for n in range(3):
            for store in (client, files):
                with store.trace(
                    f"checkout-{n}", trace_id=f"trace-{n}", metadata={"api_key": SECRET}
                ):
                    support_agent(f"order {n} {SECRET}")
        assert client.traces_written == 3
        assert client.flush(5) is True
        client.close()
        report = client.report()
    assert (report["traces_sent"], report["stored"], report["spooled_batches"]) == (3, 15, 0)
    assert report["url"] == stub.url
    sent = {i: stub.stored[("trace", i)] for i in stub.ids("trace")}
    written = {t["trace_id"]: t for t in lines(tmp_path / "files" / "traces.jsonl")}
    assert set(sent) == set(written) == {"trace-0", "trace-1", "trace-2"}
    for trace_id, trace in written.items():
        observations = trace.pop("observations")
        assert isinstance(observations, list)
        # The same shape (times and span ids differ: these are two runs of the agent).
        assert sorted(sent[trace_id]) == sorted(trace)
        assert sent[trace_id]["metadata"]["api_key"] == REDACTED
        assert [stub.stored[("observation", f"{trace_id}/{k}")]["name"] for k in range(4)] == [
            o["name"] for o in observations
        ]
    assert SECRET not in json.dumps(list(stub.stored.values()))
    assert not (tmp_path / "spool").exists()  # nothing needed spooling
    for post in stub.posts():
        assert post.headers["authorization"] == f"Bearer {TOKEN}"


def test_the_token_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with CollectorStub(token=TOKEN) as stub:
        client = FluxLoopClient(storage="http", collector_url=stub.url, output_dir=tmp_path)
        with client, client.trace("one"):
            support_agent("x")
        assert stub.count("trace") == 1


def test_a_down_collector_costs_nothing_and_push_sends_later(tmp_path: Path) -> None:
    port = free_port()
    client = FluxLoopClient(
        storage="http", collector_url=f"http://127.0.0.1:{port}", api_key=TOKEN, output_dir=tmp_path
    )
    started = time.monotonic()
    for n in range(20):
        with client.trace(f"case-{n}"):
            support_agent(str(n))
    assert time.monotonic() - started < 1.0  # the application never waited on the network
    client.close(timeout=2)
    report = client.report()
    assert report["traces_sent"] == 0
    assert report["spooled_traces"] == 20
    assert report["spool_folder"] == str(tmp_path / "collector_spool")
    assert TOKEN not in json.dumps(report)
    with CollectorStub(token=TOKEN, port=port) as stub:
        result = push_spool(tmp_path, collector_target(stub.url, token=TOKEN))
        assert result.left == 0
        assert stub.count("trace") == 20
    assert spooled_files(tmp_path) == []
    with pytest.raises(RuntimeError, match="closed"):
        client.trace("late")


def test_queued_traces_are_sent_when_the_program_exits(tmp_path: Path) -> None:
    """No close() at all: the interpreter's exit drains the queue (atexit)."""
    with CollectorStub() as stub:
        script = (
            "import fluxloop\n"
            "fluxloop.configure(flush_interval=30)\n"  # only the exit can send it in time
            f"client = fluxloop.FluxLoopClient(storage='http', collector_url='{stub.url}',"
            f" output_dir=r'{tmp_path}')\n"
            "with client.trace('at-exit'):\n"
            "    pass\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert stub.count("trace") == 1


def test_http_storage_loads_the_sender_only_when_used() -> None:
    code = (
        "import sys, fluxloop\n"
        "fluxloop.FluxLoopClient(storage='file')\n"
        "assert not [m for m in sys.modules if m.startswith('pytest_fluxloop.shipping')]\n"
        "c = fluxloop.FluxLoopClient(storage='http', collector_url='http://127.0.0.1:9')\n"
        "c.close(timeout=0)\n"
        "assert 'pytest_fluxloop.shipping.sender' in sys.modules\n"
        "heavy = [m for m in ('yaml', 'httpx', 'click', 'pytest') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
