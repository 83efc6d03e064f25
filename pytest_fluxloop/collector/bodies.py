"""Request bodies: the media type, the size cap (413) and gzip, before anything is parsed.

The cap applies twice: to the bytes on the wire (a ``Content-Length`` over it is refused
before the body is read; a chunked body is cut off as soon as it passes it) and to the
decompressed body (a small gzip bomb is a 413 too, found without inflating it all).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

__all__ = ["BodyError", "decompress", "media_type", "read_body", "require_media_type"]


@dataclass
class BodyError(Exception):
    """A body refused before parsing: its HTTP status (400, 413, 415) and the reason."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def media_type(content_type: str | None) -> str:
    """``type/subtype`` of a ``Content-Type`` header, lowercase, parameters dropped."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def require_media_type(content_type: str | None, accepted: Collection[str]) -> str:
    """The request's media type when it is one of ``accepted``.

    Raises:
        BodyError: 415, naming what this route reads.
    """
    found = media_type(content_type)
    if found not in accepted:
        shown = found or "no Content-Type"
        raise BodyError(415, f"{shown} is not supported here: send {' or '.join(sorted(accepted))}")
    return found


async def read_body(
    stream: AsyncIterator[bytes],
    content_length: str | None,
    content_encoding: str | None,
    max_bytes: int,
) -> bytes:
    """The whole body, decompressed, at most ``max_bytes`` before and after decompression.

    Raises:
        BodyError: 413 over the cap, 415 for an encoding other than gzip or identity, 400 for
            a broken gzip stream or a bad ``Content-Length``.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise BodyError(415, f"Content-Encoding {encoding!r} is not supported: send gzip")
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BodyError(400, "Content-Length is not a number") from None
        if declared > max_bytes:
            raise BodyError(413, _too_large(max_bytes))
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            raise BodyError(413, _too_large(max_bytes))
        chunks.append(chunk)
    raw = b"".join(chunks)
    if encoding == "identity":
        return raw
    return decompress(raw, max_bytes)


def decompress(data: bytes, max_bytes: int) -> bytes:
    """A gzip body (one or more members), inflated at most to ``max_bytes``.

    Raises:
        BodyError: 413 when the inflated body is larger, 400 when the stream is broken.
    """
    out: list[bytes] = []
    size = 0
    rest = data
    if not rest:
        raise BodyError(400, "the gzip body is empty")
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = rest
        try:
            while True:
                # max_length: never inflate more than the cap allows (a gzip bomb stops here).
                piece = inflater.decompress(chunk, max_bytes - size + 1)
                size += len(piece)
                if size > max_bytes:
                    raise BodyError(413, _too_large(max_bytes, decompressed=True))
                out.append(piece)
                chunk = inflater.unconsumed_tail
                # Input used up: done unless zlib still holds output it was not allowed to
                # give (then another call with no input gives it).
                if not chunk and (inflater.eof or not piece):
                    break
        except zlib.error as exc:
            raise BodyError(400, f"the gzip body is corrupt: {exc}") from None
        if not inflater.eof:
            raise BodyError(400, "the gzip body is truncated")
        # Several gzip members one after another are one body (RFC 1952).
        rest = inflater.unused_data
    return b"".join(out)


def _too_large(max_bytes: int, decompressed: bool = False) -> str:
    what = "decompressed body" if decompressed else "body"
    return f"the {what} is over the collector's limit of {max_bytes} bytes (--max-body-mb)"
