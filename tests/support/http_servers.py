"""What the computed-answer test servers (:mod:`support.echo_llm`, :mod:`support.judge_server`)
share: serving in a thread for a ``with`` block, a quiet JSON request handler, and the text of a
chat message's content."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from socketserver import BaseServer
from typing import Any, TypeVar

ServerT = TypeVar("ServerT", bound=BaseServer)


@contextmanager
def serve_in_thread(server: ServerT, name: str) -> Iterator[ServerT]:
    """Serve ``server`` in a daemon thread called ``name`` for the block; then shut it down,
    close its socket and wait (at most 5 s) for the thread."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def message_text(content: Any) -> str:
    """A chat message's text: the string itself, or its parts' ``text`` joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            message_text(part.get("text", "")) for part in content if isinstance(part, dict)
        )
    return ""


class JSONHandler(BaseHTTPRequestHandler):
    """A keep-alive (HTTP/1.1) handler that logs nothing, reads a JSON request body with
    :meth:`_read_json` and answers JSON with :meth:`_json`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _json(self, data: Any, status: int = 200) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
