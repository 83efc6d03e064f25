"""``fluxloop collector push DIR`` as a real CLI process against a real HTTP collector on
127.0.0.1, and ``fluxloop run experiment --collector-url`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli_helpers import describe, run_cli
from support.collector_stub import CollectorStub, free_port

from pytest_fluxloop.cli.scaffold import scaffold_project
from pytest_fluxloop.shipping.spool import Spool, spooled_files
from pytest_fluxloop.shipping.wire import encode_batch, make_batch, trace_items

TOKEN = "cli-push-token-0123456789"


def spool_batches(folder: Path, batches: int, traces_each: int = 2) -> int:
    """Write ``batches`` spooled batches into ``folder``; the number of items."""
    spool = Spool(lambda: folder)
    total = 0
    for b in range(batches):
        items = [
            item
            for n in range(traces_each)
            for item in trace_items(
                {"trace_id": f"b{b}t{n}", "observations": [{"trace_id": f"b{b}t{n}"}]}
            )
        ]
        batch = make_batch(items, {"experiment": "cli"})
        spool.write(batch["batch_id"], encode_batch(batch))
        total += len(items)
    return total


def test_push_sends_every_batch_once_and_deletes_it(tmp_path: Path) -> None:
    items = spool_batches(tmp_path, 3)
    with CollectorStub(token=TOKEN) as stub:
        env = {"FLUXLOOP_COLLECTOR_TOKEN": TOKEN}
        proc = run_cli("collector", "push", tmp_path, "--url", stub.url, cwd=tmp_path, env=env)
        assert proc.returncode == 0, describe(proc)
        assert stub.count() == items
        again = run_cli("collector", "push", tmp_path, "--url", stub.url, cwd=tmp_path, env=env)
        assert again.returncode == 0, describe(again)
        assert len(stub.posts()) == 3
    assert f"Pushing 3 spooled batch(es) from {tmp_path / 'collector_spool'}" in proc.stdout
    assert (
        f"Sent 3 batch(es), {items} items: {items} stored, 0 duplicate, 0 rejected" in proc.stdout
    )
    assert "0 batch(es) left" in proc.stdout
    assert "Nothing to push" in again.stdout
    assert TOKEN not in proc.stdout + proc.stderr


def test_push_to_a_collector_that_is_down_leaves_the_batches(tmp_path: Path) -> None:
    spool_batches(tmp_path, 2)
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("collector", "push", tmp_path / "collector_spool", "--url", url, cwd=tmp_path)
    assert proc.returncode == 1, describe(proc)
    assert "[WARN] FLUXLOOP_COLLECTOR_TOKEN is not set: sending without a token" in proc.stdout
    assert "Sent 0 batch(es)" in proc.stdout
    assert "2 batch(es) left" in proc.stdout
    assert f"Run `fluxloop collector push {tmp_path / 'collector_spool'}` again" in proc.stdout
    assert len(spooled_files(tmp_path)) == 2


def test_a_refused_token_is_said_and_nothing_is_deleted(tmp_path: Path) -> None:
    spool_batches(tmp_path, 2)
    with CollectorStub(token="the-right-token-77777") as stub:
        env = {"MY_COLLECTOR_KEY": TOKEN}
        proc = run_cli(
            "collector", "push", tmp_path, "--url", stub.url, "--token-env", "MY_COLLECTOR_KEY",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert stub.posts()[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert proc.returncode == 1, describe(proc)
    assert "refused the token (HTTP 401" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr
    assert len(spooled_files(tmp_path)) == 2


def test_push_needs_a_url_when_the_folder_records_none(tmp_path: Path) -> None:
    spool_batches(tmp_path, 1)
    proc = run_cli("collector", "push", tmp_path, cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert "give --url URL" in proc.stderr


def test_push_refuses_plain_http_to_another_host(tmp_path: Path) -> None:
    spool_batches(tmp_path, 1)
    env = {"FLUXLOOP_COLLECTOR_TOKEN": TOKEN}
    proc = run_cli(
        "collector", "push", tmp_path, "--url", "http://collector.example.com:8000",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 4, describe(proc)
    assert "--url 'http://collector.example.com:8000' is plain http://" in proc.stderr
    assert "--allow-insecure-http" in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr


def test_push_uses_the_url_the_run_recorded(tmp_path: Path) -> None:
    items = spool_batches(tmp_path, 1)
    with CollectorStub() as stub:
        (tmp_path / "summary.json").write_text(json.dumps({"collector": {"url": stub.url}}))
        proc = run_cli("collector", "push", tmp_path, cwd=tmp_path)
        assert proc.returncode == 0, describe(proc)
        assert stub.count() == items
    # Without summary.json: the config snapshot's project.collector_url.
    spool_batches(tmp_path, 1)
    (tmp_path / "summary.json").unlink()
    with CollectorStub() as stub:
        (tmp_path / "config.yaml").write_text(f"project:\n  collector_url: {stub.url}\n")
        proc = run_cli("collector", "push", tmp_path, cwd=tmp_path)
        assert proc.returncode == 0, describe(proc)
        assert stub.count() == items


def test_collector_help_lists_push(tmp_path: Path) -> None:
    proc = run_cli("collector", "--help", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert "push" in proc.stdout


@pytest.mark.slow
def test_run_experiment_with_collector_url(tmp_path: Path) -> None:
    scaffold_project(tmp_path / "fluxloop", "demo")
    with CollectorStub() as stub:
        proc = run_cli(
            "run", "experiment", "--project", "demo", "-y", "--collector-url", stub.url,
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, describe(proc)
        assert stub.count("trace") == 3
    assert f"[INFO] Collector: {stub.url} (traces are sent there too)" in proc.stdout
    assert f"collector {stub.url}: 3 traces sent" in proc.stdout
    (exp,) = sorted((tmp_path / "fluxloop" / "demo" / "experiments").glob("exp_*"))
    assert json.loads((exp / "summary.json").read_text())["collector"]["traces_sent"] == 3
