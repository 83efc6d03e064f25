"""The spool and the push: batches a down collector did not take are kept whole on disk,
and pushed later every trace is stored exactly once; pushing again changes nothing."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from support.collector_stub import CollectorStub, Status, free_port

from pytest_fluxloop.shipping.push import push_spool
from pytest_fluxloop.shipping.sender import BatchSender, SenderOptions
from pytest_fluxloop.shipping.spool import (
    SPOOL_DIR,
    Spool,
    read_spooled,
    spool_dir,
    spooled_files,
)
from pytest_fluxloop.shipping.target import collector_target
from pytest_fluxloop.shipping.wire import BatchError, encode_batch, make_batch, trace_items

TOKEN = "push-token-0123456789"
FAST = SenderOptions(
    linger_seconds=0.02,
    backoff_seconds=0.02,
    backoff_max_seconds=0.05,
    timeout_seconds=2.0,
    max_attempts=2,
    max_batch_items=7,
)


def items(n: int) -> list[dict[str, object]]:
    return trace_items(
        {"trace_id": f"t{n}", "observations": [{"trace_id": f"t{n}", "name": "a"}] * 2}
    )


def spool_while_down(folder: Path, port: int, traces: int) -> None:
    """Send ``traces`` traces to a collector that is not listening on ``port``."""
    target = collector_target(f"http://127.0.0.1:{port}", token=TOKEN)
    sender = BatchSender(target, {"experiment": "x"}, Spool(lambda: folder), FAST)
    sender.start()
    for n in range(traces):
        sender.submit(items(n))
    stats = sender.close()
    assert stats.items_sent == 0
    assert stats.spooled_items == traces * 3


def test_a_spooled_batch_is_the_batch_as_sent(tmp_path: Path) -> None:
    batch = make_batch(items(1), {"experiment": "x"})
    path = Spool(lambda: tmp_path).write(batch["batch_id"], encode_batch(batch))
    assert path == tmp_path / SPOOL_DIR / f"{batch['batch_id']}.json.gz"
    body, read = read_spooled(path)
    assert read == batch
    assert gzip.decompress(body)
    # Atomic: no temp file is left next to it.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert spooled_files(tmp_path) == [path] == spooled_files(tmp_path / SPOOL_DIR)
    assert spool_dir(tmp_path / SPOOL_DIR) == tmp_path / SPOOL_DIR


def test_a_spool_without_a_folder_fails_as_an_oserror() -> None:
    with pytest.raises(OSError, match="not open yet"):
        Spool(lambda: None).write("b1", b"x")


def test_a_file_that_is_not_a_batch_is_told_apart(tmp_path: Path) -> None:
    (tmp_path / "junk.json.gz").write_bytes(b"not gzip")
    with pytest.raises(BatchError, match="not a gzip file"):
        read_spooled(tmp_path / "junk.json.gz")
    (tmp_path / "other.json.gz").write_bytes(gzip.compress(b'{"a": 1}'))
    with pytest.raises(BatchError, match="not a FluxLoop batch"):
        read_spooled(tmp_path / "other.json.gz")


def test_push_after_the_collector_comes_up_stores_every_trace_once(tmp_path: Path) -> None:
    port = free_port()
    spool_while_down(tmp_path, port, traces=10)
    found = len(spooled_files(tmp_path))
    assert found >= 4  # 30 items, 7 per batch
    with CollectorStub(token=TOKEN, port=port) as stub:
        target = collector_target(stub.url, token=TOKEN)
        result = push_spool(tmp_path, target, FAST)
        assert (result.found, result.sent, result.left) == (found, found, 0)
        assert (result.items_sent, result.stored, result.duplicate) == (30, 30, 0)
        assert stub.ids("trace") == {f"t{n}" for n in range(10)}
        assert stub.count() == 30
        assert spooled_files(tmp_path) == []
        again = push_spool(tmp_path, target, FAST)
        assert (again.found, again.sent, len(stub.posts())) == (0, 0, found)


def test_a_batch_that_did_arrive_is_harmless_to_push(tmp_path: Path) -> None:
    batch = make_batch(items(1), {"experiment": "x"})
    Spool(lambda: tmp_path).write(batch["batch_id"], encode_batch(batch))
    with CollectorStub(token=TOKEN) as stub:
        stub.store(batch)  # it arrived, but the answer was lost
        result = push_spool(tmp_path, collector_target(stub.url, token=TOKEN), FAST)
        assert (result.sent, result.stored, result.duplicate, result.left) == (1, 0, 3, 0)
        assert stub.count() == 3


def test_a_refused_token_leaves_every_batch(tmp_path: Path) -> None:
    port = free_port()
    spool_while_down(tmp_path, port, traces=3)
    found = len(spooled_files(tmp_path))
    with CollectorStub(token="another-token-999999", port=port) as stub:
        result = push_spool(tmp_path, collector_target(stub.url, token=TOKEN), FAST)
        assert len(stub.posts()) == 1  # it stops at the first 401
    assert (result.sent, result.left) == (0, found)
    assert any("refused the token" in e for e in result.errors)
    assert TOKEN not in " ".join(result.errors)
    assert len(spooled_files(tmp_path)) == found


def test_an_unreadable_file_is_left_and_the_others_are_sent(tmp_path: Path) -> None:
    good = make_batch(items(1), {"experiment": "x"})
    spool = Spool(lambda: tmp_path)
    spool.write(good["batch_id"], encode_batch(good))
    (tmp_path / SPOOL_DIR / "broken.json.gz").write_bytes(b"\x1f\x8b broken")
    with CollectorStub(token=TOKEN) as stub:
        result = push_spool(tmp_path, collector_target(stub.url, token=TOKEN), FAST)
        assert stub.count() == 3
    assert (result.found, result.sent, result.left) == (2, 1, 1)
    assert any("broken.json.gz: not a spooled batch" in e for e in result.errors)
    assert [p.name for p in spooled_files(tmp_path)] == ["broken.json.gz"]


def test_a_batch_the_collector_refuses_stays(tmp_path: Path) -> None:
    batch = make_batch(items(1), {"experiment": "x"})
    Spool(lambda: tmp_path).write(batch["batch_id"], encode_batch(batch))
    with CollectorStub(token=TOKEN) as stub:
        stub.script(Status(400, body=b'{"error": "fluxloop_batch 1 is not supported"}'))
        result = push_spool(tmp_path, collector_target(stub.url, token=TOKEN), FAST)
    assert (result.sent, result.left) == (0, 1)
    assert result.errors == [f"{stub.url}: HTTP 400: fluxloop_batch 1 is not supported"]
