"""Cassettes and interactions built by hand, for the cassette unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_fluxloop.cassettes.keys import match_key, normalise_request
from pytest_fluxloop.cassettes.model import Cassette, Interaction
from pytest_fluxloop.cassettes.session import CaseTape, Mode

CASE_ID = "in00-hello-default-it0"
EXPERIMENT = "support-bot"


def chat_body(text: str, model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    """An OpenAI chat request body asking ``text``."""
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def chat_reply(text: str, model: str = "gpt-test") -> dict[str, Any]:
    """A cassette ``response`` holding a chat completion answering ``text``."""
    return {
        "status": 200,
        "content_type": "application/json",
        "json": {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        },
    }


def interaction(
    body: dict[str, Any],
    *,
    reply: str = "ok",
    role: str = "agent",
    turn: int = 0,
    index: int = 0,
    case_id: str = CASE_ID,
    iteration: int = 0,
    provider: str = "openai",
    endpoint: str = "/chat/completions",
    response: dict[str, Any] | None = None,
) -> Interaction:
    """A recorded call of ``body`` whose key is the one a tape computes for it."""
    request = normalise_request(body)
    key = match_key(
        provider=provider,
        endpoint=endpoint,
        request=request,
        role=role,
        case_id=case_id,
        turn=turn,
        iteration=iteration,
    )
    return Interaction(
        key=key,
        role=role,
        turn=turn,
        index=index,
        provider=provider,
        endpoint=endpoint,
        request=request,
        response=response if response is not None else chat_reply(reply, body.get("model", "m")),
    )


def cassette(*interactions: Interaction, case_id: str = CASE_ID) -> Cassette:
    """A cassette of ``interactions`` for ``case_id``."""
    return Cassette(
        experiment=EXPERIMENT,
        case_id=case_id,
        iteration=0,
        interactions=list(interactions),
        recorded_with={"pytest_fluxloop": "0.1.0", "openai": "3.57.0"},
    )


def tape(
    mode: Mode,
    path: Path,
    loaded: Cassette | None = None,
    *,
    case_id: str = CASE_ID,
    iteration: int = 0,
) -> CaseTape:
    """A tape for one case (``path`` is only named in messages)."""
    return CaseTape(
        mode, path, case_id=case_id, iteration=iteration, experiment=EXPERIMENT, loaded=loaded
    )


def tmp_files(folder: Path) -> list[Path]:
    """Temporary files left in ``folder`` (an interrupted write would leave one)."""
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp"))
