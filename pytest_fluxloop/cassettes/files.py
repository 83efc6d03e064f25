"""Reading and writing cassette files: ``json`` only, a secret scan before every write,
atomic replacement (a reader never sees half a file, a crash never leaves one)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..redact import Redactor
from .errors import CassetteError
from .model import Cassette, parse_cassette

__all__ = ["SecretFound", "read_cassette", "secret_paths", "write_cassette"]


class SecretFound(CassetteError):
    """A cassette was not written: something in it looks like a secret."""


def read_cassette(path: Path) -> Cassette:
    """The cassette at ``path`` (:class:`CassetteError` when it cannot be used)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CassetteError(
            f"cassette {path}: is not UTF-8 text (corrupt); re-record it with "
            "--fluxloop-cassettes rewrite, or delete the file"
        ) from None
    except OSError as exc:
        raise CassetteError(f"cassette {path}: cannot be read ({exc.strerror or exc})") from None
    return parse_cassette(path, text)


def secret_paths(value: Any, redactor: Redactor, path: str = "$") -> list[str]:
    """Where ``value`` holds something secret-looking: a string the redactor would change
    (key shapes, the current API keys' values, ``Bearer`` tokens, ``capture.redact_patterns``
    ...), or a non-empty string under a secret-looking key (or ``capture.redact_keys``).
    Paths only, never the values."""
    found: list[str] = []
    if isinstance(value, str):
        if redactor.redact_text(value) != value:
            found.append(path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}"
            if isinstance(item, str) and item and redactor.secret_key(str(key)):
                found.append(where)
            else:
                found.extend(secret_paths(item, redactor, where))
    elif isinstance(value, list):
        for number, item in enumerate(value):
            found.extend(secret_paths(item, redactor, f"{path}[{number}]"))
    return found


def write_cassette(path: Path, cassette: Cassette, redactor: Redactor) -> None:
    """Write ``cassette`` to ``path`` (folders made), unless it holds a secret.

    Raises:
        SecretFound: the scan found secret-looking values (named by path, never shown);
            nothing is written and an existing file is left as it was.
        CassetteError: the file could not be written.
    """
    document = cassette.to_json()
    found = secret_paths(document["interactions"], redactor, "interactions")
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise SecretFound(
            f"cassette {path} not written: secret-looking values at {shown} (an API key, a "
            "token, a password ...): keep secrets out of prompts, tool results and replies, "
            "then record again"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, cassette.dumps().encode("utf-8"))
    except OSError as exc:
        raise CassetteError(f"cassette {path}: cannot be written ({exc.strerror or exc})") from None
