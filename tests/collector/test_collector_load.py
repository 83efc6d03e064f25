"""Load and faults on the real collector (SQLite and PostgreSQL): concurrent senders in threads
and processes store every trace exactly once; a collector killed with SIGKILL keeps what it
acknowledged and takes the rest when restarted on the same store."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.collector_server import (
    TOKEN,
    SendTally,
    send_traces,
    sender_process,
    start_collector,
)

pytestmark = pytest.mark.slow

THREADS = 6
PROCESSES = 3


def test_concurrent_senders_store_every_trace_exactly_once(tmp_path: Path, store_url: str) -> None:
    collector = start_collector(tmp_path, store_url)
    experiment = "load"
    trace_ids = [f"load-{n:04d}" for n in range(240)]
    # Every sender sends an overlapping slice (each trace is sent by three senders), so the
    # same ids race in concurrent transactions.
    senders = THREADS + PROCESSES
    slices = [
        [
            t
            for n, t in enumerate(trace_ids)
            if n % senders in {s, (s + 1) % senders, (s + 2) % senders}
        ]
        for s in range(senders)
    ]
    try:
        procs = [
            sender_process(collector.port, TOKEN, experiment, slices[THREADS + p])
            for p in range(PROCESSES)
        ]
        with ThreadPoolExecutor(THREADS) as pool:
            tallies = list(
                pool.map(
                    lambda ids: send_traces(collector.port, TOKEN, experiment, ids),
                    slices[:THREADS],
                )
            )
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            tallies.append(SendTally(**json.loads(out)))

        for tally in tallies:
            assert tally.failures == []
        stored = [t for tally in tallies for t in tally.stored]
        duplicate = [t for tally in tallies for t in tally.duplicate]
        # Each trace stored by exactly one sender, a duplicate for the two others.
        assert sorted(stored) == trace_ids
        assert len(duplicate) == 2 * len(trace_ids)

        listed = [t["trace_id"] for t in collector.all_traces(limit=37, experiment=experiment)]
        assert sorted(listed) == trace_ids  # once each
        found = collector.experiment(experiment)
        assert found is not None
        assert found["trace_count"] == len(trace_ids)
        detail = collector.get(f"/api/traces/{trace_ids[-1]}").json()
        assert [o["name"] for o in detail["observations"]] == ["step-0", "step-1"]
        assert "database is locked" not in collector.log()
    finally:
        collector.stop()


def test_a_killed_collector_keeps_what_it_acknowledged(tmp_path: Path, store_url: str) -> None:
    collector = start_collector(tmp_path, store_url)
    trace_ids = [f"crash-{n:04d}" for n in range(400)]
    acknowledged: list[str] = []
    errors: list[BaseException] = []
    killed = threading.Event()

    def send() -> None:
        # One trace per batch, until the collector dies under us.
        for trace_id in trace_ids:
            try:
                tally = send_traces(collector.port, TOKEN, "crash", [trace_id], per_batch=1)
            except (OSError, http.client.HTTPException):
                return  # the collector is gone
            except Exception as exc:  # reported by the test
                errors.append(exc)
                return
            if tally.failures:
                return
            acknowledged.extend(tally.stored)
            if len(acknowledged) == 60:
                killed.set()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert killed.wait(timeout=60), "the sender never got 60 traces through"
        collector.kill()  # SIGKILL: no graceful shutdown, no checkpoint
        sender.join(timeout=60)
        assert not sender.is_alive()
        assert errors == []
        assert len(acknowledged) >= 60

        restarted = start_collector(tmp_path, store_url)
        try:
            listed = {t["trace_id"] for t in restarted.all_traces(experiment="crash")}
            assert set(acknowledged) <= listed  # nothing acknowledged was lost
            # The sender resends everything (its spool): only the missing ones are stored.
            tally = send_traces(restarted.port, TOKEN, "crash", trace_ids, per_batch=25)
            assert tally.failures == []
            assert set(tally.stored) == set(trace_ids) - listed
            assert sorted(t["trace_id"] for t in restarted.all_traces(experiment="crash")) == (
                trace_ids
            )
        finally:
            restarted.stop()
    finally:
        collector.kill()
        sender.join(timeout=60)
