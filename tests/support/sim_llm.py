"""An OpenAI-compatible server on 127.0.0.1 that plays both sides of a conversation.

Requests asking for the supervisor's structured decision (``response_format`` with the
``supervisor_decision`` schema) get a decision computed from the request: ``continue`` with
``"question <n>"`` while the transcript in the prompt holds fewer than ``turns`` agent
replies (counted as ``echo:`` occurrences), then ``terminate``. Every other request is
answered by the echo server (:mod:`tests.support.echo_llm`), streamed or not.

``delay`` seconds are slept before each answer (a slow provider, for benchmarks).
:attr:`SimServer.count` is the number of requests answered (thread-safe).
"""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import AbstractContextManager
from typing import Any

from support.echo_llm import EchoServer
from support.echo_llm import _Handler as EchoHandler
from support.http_servers import message_text, serve_in_thread

DECISION_SCHEMA = "supervisor_decision"


def _decision(body: dict[str, Any], turns: int) -> dict[str, Any]:
    prompt = " ".join(message_text(m.get("content")) for m in body.get("messages") or [])
    replies = len(re.findall(r"echo:", prompt))
    if replies < turns:
        return {
            "decision": "continue",
            "next_user_message": f"question {replies + 1}",
            "termination_reason": None,
            "closing_user_message": None,
        }
    return {
        "decision": "terminate",
        "next_user_message": None,
        "termination_reason": "user_satisfied",
        "closing_user_message": "thanks",
    }


class _Handler(EchoHandler):
    def do_POST(self) -> None:
        server: SimServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.count += 1
        if server.delay:
            time.sleep(server.delay)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw or b"{}")
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
        if schema != DECISION_SCHEMA:
            return self._echo(body)
        server.requests.append((self.path, dict(self.headers), body))
        decision = json.dumps(_decision(body, server.turns))
        model = body.get("model", "unknown")
        self._json(
            {
                "id": "chatcmpl-sim",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": decision},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    def _echo(self, body: dict[str, Any]) -> None:
        # The echo handler reads the body itself: hand it the one already read.
        self._read_json = lambda: body  # type: ignore[method-assign]
        super().do_POST()


class SimServer(EchoServer):
    """The running server: :attr:`url`, :attr:`openai_url`, :attr:`count`, :attr:`requests`."""

    def __init__(self, turns: int = 3, delay: float = 0.0) -> None:
        super().__init__()
        self.RequestHandlerClass = _Handler
        self.turns = turns
        self.delay = delay
        self.count = 0
        self.lock = threading.Lock()

    @property
    def openai_url(self) -> str:
        """The ``base_url`` of an OpenAI client."""
        return f"{self.url}/v1"


def running_sim_server(turns: int = 3, delay: float = 0.0) -> AbstractContextManager[SimServer]:
    """Start a :class:`SimServer` on a free port for the block."""
    return serve_in_thread(SimServer(turns, delay), "sim-llm")
