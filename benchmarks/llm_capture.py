#!/usr/bin/env python3
"""LLM capture overhead: 200 cases x 5 ``openai`` chat calls, capture on vs off.

Each case runs in its own trace (``trace_context``, as the engine does) and makes five
``client.chat.completions.create`` calls with the real ``openai`` client against a minimal
HTTP/1.1 keep-alive server on 127.0.0.1, in a child process (a fixed answer with usage, by
default at once: the client's and the capture's own costs are all there is to measure).
Three sides, each run ``--repeat`` times, interleaved in blocks of ``--block`` cases (their
order rotated every block):

* ``off``: the SDK not hooked at all (``integrations.uninstall()``);
* ``fast path``: hooked, but ``capture.llm`` false (the wrapper calls straight through);
* ``on``: hooked and capturing (one ``generation`` span per call).

``--stream`` makes every call a stream (``stream=True`` with ``include_usage``), read to
its end. Each capturing run is checked: 5 finished generations per case, with usage.

    python benchmarks/llm_capture.py                 # 200 cases, 5 calls each, 5 repeats
    python benchmarks/llm_capture.py --stream        # the same, streamed
    python benchmarks/llm_capture.py --latency 20    # each answer 20 ms late (a fast LLM)
    python benchmarks/llm_capture.py --cases 20 --repeat 1   # smoke

Reported: each side's median run and its difference to ``off`` (also per call), and the
median of the paired block ratios (a block of a side against the ``off`` block run next to
it: the estimate least moved by other load on the machine). Target: ``on`` adds less than
5% wall time to ``off``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai

from pytest_fluxloop.integrations import install, uninstall
from pytest_fluxloop.sdk.context import CaptureSettings, trace_context

TARGET = 0.05
CALLS_PER_CASE = 5
MESSAGES: Any = [
    {"role": "system", "content": "You are a support agent for an online shop."},
    {"role": "user", "content": "Where is my order 1234? It was due yesterday."},
]
USAGE = {
    "prompt_tokens": 42,
    "completion_tokens": 12,
    "total_tokens": 54,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
REPLY = "Your order 1234 left our warehouse this morning and arrives tomorrow."


def _chat_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    ).encode()


def _stream_body() -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1}
    base["model"] = "gpt-bench"
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    ]
    for word in REPLY.split(" "):
        delta = {"content": word + " "}
        chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": USAGE})
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
    return "".join(events).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK
    bodies: ClassVar[dict[bool, bytes]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        return

    latency: ClassVar[float] = 0.0

    def do_POST(self) -> None:
        if self.latency:
            time.sleep(self.latency)
        length = int(self.headers.get("Content-Length") or 0)
        stream = bool(json.loads(self.rfile.read(length) or b"{}").get("stream"))
        payload = self.bodies[stream]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def serve(latency: float) -> None:
    """``--serve``: run the server in this process, print its port, stop when stdin closes."""
    _Handler.bodies = {False: _chat_body(), True: _stream_body()}
    _Handler.latency = latency
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


@contextmanager
def loopback_server(latency: float = 0.0) -> Iterator[str]:
    """The server in a child process (as a real one is: its work does not compete with the
    agent's process for the GIL); yields its base URL."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency", str(latency * 1000)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


def make_agent(client: openai.OpenAI, stream: bool) -> Callable[[], None]:
    """One case: five chat calls, each reply read in full."""

    def agent() -> None:
        for _ in range(CALLS_PER_CASE):
            if stream:
                chunks = client.chat.completions.create(
                    model="gpt-bench",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for _chunk in chunks:
                    pass
            else:
                reply = client.chat.completions.create(model="gpt-bench", messages=MESSAGES)
                assert reply.choices[0].message.content == REPLY

    return agent


def run_side(side: str, agent: Callable[[], None], cases: int) -> float:
    """Seconds for ``cases`` cases on one side (hooking the SDK as that side needs)."""
    if side == "off":
        uninstall()
    else:
        install()
    capture = CaptureSettings(llm=side == "on")
    t0 = time.perf_counter()
    for case in range(cases):
        with trace_context(f"case-{case}", capture=capture) as ctx:
            agent()
        if side == "on":
            ends = [o for o in ctx.observations if o.type == "span_end"]
            assert len(ends) == CALLS_PER_CASE, ctx.observations
            assert all(o.metadata["usage"] and o.metadata["status"] == "ok" for o in ends)
        else:
            assert ctx.observations == []
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--block", type=int, default=20, help="cases per interleaved block")
    parser.add_argument("--stream", action="store_true", help="stream every call")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="ms the server waits before each answer"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.latency / 1000)
        return 0
    sides = ["off", "fast path", "on"]
    times: dict[str, list[float]] = {side: [] for side in sides}
    blocks: dict[str, list[float]] = {side: [] for side in sides}
    with loopback_server(args.latency / 1000) as url:
        client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)
        agent = make_agent(client, args.stream)
        for side in sides:  # warm-up: connections, imports, caches
            run_side(side, agent, args.block)
        for _ in range(args.repeat):
            # Each run of a side is its cases in blocks, the three sides' blocks interleaved
            # (their order rotated each time): a change of machine load hits them alike.
            total = dict.fromkeys(sides, 0.0)
            done = 0
            while done < args.cases:
                size = min(args.block, args.cases - done)
                turn = (done // args.block) % len(sides)
                for side in sides[turn:] + sides[:turn]:
                    seconds = run_side(side, agent, size)
                    total[side] += seconds
                    blocks[side].append(seconds)
                done += size
            for side in sides:
                times[side].append(total[side])
    uninstall()
    calls = args.cases * CALLS_PER_CASE
    off = statistics.median(times["off"])
    print(
        f"{args.cases} cases x {CALLS_PER_CASE} {'streamed ' if args.stream else ''}chat calls, "
        f"server latency {args.latency:g} ms, {args.repeat} runs per side, interleaved in "
        f"blocks of {args.block} cases"
    )
    print("  side        median of runs (runs)              vs off  per call  paired blocks")
    for side in sides:
        median = statistics.median(times[side])
        runs = ", ".join(f"{t:.2f}" for t in times[side])
        paired = statistics.median(
            s / o - 1 for s, o in zip(blocks[side], blocks["off"], strict=True)
        )
        print(
            f"  {side:10s} {median:6.3f} s ({runs})  {(median - off) / off:+6.1%}"
            f"  {(median - off) / calls * 1e6:+5.0f} us  {paired:+6.1%}"
        )
    added = statistics.median(s / o - 1 for s, o in zip(blocks["on"], blocks["off"], strict=True))
    verdict = "OK" if added < TARGET else "OVER TARGET"
    print(
        f"capture on adds {added:+.1%} wall time (median of the paired blocks; "
        f"target < {TARGET:.0%}): {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
