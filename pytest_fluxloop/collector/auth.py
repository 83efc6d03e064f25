"""The bearer token: every route but ``/health`` requires ``Authorization: Bearer <token>``.

The token is compared in constant time (:func:`hmac.compare_digest`), is never logged and never
appears in an answer. :func:`check_listen` keeps the collector from listening beyond this
machine without one.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Collection
from typing import TYPE_CHECKING

from .errors import CollectorError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["OPEN_PATHS", "BearerAuth", "check_listen", "is_loopback", "token_matches"]

OPEN_PATHS = frozenset({"/health"})
"""Paths answered without a token."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: ``localhost`` or a loopback address
    (``0.0.0.0`` and ``::`` are every interface, so not)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond this machine


def check_listen(host: str, token: str | None, token_env: str) -> None:
    """Refuse to listen beyond loopback without a token.

    Raises:
        CollectorError: the host is not loopback and ``token`` is empty.
    """
    if token or is_loopback(host):
        return
    raise CollectorError(
        f"refusing to listen on {host} without a token: anyone who can reach it could write "
        f"and read traces. Set {token_env} to a secret (senders use the same one), or listen "
        "on 127.0.0.1"
    )


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (constant-time compare)."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode("utf-8"), token.encode("utf-8"))


class BearerAuth:
    """ASGI middleware: a 401 for any request (but :data:`OPEN_PATHS`) without the token.

    With no token configured it lets everything through (the collector on loopback, "open").
    """

    def __init__(self, app: ASGIApp, token: str | None, open_paths: Collection[str] = OPEN_PATHS):
        self.app = app
        self.token = token or None
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if token_matches(header, self.token):
            await self.app(scope, receive, send)
            return
        # Same answer for a missing and a wrong token: nothing tells a guesser which it was.
        body = json.dumps({"error": "a valid 'Authorization: Bearer <token>' is required"})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="fluxloop-collector"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
