"""Record real calls in a running application, then replay them in an experiment.

As a new user would: a WebSocket-style handler decorated with ``@fluxloop.agent()`` is called
by a plain Python program (nested request dicts, a ``send`` callback, a token and an API key)
with recording switched on in the project's ``.env``; ``fluxloop run experiment`` then
replays those calls with each case's input at ``override_param_path``. The artifacts say what
the handler received and what it sent through the callback, and no secret is on disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli_helpers import clean_env, describe, run_cli

pytestmark = pytest.mark.slow

TOKEN = "tok-live-5f2c9a7e1b3d4c6a8e0f"
API_KEY = "sk-proj-Zq8XvT3kLm9Np2Rs7Yw4Hb6Jc1Fd5Ga0"

HANDLER = '''\
"""A chat backend's WebSocket handler: replies go out through `send`, nothing is returned."""

import asyncio

import fluxloop


@fluxloop.agent()
async def handle(data: dict, send, token: str, api_key: str = "") -> None:
    text = data["content"]
    channel = data["meta"]["channel"]
    await send({"type": "typing", "channel": channel})
    # A reply scheduled as a task and not awaited here: replay must wait for it, not sleep.
    asyncio.get_running_loop().create_task(
        send({"type": "reply", "channel": channel, "text": "echo: " + text})
    )
'''

APP = f'''\
"""The application: calls the handler as its web framework would."""

import asyncio

from app.handlers import handle

SENT = []


async def send(message):
    SENT.append(message)


async def main():
    for text, channel in [("hello there", "web"), ("where is my parcel", "mobile")]:
        data = {{"content": text, "meta": {{"channel": channel, "locale": "en"}},
                "history": [{{"role": "user", "content": "earlier"}}]}}
        await handle(data, send, token="{TOKEN}", api_key="{API_KEY}")
        await asyncio.sleep(0.01)
    print("sent", len(SENT))


asyncio.run(main())
'''

SIMULATION = """\
name: replayed
iterations: 1
seed: 3
runner:
  target: "app.handlers:handle"
  timeout_seconds: 10
  max_retries: 0
replay_args:
  enabled: true
  recording_file: recordings/args_recording.jsonl
  override_param_path: data.content
"""

INPUTS = """\
generated_inputs:
  - input: "I want a refund"
    persona: shopper
  - input: "Can I change the address?"
    persona: shopper
  - input: "Is it in stock?"
    persona: shopper
"""


def _project(root: Path) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("", encoding="utf-8")
    (root / "app" / "handlers.py").write_text(HANDLER, encoding="utf-8")
    (root / "run_app.py").write_text(APP, encoding="utf-8")
    (root / ".env").write_text(
        "# recording for the replay test\nFLUXLOOP_RECORD_ARGS=true\n", encoding="utf-8"
    )
    return root


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _no_secret_on_disk(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and path.suffix not in (".py", ".pyc"):
            data = path.read_bytes()
            assert TOKEN.encode() not in data, path
            assert API_KEY.encode() not in data, path


def test_record_in_the_application_then_replay_in_an_experiment(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    app = subprocess.run(
        [sys.executable, "run_app.py"],
        cwd=root,
        env=clean_env({"PYTHONPATH": str(root)}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert app.returncode == 0, describe(app)
    assert "sent 4" in app.stdout
    recording = root / "recordings" / "args_recording.jsonl"
    lines = _rows(recording)
    assert [line["target"] for line in lines] == ["app.handlers:handle"] * 2
    first = lines[0]
    assert first["_version"] == "1" and first["timestamp"]
    recorded = {**dict(zip(["data", "send"], first["args"], strict=False)), **first["kwargs"]}
    assert recorded["data"]["content"] == "hello there"
    assert recorded["send"]["__fluxloop__"] == "callable"
    _no_secret_on_disk(root)

    # Recording stays switched on in .env: calls made inside an experiment are not recorded.
    (root / "configs").mkdir()
    (root / "configs" / "simulation.yaml").write_text(SIMULATION, encoding="utf-8")
    (root / "inputs").mkdir()
    (root / "inputs" / "generated.yaml").write_text(INPUTS, encoding="utf-8")
    run = run_cli("run", "experiment", "--yes", cwd=root)
    assert run.returncode == 0, describe(run)
    exp = next((root / "experiments").glob("exp_*"))
    rows = _rows(exp / "trace_summary.jsonl")
    assert len(rows) == 3
    for row in rows:
        # What the handler sent through the callback is the case's output.
        assert "echo: " + row["input"] in json.dumps(row["output"]), row
        assert row["duration_ms"] < 2000, row  # no fixed waits for the callback task
    traces = _rows(exp / "traces.jsonl")
    channels = set()
    for trace in traces:
        observations = trace.get("observations") or []
        callbacks = [o for o in observations if "send" in o["name"]]
        assert len(callbacks) >= 2, observations  # typing + reply, as observations
        received = next(o for o in observations if o["type"] == "span_start")["input"]
        assert received["data"]["content"] == trace["input"]  # the input at data.content
        assert received["data"]["meta"]["locale"] == "en"  # the rest as recorded
        channels.add(received["data"]["meta"]["channel"])
    assert channels == {"web", "mobile"}  # every recording is used, not only the last
    assert recording.read_text(encoding="utf-8").count("\n") == 2  # replays not recorded
    _no_secret_on_disk(root)
