"""The cassette file: one JSON document per case, read with ``json`` only.

::

    {
      "fluxloop_cassette": 1,
      "experiment": "support-bot", "case_id": "in00-hello-default-it0", "iteration": 0,
      "recorded_with": {"pytest_fluxloop": "0.9.0", "openai": "3.57.0"},
      "models": {"agent": ["gpt-4o-mini"], "supervisor": ["gpt-4o"]},
      "interactions": [
        {"key": "<sha256>", "role": "agent", "turn": 1, "index": 0,
         "provider": "openai", "endpoint": "/chat/completions",
         "request": {...normalised body...},
         "response": {"status": 200, "content_type": "application/json", "json": {...}}}
      ]
    }

A response holds its body as ``json`` (parsed, for review), ``text``, or, for a stream,
``events`` (each ``{"event": name, "json": ...}`` or ``{"data": "[DONE]"}``) with
``complete`` false when the reader stopped before the end. Request headers are never
stored, nor are response headers other than the content type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CassetteError

__all__ = ["FORMAT_KEY", "FORMAT_VERSION", "Cassette", "Interaction", "parse_cassette"]

FORMAT_KEY = "fluxloop_cassette"
FORMAT_VERSION = 1
_REWRITE = (
    "re-record it with --fluxloop-cassettes rewrite (fluxloop run experiment --cassettes rewrite)"
)
_BODY_KEYS = ("json", "text", "events")


@dataclass
class Interaction:
    """One recorded LLM call: who made it, where, the normalised request, the response."""

    key: str
    role: str
    turn: int
    index: int
    """The call's position among this role's calls in this turn (0 first)."""
    provider: str
    endpoint: str
    request: dict[str, Any]
    response: dict[str, Any]

    @property
    def position(self) -> str:
        """``role/turn/index``: how summaries and ``prune`` name an interaction."""
        return f"{self.role}/{self.turn}/{self.index}"

    @property
    def model(self) -> str | None:
        """The model the request asked for."""
        model = self.request.get("model")
        return model if isinstance(model, str) else None

    def to_json(self) -> dict[str, Any]:
        """The interaction as stored."""
        return {
            "key": self.key,
            "role": self.role,
            "turn": self.turn,
            "index": self.index,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "request": self.request,
            "response": self.response,
        }


@dataclass
class Cassette:
    """The recorded LLM calls of one case."""

    experiment: str
    case_id: str
    iteration: int = 0
    interactions: list[Interaction] = field(default_factory=list)
    recorded_with: dict[str, str] = field(default_factory=dict)

    def models(self) -> dict[str, list[str]]:
        """The models each role's recorded requests asked for."""
        found: dict[str, list[str]] = {}
        for interaction in self.interactions:
            model = interaction.model
            if model is not None and model not in found.setdefault(interaction.role, []):
                found[interaction.role].append(model)
        return found

    def to_json(self) -> dict[str, Any]:
        """The document as written (pretty-printed by the writer)."""
        return {
            FORMAT_KEY: FORMAT_VERSION,
            "experiment": self.experiment,
            "case_id": self.case_id,
            "iteration": self.iteration,
            "recorded_with": dict(sorted(self.recorded_with.items())),
            "models": self.models(),
            "interactions": [i.to_json() for i in self.interactions],
        }

    def dumps(self) -> str:
        """The file's text: indented, keys in a stable order, one final newline."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


def _problem(path: Path, what: str) -> CassetteError:
    return CassetteError(f"cassette {path}: {what}; {_REWRITE}, or delete the file")


def _interaction(path: Path, number: int, raw: Any) -> Interaction:
    where = f"interactions[{number}]"
    if not isinstance(raw, Mapping):
        raise _problem(path, f"{where} is not an object")
    text = {"key": str, "role": str, "provider": str, "endpoint": str}
    for name, kind in text.items():
        if not isinstance(raw.get(name), kind) or not raw.get(name):
            raise _problem(path, f"{where}.{name} is missing or not a string")
    for name in ("turn", "index"):
        value = raw.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _problem(path, f"{where}.{name} is missing or not a whole number >= 0")
    request, response = raw.get("request"), raw.get("response")
    if not isinstance(request, dict):
        raise _problem(path, f"{where}.request is missing or not an object")
    if not isinstance(response, dict):
        raise _problem(path, f"{where}.response is missing or not an object")
    status = response.get("status")
    if not isinstance(status, int) or not 200 <= status < 300:
        raise _problem(path, f"{where}.response.status must be a 2xx status code")
    if sum(name in response for name in _BODY_KEYS) != 1:
        raise _problem(path, f"{where}.response needs exactly one of json, text, events")
    if "events" in response and not isinstance(response["events"], list):
        raise _problem(path, f"{where}.response.events is not a list")
    return Interaction(
        key=raw["key"],
        role=raw["role"],
        turn=raw["turn"],
        index=raw["index"],
        provider=raw["provider"],
        endpoint=raw["endpoint"],
        request=request,
        response=response,
    )


def parse_cassette(path: Path, text: str) -> Cassette:
    """The cassette in ``text`` (the content of ``path``, named in errors).

    Raises:
        CassetteError: not JSON (corrupt, truncated), not a cassette, a format version this
            release does not read, or a malformed interaction.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _problem(path, f"is not valid JSON (corrupt or truncated: {exc})") from None
    if not isinstance(data, dict) or FORMAT_KEY not in data:
        raise _problem(path, f"is not a FluxLoop cassette (no {FORMAT_KEY!r} key)")
    version = data[FORMAT_KEY]
    if version != FORMAT_VERSION:
        raise CassetteError(
            f"cassette {path}: format version {version!r}, this release reads version "
            f"{FORMAT_VERSION}; upgrade pytest-fluxloop if a newer one wrote it, or {_REWRITE}"
        )
    raw_interactions = data.get("interactions")
    if not isinstance(raw_interactions, list):
        raise _problem(path, "interactions is missing or not a list")
    case_id = data.get("case_id")
    if not isinstance(case_id, str):
        raise _problem(path, "case_id is missing or not a string")
    iteration = data.get("iteration", 0)
    recorded_with = data.get("recorded_with") or {}
    return Cassette(
        experiment=str(data.get("experiment") or ""),
        case_id=case_id,
        iteration=iteration if isinstance(iteration, int) else 0,
        interactions=[_interaction(path, n, raw) for n, raw in enumerate(raw_interactions)],
        recorded_with={str(k): str(v) for k, v in dict(recorded_with).items()},
    )
