"""A deterministic OpenAI-compatible *judge* server on 127.0.0.1, for evaluation tests.

It answers ``POST /v1/chat/completions`` from the request's last user message (the rendered
judge prompt). It reads the agent's output from the prompt's ``{output}`` data block
(``<<<BEGIN DATA output id=...>>>``), or the whole message when there is none, and decides:

* contains ``GARBAGE`` → a reply that is not JSON, every time (the judge retries, then ends
  ``unscored: invalid_output``);
* contains ``refund`` → ``{"verdict": "pass", "score": 9, ...}`` with one evidence item
  quoting turn 1 (scores are on a 0..10 scale: use ``max_score: 10``);
* anything else → ``{"verdict": "fail", "score": 2, "reason": "The answer is wrong ..."}``.

Every reply reports ``usage``: prompt tokens = the words of all messages, completion tokens =
the reply's words. Requests are counted (thread-safe): :attr:`JudgeServer.count` in the test
process, or ``GET /count`` → ``{"count": N, "by_kind": {"garbage": ..}}`` from anywhere.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from contextlib import AbstractContextManager
from http.server import ThreadingHTTPServer
from typing import Any

from support.http_servers import JSONHandler, message_text, serve_in_thread

PASS_SCORE = 9
FAIL_SCORE = 2
PASS_REASON = "The answer explains the refund correctly."
FAIL_REASON = "The answer is wrong for this question."
GARBAGE_REPLY = "Sorry, I am not in the mood for JSON today."

_OUTPUT_BLOCK = re.compile(
    r"<<<BEGIN DATA output id=(\w+)>>>\n(.*?)\n<<<END DATA output id=\1>>>", re.DOTALL
)


def judged_text(body: dict[str, Any]) -> str:
    """The text a request asks to judge: the output data block of its last user message."""
    messages = body.get("messages") or []
    users = [message_text(m.get("content")) for m in messages if m.get("role") == "user"]
    message = users[-1] if users else ""
    found = _OUTPUT_BLOCK.search(message)
    return found.group(2) if found else message


def decide(text: str) -> tuple[str, str]:
    """``(kind, reply)`` for a judged text: kind is ``garbage``, ``pass`` or ``fail``."""
    if "GARBAGE" in text:
        return "garbage", GARBAGE_REPLY
    if "refund" in text.lower():
        quote = text.strip().splitlines()[0][:60] if text.strip() else ""
        verdict = {
            "verdict": "pass",
            "score": PASS_SCORE,
            "reason": PASS_REASON,
            "evidence": [{"turn": 1, "quote": quote}],
        }
        return "pass", json.dumps(verdict)
    verdict = {"verdict": "fail", "score": FAIL_SCORE, "reason": FAIL_REASON, "evidence": []}
    return "fail", json.dumps(verdict)


class _Handler(JSONHandler):
    server: JudgeServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0].rstrip("/").endswith("/count"):
            count, by_kind = self.server.snapshot()
            self._json({"count": count, "by_kind": by_kind})
        else:
            self._json({"error": {"message": f"unknown path {self.path}"}}, status=404)

    def do_POST(self) -> None:
        body = self._read_json()
        if not self.path.split("?", 1)[0].endswith("/chat/completions"):
            self._json({"error": {"message": f"unknown path {self.path}"}}, status=404)
            return
        kind, reply = decide(judged_text(body))
        self.server.record(kind)
        messages = body.get("messages") or []
        prompt = sum(len(message_text(m.get("content")).split()) for m in messages)
        completion = len(reply.split())
        self._json(
            {
                "id": "chatcmpl-judge",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "unknown"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )


class JudgeServer(ThreadingHTTPServer):
    """The running judge: :attr:`url` (add ``/v1`` for ``OPENAI_BASE_URL``), :attr:`count`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self._by_kind: Counter[str] = Counter()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, kind: str) -> None:
        """Count one chat completion of ``kind``."""
        with self._lock:
            self._by_kind[kind] += 1

    def snapshot(self) -> tuple[int, dict[str, int]]:
        """The total number of chat completions and the count per kind."""
        with self._lock:
            return sum(self._by_kind.values()), dict(self._by_kind)

    @property
    def count(self) -> int:
        """Chat completions answered so far."""
        return self.snapshot()[0]


def running_judge_server() -> AbstractContextManager[JudgeServer]:
    """Start a :class:`JudgeServer` on a free port for the block."""
    return serve_in_thread(JudgeServer(), "judge-llm")
