"""One cassette as a person reads it: ``fluxloop cassettes show``.

The header names the experiment, the case, the versions and models it was recorded with;
then each interaction in order: who asked (turn, role, index), where (provider, endpoint,
model), the system prompt (shortened), the last user message of the request and the reply.
Replies are rebuilt by the capture's own providers (:mod:`pytest_fluxloop.integrations`:
``reduce`` for a JSON body, the stream accumulator for recorded events), so what is shown is
what a trace's generation would say of the same response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..cassettes.model import Cassette, Interaction

__all__ = ["describe_cassette", "reply_of"]

SYSTEM_CHARS = 100
"""The system prompt is shown up to this many characters (its first line at most)."""
USER_CHARS = 2000
REPLY_CHARS = 4000
_INDENT = "    "


def _provider(name: str) -> Any:
    """The capture provider of ``name`` (``openai`` / ``anthropic``), or None."""
    if name == "openai":
        from ..integrations.openai import OpenAICapture

        return OpenAICapture()
    if name == "anthropic":
        from ..integrations.anthropic import AnthropicCapture

        return AnthropicCapture()
    return None


def reply_of(interaction: Interaction) -> tuple[Any, bool]:
    """The :class:`~pytest_fluxloop.integrations.capture_provider.Reply` of a recorded
    response (None when the provider is unknown or the body is plain text), and whether a
    recorded stream reached its last event."""
    provider = _provider(interaction.provider)
    response = interaction.response
    if provider is None:
        return None, True
    if "events" in response:
        accumulator = provider.accumulator(True)
        ended = False
        for event in response["events"]:
            if not isinstance(event, Mapping):
                continue
            data = (
                json.dumps(event["json"], ensure_ascii=False)
                if "json" in event
                else str(event.get("data", ""))
            )
            try:
                if accumulator.event(event.get("event"), data):
                    ended = True
                    break
            except ValueError:  # a data line that is not JSON: nothing to fold
                continue
        return accumulator.reply(), ended or response.get("complete") is not False
    if "json" in response:
        return provider.reduce(response["json"], True), True
    return None, True


# --------------------------------------------------------------------------- text


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the parts of a list (text parts as
    they are, other parts named in brackets)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                kind = part.get("type")
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif kind == "tool_result":
                    parts.append(f"[tool result] {content_text(part.get('content'))}")
                else:
                    parts.append(f"[{kind or 'part'}]")
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _short(text: str, limit: int = SYSTEM_CHARS) -> str:
    """The first line of ``text`` up to ``limit`` characters, and how much was left out."""
    first = text.strip().split("\n", 1)[0]
    if len(first) > limit:
        first = first[:limit]
    if first == text.strip():
        return first
    return f"{first} [...] ({len(text.strip())} characters)"


def _block(label: str, text: str) -> list[str]:
    """``label: text`` indented, continuation lines aligned under the first."""
    lines = text.split("\n") if text else [""]
    pad = _INDENT + " " * (len(label) + 2)
    rest = [f"{pad}{line}" if line.strip() else "" for line in lines[1:]]
    return [f"{_INDENT}{label}: {lines[0]}".rstrip(), *rest]


def _messages(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request's conversation as messages (chat ``messages`` or Responses ``input``)."""
    raw = request.get("messages")
    if raw is None:
        raw = request.get("input")
        if isinstance(raw, str):
            return [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        return []
    return [m for m in raw if isinstance(m, Mapping)]


def _system(request: Mapping[str, Any], messages: list[Mapping[str, Any]]) -> str:
    for key in ("system", "instructions"):
        if request.get(key):
            return content_text(request[key])
    texts = [
        content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    ]
    return "\n".join(t for t in texts if t)


def request_lines(request: Mapping[str, Any]) -> list[str]:
    """The system prompt (shortened) and the last user message of a request."""
    messages = _messages(request)
    lines: list[str] = []
    system = _system(request, messages)
    if system:
        lines.extend(_block("system", _short(system)))
    users = [n for n, m in enumerate(messages) if m.get("role") == "user"]
    if users:
        last = users[-1]
        lines.extend(_block("user", _clip(content_text(messages[last].get("content")), USER_CHARS)))
        after = [str(m.get("role") or m.get("type") or "?") for m in messages[last + 1 :]]
        if after:
            lines.append(f"{_INDENT}(then {len(after)} more: {', '.join(after)})")
    elif isinstance(request.get("prompt"), str):
        lines.extend(_block("prompt", _clip(request["prompt"], USER_CHARS)))
    elif messages:
        roles = ", ".join(str(m.get("role") or m.get("type") or "?") for m in messages)
        lines.append(f"{_INDENT}({len(messages)} messages, none from the user: {roles})")
    return lines


def _usage(usage: Mapping[str, Any] | None) -> str:
    if not usage:
        return ""
    given, made = usage.get("input_tokens"), usage.get("output_tokens")
    if given is None and made is None:
        return ""
    return f"{'?' if given is None else given} in / {'?' if made is None else made} out tokens"


def reply_lines(interaction: Interaction) -> list[str]:
    """The reply of an interaction: its text (or what it holds), finish reason and usage."""
    reply, ended = reply_of(interaction)
    response = interaction.response
    if reply is None:
        text = str(response.get("text", "")) if "text" in response else "(not shown)"
        return _block("reply", _clip(text, REPLY_CHARS))
    output = reply.output
    if output is None:
        text = "(no text)"
    elif isinstance(output, str):
        text = output
    else:
        text = json.dumps(output, ensure_ascii=False)
    notes = [str(n) for n in (reply.finish_reason, _usage(reply.usage)) if n]
    if not ended:
        notes.append("stream recorded incomplete")
    label = f"reply ({'; '.join(notes)})" if notes else "reply"
    lines = _block(label, _clip(text, REPLY_CHARS))
    if reply.error:
        lines.extend(_block("error", str(reply.error)))
    return lines


# --------------------------------------------------------------------------- the cassette


def interaction_title(interaction: Interaction) -> str:
    """``turn N · role · #index · provider endpoint · model``."""
    parts = [
        f"turn {interaction.turn}",
        interaction.role,
        f"#{interaction.index}",
        f"{interaction.provider} {interaction.endpoint}",
        interaction.model or "(no model)",
    ]
    if interaction.request.get("stream"):
        parts.append("stream")
    return " · ".join(parts)


def describe_cassette(cassette: Cassette, path: Path | None = None) -> list[str]:
    """The lines ``fluxloop cassettes show`` prints for ``cassette``."""
    lines = []
    if path is not None:
        lines.append(f"Cassette: {path}")
    lines.append(f"Experiment: {cassette.experiment or '(not recorded)'}")
    lines.append(f"Case: {cassette.case_id} (iteration {cassette.iteration})")
    versions = ", ".join(f"{k} {v}" for k, v in sorted(cassette.recorded_with.items()))
    lines.append(f"Recorded with: {versions or '(not recorded)'}")
    models = "; ".join(f"{role} {', '.join(names)}" for role, names in cassette.models().items())
    lines.append(f"Models: {models or '(none)'}")
    by_role: dict[str, int] = {}
    for interaction in cassette.interactions:
        by_role[interaction.role] = by_role.get(interaction.role, 0) + 1
    roles = ", ".join(f"{role} {count}" for role, count in by_role.items())
    count = len(cassette.interactions)
    lines.append(f"Interactions: {count}" + (f" ({roles})" if roles else ""))
    for interaction in cassette.interactions:
        lines.append("")
        lines.append(interaction_title(interaction))
        lines.extend(request_lines(interaction.request))
        lines.extend(reply_lines(interaction))
    return lines
