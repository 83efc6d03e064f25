"""What a rule or a judge reads from a trace: its output, input, transcript, one role's turns,
a metadata value, the agent's turn count and its tool calls.

The transcript comes from :func:`pytest_fluxloop.records.conversation_entries`, the same
function that writes the ``conversation`` of ``trace_summary.jsonl``: a rule reads exactly
the conversation a user sees in the artifacts.
"""

from __future__ import annotations

import json
from typing import Any

from ..config.errors import suggest_key
from ..records import Observation, TraceRecord, conversation_entries

__all__ = [
    "METADATA_PREFIX",
    "TARGETS",
    "as_text",
    "check_target",
    "lookup_path",
    "target_text",
    "tool_calls",
    "turn_count",
]

TARGETS = (
    "output",
    "input",
    "transcript",
    "conversation",
    "user",
    "assistant",
    "agent",
    "supervisor",
)
"""The target names a rule or judge may read (besides ``metadata.<dotted.path>``).
``conversation`` is another name of ``transcript``, ``agent`` of ``assistant``."""

METADATA_PREFIX = "metadata."
"""A target ``metadata.<dotted.path>`` reads a value of the trace's (the input's) metadata."""

_ALIASES = {"conversation": "transcript", "agent": "assistant"}

# The fields conversation_entries reads: dumping only these keeps a trace with thousands
# of observations from being converted in full for every rule.
_TRANSCRIPT_FIELDS = {"persona", "input", "output", "status", "multi_turn", "conversation_state"}


def as_text(value: Any) -> str:
    """``value`` as the text a rule reads: a str as it is, None as ``""``, anything else as
    its compact JSON (the form ``trace_summary.jsonl`` shows a structured output in)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def check_target(name: str) -> str | None:
    """Why ``name`` is not a target a rule or judge can read, or None when it is.

    A typo gets the closest valid name as a suggestion.
    """
    if name in TARGETS:
        return None
    if name.startswith(METADATA_PREFIX):
        path = name[len(METADATA_PREFIX) :]
        if path and all(part.strip() for part in path.split(".")):
            return None
        return (
            f"target {name!r} is not a metadata path: write metadata.<key> "
            "(e.g. metadata.expected), with no empty parts"
        )
    valid = ", ".join((*TARGETS, f"{METADATA_PREFIX}<path>"))
    candidates = (*TARGETS, "metadata")
    close = suggest_key(name, candidates)
    if close == "metadata":
        hint = " (did you mean 'metadata.<key>'?)"
    else:
        hint = f" (did you mean {close!r}?)" if close else ""
    return f"unknown target {name!r}{hint}; valid: {valid}"


def target_text(record: TraceRecord, target: str | None) -> str:
    """The text ``target`` names in ``record`` (None: the output).

    ``transcript`` is one ``"<role>: <content>"`` line per message; ``user``, ``assistant``
    and ``supervisor`` are those messages' contents, one per line. A ``metadata.<path>`` that
    is not there reads as ``""``. Raises ValueError for an unknown target.
    """
    name = _ALIASES.get(target or "output", target or "output")
    if name == "output":
        return as_text(record.output)
    if name == "input":
        return record.input
    if name.startswith(METADATA_PREFIX):
        problem = check_target(name)
        if problem:
            raise ValueError(problem)
        _found, value = lookup_path(record, name)
        return as_text(value)
    if name not in TARGETS:
        raise ValueError(check_target(name) or f"unknown target {name!r}")
    entries = conversation_entries(record.model_dump(mode="json", include=_TRANSCRIPT_FIELDS))
    if name == "transcript":
        return "\n".join(f"{entry['role']}: {entry['content']}" for entry in entries)
    # conversation_entries marks who wrote each message: the first user message is the
    # case's input, every later one the supervisor's, every other message the agent's.
    sources = {"user": ("input", "supervisor"), "assistant": ("agent",)}.get(name, (name,))
    return "\n".join(str(entry["content"]) for entry in entries if entry["source"] in sources)


def lookup_path(record: TraceRecord, path: str) -> tuple[bool, Any]:
    """The value at dotted ``path`` in ``record``'s JSON form: ``(found, value)``.

    ``metadata.expected`` reads the record's metadata; a path that is not on the record
    (``expected_intent``) is tried inside its metadata, where an input's extra keys live.
    A number part indexes a list (``conversation_state.turns.0.content``).
    """
    parts = path.split(".")
    if not path or not all(parts):
        return False, None
    head = parts[0]
    if head in TraceRecord.model_fields:
        found, value = _walk(record.model_dump(mode="json", include={head}), parts)
        if found:
            return found, value
    metadata = record.model_dump(mode="json", include={"metadata"})["metadata"]
    return _walk(metadata, parts)


def _walk(data: Any, parts: list[str]) -> tuple[bool, Any]:
    current = data
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def turn_count(record: TraceRecord) -> int:
    """How many replies the agent gave: the conversation's turn count when multi-turn, else
    1 when it answered and 0 when it did not."""
    multi_turn = record.multi_turn
    if multi_turn is not None and multi_turn.enabled:
        return multi_turn.turn_count
    return 1 if record.success else 0


def tool_calls(record: TraceRecord) -> list[Observation]:
    """The agent's tool calls in ``record``, one observation per call, in order.

    A call is the ``span_start`` of a ``tool`` span (its ``span_end`` shares the
    ``observation_id`` and is not counted again) or an older ``tool_call`` observation.
    Calls made as another role (the supervisor, a judge) are the harness's, not the agent's.
    """
    return [
        obs
        for obs in record.observations
        if (obs.type == "tool_call" or (obs.kind == "tool" and obs.type == "span_start"))
        and obs.role in (None, "agent")
    ]
