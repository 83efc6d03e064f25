"""``fluxloop parse experiment DIR``: one readable file per trace, and ``per_trace.jsonl``.

Each trace of an experiment becomes ``NN_<case_id>.md`` (or ``.json`` with ``--format
json``) in a folder inside the experiment (``per_trace_analysis/`` by default): its header,
input, timeline of observations, conversation, output, error and evaluation. Every trace is
also one line of ``per_trace.jsonl``, in the earlier FluxLoop shape (``trace_id, iteration,
persona, input, output, final_output, duration_ms, success, summary, timeline, metrics``)
plus this project's fields.

Traces are read one at a time (:meth:`ExperimentFolder.iter_traces`), so an experiment of
20,000 traces is never held in memory. The files are written to a temporary folder next to
the output and swapped in at the end: a failed parse leaves the earlier output as it was.
The experiment's own files are only read.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..artifacts.paths import folder_inside, slugify_suffix
from ..artifacts.reader import ExperimentFolder
from ..artifacts.writer import (
    CONFIG_FILE,
    METADATA_FILE,
    OBSERVATIONS_FILE,
    RESERVE_FILE,
    SUMMARY_FILE,
    TRACE_SUMMARY_FILE,
    TRACES_FILE,
)
from ..errors import ArtifactWriteError, ConfigError, OutputPathError
from ..records import conversation_entries
from ..redact import Redactor
from .parse_markdown import render_trace
from .parse_timeline import build_timeline

__all__ = [
    "DEFAULT_OUTPUT",
    "FORMATS",
    "PER_TRACE_FILE",
    "ParseResult",
    "parse_experiment",
    "per_trace_entry",
]

DEFAULT_OUTPUT = "per_trace_analysis"
PER_TRACE_FILE = "per_trace.jsonl"
FORMATS = ("md", "json")
ParseFormat = Literal["md", "json"]

# Names a run writes at the top of its folder: an output there would mix with them.
_OWN_FILES = frozenset(
    {
        SUMMARY_FILE,
        METADATA_FILE,
        CONFIG_FILE,
        TRACE_SUMMARY_FILE,
        TRACES_FILE,
        OBSERVATIONS_FILE,
        RESERVE_FILE,
    }
)


@dataclass
class ParseResult:
    """What :func:`parse_experiment` wrote."""

    output: Path
    """The folder the files are in."""
    fmt: str
    source: str
    """The file the traces were read from (``traces.jsonl``, else ``trace_summary.jsonl``)."""
    traces: int = 0
    files: list[str] = field(default_factory=list)
    """The per-trace file names, in trace order."""
    notes: list[str] = field(default_factory=list)
    """Things the reader should know (traces listed but without a full record ...)."""

    @property
    def per_trace(self) -> Path:
        """``per_trace.jsonl``."""
        return self.output / PER_TRACE_FILE


def parse_experiment(
    folder: ExperimentFolder,
    output: Path | str = DEFAULT_OUTPUT,
    *,
    fmt: ParseFormat = "md",
    overwrite: bool = False,
) -> ParseResult:
    """Write one file per trace of ``folder`` and ``per_trace.jsonl`` into ``output``.

    ``output`` is taken inside the experiment folder (relative to it; an absolute path must
    lead inside it too). Every value is redacted again on the way out, before anything is
    cut short, so no cut can leave half a secret that no longer looks like one.

    Raises:
        OutputPathError: ``output`` leads out of the experiment folder, or names one of its
            own files.
        ConfigError: ``output`` exists and ``overwrite`` is false (or it is a file), or a
            line of the experiment is not JSON.
        ArtifactWriteError: a file could not be written (the earlier output is kept).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    base = folder.path.resolve()
    target = folder_inside(base, output)
    _check_target(base, target, output, overwrite=overwrite)
    lines = folder.summary_lines()
    by_trace = {str(line.get("trace_id")): line for line in lines}
    width = max(2, len(str(max(len(lines) - 1, 0))))
    full = folder.has_traces
    # One redactor for the whole parse: the secret environment values are read once, not
    # once per trace (what redact() does).
    redact = Redactor()
    result = ParseResult(output=target, fmt=fmt, source=TRACES_FILE if full else TRACE_SUMMARY_FILE)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise ArtifactWriteError(target, exc.strerror or str(exc)) from None
    try:
        with _open(work / PER_TRACE_FILE) as per_trace:
            for index, raw in enumerate(folder.iter_traces()):
                data: dict[str, Any] = redact(raw)
                line = redact(by_trace.get(str(data.get("trace_id")), {})) if full else data
                label = f"{index:0{width}d}"
                name = f"{label}_{_slug(data)}.{fmt}"
                entry = per_trace_entry(data, line, full=full)
                per_trace.write(json.dumps(entry, ensure_ascii=False) + "\n")
                with _open(work / name) as fh:
                    if fmt == "md":
                        fh.write(render_trace(entry, label=label, experiment=folder.name))
                    else:
                        fh.write(json.dumps(entry, ensure_ascii=False, indent=2) + "\n")
                result.files.append(name)
                result.traces += 1
        _swap(work, target)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise ArtifactWriteError(Path(exc.filename or target), exc.strerror or str(exc)) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if full and result.traces < len(lines):
        result.notes.append(
            f"{len(lines) - result.traces} of the {len(lines)} traces listed in "
            f"{TRACE_SUMMARY_FILE} have no record in {TRACES_FILE}; they are not in the output"
        )
    return result


def _check_target(base: Path, target: Path, given: Path | str, *, overwrite: bool) -> None:
    if target.parent == base and target.name in _OWN_FILES:
        raise OutputPathError(
            f"--output {os.fspath(given)!r}: {target.name} is one of the experiment's own "
            "files; choose another folder name (e.g. --output per_trace_analysis)"
        )
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"--output {os.fspath(given)!r}: {target} is a file, not a folder; choose "
            "another folder name"
        )
    if target.exists() and not overwrite:
        raise ConfigError(
            f"{target} already exists; pass --overwrite to replace it, or --output another folder"
        )


def _open(path: Path) -> Any:
    # A lone surrogate (only from a hand-edited file: the writer replaces them) must not
    # stop the parse.
    return path.open("w", encoding="utf-8", errors="replace", newline="\n")


def _swap(work: Path, target: Path) -> None:
    """Put ``work`` where ``target`` is, the old ``target`` (if any) removed only after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(work, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _slug(data: dict[str, Any]) -> str:
    for key in ("case_id", "trace_id"):
        slug = slugify_suffix(str(data.get(key) or ""))
        if slug:
            return slug
    return "trace"


# ----------------------------------------------------------------------- per_trace.jsonl


def per_trace_entry(data: dict[str, Any], line: dict[str, Any], *, full: bool) -> dict[str, Any]:
    """The ``per_trace.jsonl`` entry of one trace.

    Args:
        data: the trace's full record (``traces.jsonl``), or its ``trace_summary.jsonl``
            line when the run kept no full records.
        line: its ``trace_summary.jsonl`` line (``{}`` if none).
        full: whether ``data`` is a full record.
    """
    timeline = build_timeline(data) if full else []
    observations = data.get("observations") if full else None
    count = len(observations) if isinstance(observations, list) else 0
    given = data.get("multi_turn")
    multi_turn: dict[str, Any] = given if isinstance(given, dict) else {}
    conversation = conversation_entries(data) if full else data.get("conversation") or []
    termination = multi_turn.get("termination_reason") or line.get("termination_reason")
    # A summary line has no multi_turn block: a conversation is more than one exchange.
    enabled = bool(multi_turn.get("enabled")) or termination is not None or len(conversation) > 2
    entry: dict[str, Any] = {
        "trace_id": data.get("trace_id"),
        "case_id": data.get("case_id") or data.get("trace_id"),
        "iteration": data.get("iteration"),
        "persona": data.get("persona"),
        "persona_description": data.get("persona_description"),
        "input": data.get("input"),
        "output": data.get("output"),
        "final_output": data.get("output"),
        "duration_ms": data.get("duration_ms"),
        "success": data.get("success"),
        "status": data.get("status") or ("success" if data.get("success") else "error"),
        "attempts": data.get("attempts", 1),
        "started_at": data.get("started_at"),
        "error": _error(data),
        "multi_turn": {
            "enabled": enabled,
            "turn_count": multi_turn.get("turn_count"),
            "termination_reason": termination,
        },
        "termination_reason": termination,
        "supervisor": _supervisor(data),
        "token_usage": data.get("token_usage"),
        "evaluation": data.get("evaluation"),
        "conversation": conversation,
        "summary": line,
        "timeline": timeline,
        "metrics": {
            "observation_count": count,
            "observations_dropped": data.get("observations_dropped", 0) if full else None,
            "timeline_entries": len(timeline),
            "tool_calls": sum(1 for e in timeline if e["kind"] == "tool"),
            "llm_calls": sum(1 for e in timeline if e["kind"] == "generation"),
            "errors": sum(1 for e in timeline if e["error"] is not None),
        },
    }
    if full and isinstance(data.get("conversation_state"), dict):
        entry["conversation_state"] = data["conversation_state"]
    return entry


def _error(data: dict[str, Any]) -> dict[str, Any] | None:
    """The trace's error as ``{kind, type, message, traceback}`` (a summary line has no
    traceback)."""
    error = data.get("error")
    if isinstance(error, dict):
        return {k: error.get(k) for k in ("kind", "type", "message", "traceback")}
    if not error:
        return None
    return {
        "kind": data.get("error_kind"),
        "type": data.get("error_type"),
        "message": str(error),
        "traceback": None,
    }


def _supervisor(data: dict[str, Any]) -> dict[str, Any] | None:
    """The supervisor block of a multi-turn trace (implementation, model, decisions)."""
    state = data.get("conversation_state")
    metadata = state.get("metadata") if isinstance(state, dict) else None
    supervisor = metadata.get("supervisor") if isinstance(metadata, dict) else None
    return supervisor if isinstance(supervisor, dict) else None
