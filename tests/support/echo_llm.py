"""A deterministic OpenAI- and Anthropic-compatible server on 127.0.0.1 that echoes.

Unlike the scripted server (:mod:`tests.support.llm_server`), whose queued answers are served
in arrival order, this one computes each answer from its request, so cases running in
parallel (``parallel_runs``, xdist workers, several processes) each get their own answer and
a test can tell from a trace's observations that they belong to it.

Answers: the reply text is ``"echo: <last user message text>"``; the model is the request's.
Usage: input tokens = the words of every message's text, output tokens = the reply's words
(:func:`words`); ``cached_tokens`` = 2 on chat completions. A stream sends its usage only
when the request asks for it (``stream_options.include_usage``) for chat completions, always
for the responses API and Anthropic (as the real services do).

Paths: ``/v1/chat/completions``, ``/v1/responses``, ``/v1/messages`` (Anthropic).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from http.server import ThreadingHTTPServer
from typing import Any

from support.http_servers import JSONHandler, message_text, serve_in_thread


def words(text: str) -> int:
    """The server's token count of ``text``: its whitespace-separated words."""
    return len(text.split())


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(body.get("messages"), list):
        return [m for m in body["messages"] if isinstance(m, dict)]
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return [m for m in given or [] if isinstance(m, dict)]


def answer(body: dict[str, Any]) -> tuple[str, int, int]:
    """The reply text, input tokens and output tokens for a request body."""
    messages = _messages(body)
    users = [message_text(m.get("content")) for m in messages if m.get("role") == "user"]
    reply = f"echo: {users[-1] if users else ''}"
    prompt = sum(words(message_text(m.get("content"))) for m in messages) + words(
        message_text(body.get("system") or body.get("instructions") or "")
    )
    return reply, prompt, words(reply)


class _Handler(JSONHandler):
    def do_POST(self) -> None:
        body = self._read_json()
        self.server.requests.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        reply, prompt, completion = answer(body)
        model = body.get("model", "unknown")
        path = self.path.split("?", 1)[0]
        if path.endswith("/chat/completions"):
            self._chat(body, model, reply, prompt, completion)
        elif path.endswith("/responses"):
            self._responses(body, model, reply, prompt, completion)
        elif path.endswith("/messages"):
            self._anthropic(body, model, reply, prompt, completion)
        else:
            self._json({"error": {"message": f"unknown path {path}"}}, status=404)

    # ------------------------------------------------------------------ helpers

    def _sse(self, events: list[tuple[str | None, Any]]) -> None:
        chunks = []
        for name, data in events:
            head = f"event: {name}\n" if name else ""
            text = data if isinstance(data, str) else json.dumps(data)
            chunks.append(f"{head}data: {text}\n\n")
        payload = "".join(chunks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _chat(self, body: dict[str, Any], model: str, reply: str, p: int, c: int) -> None:
        usage = {
            "prompt_tokens": p,
            "completion_tokens": c,
            "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": 2},
        }
        base = {"id": "chatcmpl-echo", "created": 0, "model": model}
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
            self._json({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        events: list[tuple[str | None, Any]] = []
        pieces = reply.split(" ")
        for i, piece in enumerate(pieces):
            delta = {"content": piece + (" " if i < len(pieces) - 1 else "")}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            events.append((None, {**base, "object": "chat.completion.chunk", "choices": [choice]}))
        last = {"index": 0, "delta": {}, "finish_reason": "stop"}
        events.append((None, {**base, "object": "chat.completion.chunk", "choices": [last]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            tail = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            events.append((None, tail))
        events.append((None, "[DONE]"))
        self._sse(events)

    def _responses(self, body: dict[str, Any], model: str, reply: str, p: int, c: int) -> None:
        message = {
            "id": "msg_echo",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": reply, "annotations": []}],
        }
        response = {
            "id": "resp_echo",
            "object": "response",
            "created_at": 0,
            "model": model,
            "status": "completed",
            "output": [message],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": p,
                "output_tokens": c,
                "total_tokens": p + c,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
        if not body.get("stream"):
            self._json(response)
            return
        item = {**message, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": "msg_echo", "output_index": 0}
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        events: list[tuple[str | None, Any]] = [
            ("response.created", {"type": "response.created", "response": started}),
            (
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "item": item},
            ),
            (
                "response.content_part.added",
                {"type": "response.content_part.added", **where, "content_index": 0, "part": part},
            ),
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    **where,
                    "content_index": 0,
                    "delta": reply,
                    "logprobs": [],
                },
            ),
            ("response.completed", {"type": "response.completed", "response": response}),
        ]
        for number, (_, data) in enumerate(events):
            data["sequence_number"] = number
        self._sse(events)

    def _anthropic(self, body: dict[str, Any], model: str, reply: str, p: int, c: int) -> None:
        message = {
            "id": "msg_echo",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": p, "output_tokens": c, "cache_read_input_tokens": 0},
        }
        if not body.get("stream"):
            self._json(message)
            return
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": p, "output_tokens": 1},
        }
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": reply},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": c},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._sse(events)


class EchoServer(ThreadingHTTPServer):
    """The running server: :attr:`url` (``http://127.0.0.1:PORT``) and :attr:`requests`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    @property
    def url(self) -> str:
        """Base URL (Anthropic's ``base_url``; add ``/v1`` for OpenAI's)."""
        return f"http://127.0.0.1:{self.server_address[1]}"


def running_echo_server() -> AbstractContextManager[EchoServer]:
    """Start an :class:`EchoServer` on a free port for the block."""
    return serve_in_thread(EchoServer(), "echo-llm")
