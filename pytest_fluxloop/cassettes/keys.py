"""The match key of an LLM call: its request normalised, hashed with who made it and when.

Two requests match when they would make the model produce the same thing: same endpoint,
model, sampling parameters and messages. What differs between runs without changing that is
left out: the ids a provider assigns (tool call ids, message ids), which it echoes back in
the next request, and the order of tools. Transport settings (timeouts, retries, headers)
are not in the request body at all. The key adds the role (agent, supervisor, judge), the
case, the conversation turn and the iteration, so one recording never answers another
case's or another turn's identical question.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..jsonsafe import to_jsonable

__all__ = ["canonical", "match_key", "normalise_request", "request_diff"]

_CONTENT_KEYS = ("messages", "input", "system", "instructions", "prompt")
"""Request keys holding conversation content (OpenAI chat and Responses, Anthropic)."""
_ID_KEYS = frozenset({"id", "tool_call_id", "tool_use_id", "call_id"})
"""Keys of provider-assigned ids inside conversation content."""
_SENTINELS = frozenset({"NotGiven", "Omit"})
MAX_DIFF_LINES = 120


def _without_ids(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_ids(v) for k, v in value.items() if k not in _ID_KEYS}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _tool_name(tool: Any) -> str:
    if not isinstance(tool, Mapping):
        return ""
    function = tool.get("function")
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return str(function["name"])
    name = tool.get("name")
    return name if isinstance(name, str) else str(tool.get("type") or "")


def normalise_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a request body that decides the reply, as plain JSON data.

    SDK sentinels (``NOT_GIVEN``) are dropped, ids inside conversation content removed and
    ``tools`` sorted by name; everything else (model, sampling parameters, response format,
    ``stream``) is kept as sent.
    """
    out: dict[str, Any] = {}
    for key, value in body.items():
        if type(value).__name__ in _SENTINELS:
            continue
        value = to_jsonable(value)
        if key in _CONTENT_KEYS:
            value = _without_ids(value)
        elif key == "tools" and isinstance(value, list):
            value = sorted(value, key=_tool_name)
        out[str(key)] = value
    return out


def canonical(value: Any) -> str:
    """One spelling of JSON data (sorted keys, no spaces): what the key hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def match_key(
    *,
    provider: str,
    endpoint: str,
    request: Mapping[str, Any],
    role: str,
    case_id: str,
    turn: int,
    iteration: int,
) -> str:
    """The SHA-256 (hex) of a normalised request and who asked it, where."""
    identity = {
        "provider": provider,
        "endpoint": endpoint,
        "request": request,
        "role": role,
        "case_id": case_id,
        "turn": turn,
        "iteration": iteration,
    }
    return hashlib.sha256(canonical(identity).encode("utf-8")).hexdigest()


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False).splitlines()


def request_diff(recorded: Mapping[str, Any], actual: Mapping[str, Any], where: str) -> str:
    """A unified diff of two normalised requests (``recorded`` → ``actual``), at most
    :data:`MAX_DIFF_LINES` lines; ``where`` names the recording (file and position)."""
    lines = list(
        difflib.unified_diff(
            _pretty(recorded),
            _pretty(actual),
            fromfile=f"recorded ({where})",
            tofile="actual request",
            lineterm="",
            n=2,
        )
    )
    if not lines:
        return "(the requests are identical: it was already used by an earlier call)"
    if len(lines) > MAX_DIFF_LINES:
        hidden = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"... ({hidden} more diff lines)"]
    return "\n".join(lines)
