"""JSON Schemas (draft 2020-12) of the artifact files, generated from the pydantic models.

The generated files are committed under ``pytest_fluxloop/artifacts/schemas/`` and shipped in
the package; ``tests/test_artifact_schemas.py`` fails when they drift from the models.
Regenerate them after changing ``records.py``::

    python -m pytest_fluxloop.artifacts.schemas

=================  =====================  ==============================================
name               file                   model
=================  =====================  ==============================================
``summary``        ``summary.json``       :class:`~pytest_fluxloop.records.ExperimentSummary`
``trace_summary``  ``trace_summary.jsonl``  :class:`TraceSummaryLine` (one line)
``trace``          ``traces.jsonl``       :class:`~pytest_fluxloop.records.TraceRecord` (one line)
``observation``    ``observations.jsonl`` :class:`~pytest_fluxloop.records.Observation` (one line)
=================  =====================  ==============================================
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..records import (
    ErrorKind,
    ExperimentSummary,
    Observation,
    TraceRecord,
    TraceStatus,
    TruncationInfo,
)

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "SCHEMA_NAMES",
    "ConversationEntry",
    "ConversationEntryMetadata",
    "TraceSummaryLine",
    "generate_schemas",
    "load_schema",
    "main",
    "schema_path",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_NAMES = ("summary", "trace_summary", "trace", "observation")
_SCHEMA_DIR = "schemas"


class ConversationEntryMetadata(BaseModel):
    """``metadata`` of a conversation entry: where the earlier FluxLoop tools read its marks."""

    model_config = ConfigDict(extra="forbid")

    persona: str | None = Field(
        default=None, description="The persona the user message was played as (user turns)."
    )
    closing: bool = Field(default=False, description="Present (true) on the closing message.")


class ConversationEntry(BaseModel):
    """One message of a ``trace_summary.jsonl`` line's ``conversation`` (the earlier FluxLoop
    shape; :func:`~pytest_fluxloop.records.conversation_entries`)."""

    model_config = ConfigDict(extra="forbid")

    turn_index: int = Field(
        description="1-based turn: a user message and the agent's reply share one index; the "
        "closing message gets the next."
    )
    role: str = Field(description="user | assistant")
    content: str = Field(description="The message text (JSON text for a structured reply).")
    source: Literal["input", "supervisor", "agent"] = Field(
        description="input: the case's input; supervisor: a simulated user message; agent: "
        "a reply of the agent under test."
    )
    closing: bool = Field(
        default=False,
        description="Present (true) only on the supervisor's closing user message, which ends "
        "the conversation and which the agent never answers.",
    )
    metadata: ConversationEntryMetadata
    content_truncated: TruncationInfo | None = Field(
        default=None, description="Present only when content was cut to artifact_field_max_chars."
    )


class TraceSummaryLine(BaseModel):
    """One line of ``trace_summary.jsonl``: the shape of ``TraceRecord.summary_line()``."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str
    case_id: str
    iteration: int
    persona: str | None
    input: str
    output: Any
    duration_ms: float
    success: bool
    status: TraceStatus
    attempts: int
    token_usage: dict[str, Any] | None = Field(
        description="Token counts by role (the trace's token_usage)."
    )
    error: str | None
    error_kind: ErrorKind | None
    error_type: str | None = Field(description="The error's type (exception class or code).")
    conversation: list[ConversationEntry] = Field(
        description="The transcript: a single-turn trace's input and (when the agent answered) "
        "its output; a multi-turn trace's every message, the closing one marked."
    )
    termination_reason: str | None = Field(
        description="Why a multi-turn conversation ended (the supervisor's reason, "
        "max_turns_reached, timeout or error); null for a single-turn trace."
    )
    evaluation: dict[str, Any] | None = Field(
        description="The trace's verdict in short: {verdict, score, evaluators: {name: "
        "{status, score, unscored_reason?, cached?}}}; null when nothing evaluated it."
    )
    # Present only when the field was cut to artifact_field_max_chars.
    input_truncated: TruncationInfo | None = None
    output_truncated: TruncationInfo | None = None
    error_truncated: TruncationInfo | None = None


def _schema(model: type[BaseModel], description: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema, "description": description}


def generate_schemas() -> dict[str, dict[str, Any]]:
    """Build the four artifact schemas from the pydantic models, keyed by schema name."""
    summary = _schema(
        ExperimentSummary,
        "summary.json: aggregate statistics of one experiment run. Keys passed to "
        "ExperimentWriter.finish(extra=...) may appear next to the documented ones.",
    )
    # finish(extra=...) adds top-level keys the model does not know; documented fields are
    # still fully checked, nested objects stay strict.
    summary["additionalProperties"] = True
    return {
        "summary": summary,
        "trace_summary": _schema(
            TraceSummaryLine, "One line of trace_summary.jsonl (TraceRecord.summary_line())."
        ),
        "trace": _schema(TraceRecord, "One line of traces.jsonl: a complete finished case."),
        "observation": _schema(Observation, "One line of observations.jsonl: one event."),
    }


def _check_name(name: str) -> None:
    if name not in SCHEMA_NAMES:
        raise KeyError(f"unknown artifact schema {name!r}; expected one of {SCHEMA_NAMES}")


def schema_path(name: str) -> Path:
    """Path of the committed schema file in the source tree (used when regenerating)."""
    _check_name(name)
    return Path(__file__).with_name(_SCHEMA_DIR) / f"{name}.schema.json"


def load_schema(name: str) -> dict[str, Any]:
    """Read a shipped schema (``summary``, ``trace_summary``, ``trace`` or ``observation``)."""
    _check_name(name)
    resource = resources.files(__package__).joinpath(_SCHEMA_DIR).joinpath(f"{name}.schema.json")
    data: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return data


def render(schema: dict[str, Any]) -> str:
    """The exact text a schema file is written with."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the schema files from the models; ``--check`` only reports drift."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale = []
    for name, schema in generate_schemas().items():
        path = schema_path(name)
        text = render(schema)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if check else "rewritten"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
