"""What the HTML report shows, read from an experiment folder without holding its traces.

:func:`read_rows` streams ``trace_summary.jsonl`` once and keeps one small
:class:`CaseRow` per case (the latest line of each, like the reader); the per-persona and
per-input tables, the charts and the token split are computed from those rows.
:func:`scan_records` then streams ``traces.jsonl`` for only the cases shown in full,
skipping every other line without parsing its JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..artifacts.reader import ExperimentFolder, read_json_lines
from ..artifacts.writer import TRACE_SUMMARY_FILE, TRACES_FILE
from ..evaluation.gates import latency_stats
from ..evaluation.reliability import (
    EXCLUDED_JUDGE,
    FAIL,
    PASS,
    case_outcome,
    group_key,
    pass_hat_k,
)

__all__ = [
    "ATTENTION",
    "CATEGORIES",
    "CaseRow",
    "GroupStats",
    "group_table",
    "read_rows",
    "role_totals",
    "scan_records",
]

CATEGORIES = ("error", "failed", "unscored", "passed")
"""What a case's row says, worst first: the agent did not return normally (any status but
``success``), its evaluation failed, no verdict could be given, or it passed."""
ATTENTION = frozenset(CATEGORIES[:3])
"""The categories shown first ("needs attention")."""
ROLES = ("agent", "supervisor", "judge", "generator")

INPUT_CUT = 300
"""Characters of an input or error kept per row (the full text is in the JSONL files)."""


@dataclass(slots=True)
class CaseRow:
    """One case, as little as the tables need (a few hundred bytes at most)."""

    line: int
    """Its line in ``trace_summary.jsonl`` (1-based)."""
    trace_id: str
    case_id: str
    iteration: int | None
    persona: str
    input: str
    """The input, cut to :data:`INPUT_CUT` characters."""
    group: tuple[str, str]
    """``(input, persona)``: the reliability group (:func:`group_key`, full input)."""
    status: str
    category: str
    outcome: str
    """:func:`case_outcome`: pass, fail, or why the run is not counted."""
    verdict: str | None
    score: float | None
    duration_ms: float | None
    tokens: dict[str, int | None] = field(default_factory=dict)
    """Total tokens by role (None: calls made, count not reported)."""
    turns: int | None = None
    error: str | None = None
    index: int = -1
    """Its place in the report (attention first); set by :func:`read_rows`."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _category(status: str, verdict: str | None) -> str:
    if status != "success":
        return "error"
    if verdict == "failed":
        return "failed"
    if verdict == "unscored":
        return "unscored"
    return "passed"


def _turns(conversation: Any) -> int | None:
    """Agent replies in a ``conversation`` list (None for a single-turn trace)."""
    if not isinstance(conversation, list):
        return None
    sources = [e.get("source") for e in conversation if isinstance(e, dict)]
    if "supervisor" not in sources:
        return None
    return sum(1 for s in sources if s == "agent")


def _cut(value: Any, limit: int = INPUT_CUT) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(number: int, line: dict[str, Any]) -> CaseRow:
    evaluation = line.get("evaluation")
    verdict = evaluation.get("verdict") if isinstance(evaluation, dict) else None
    status = str(line.get("status") or ("success" if line.get("success") else "error"))
    usage = line.get("token_usage")
    tokens: dict[str, int | None] = {}
    if isinstance(usage, dict):
        for role, counts in usage.items():
            if isinstance(counts, dict):
                total = _number(counts.get("total_tokens"))
                tokens[str(role)] = None if total is None else int(total)
    persona = line.get("persona")
    iteration = line.get("iteration")
    error = line.get("error")
    return CaseRow(
        line=number,
        trace_id=str(line.get("trace_id") or ""),
        case_id=str(line.get("case_id") or line.get("trace_id") or f"line {number}"),
        iteration=iteration if isinstance(iteration, int) else None,
        persona="" if persona is None else str(persona),
        input=_cut(line.get("input")),
        group=group_key(line),
        status=status,
        category=_category(status, verdict if isinstance(verdict, str) else None),
        outcome=case_outcome(line),
        verdict=verdict if isinstance(verdict, str) else None,
        score=_number(evaluation.get("score")) if isinstance(evaluation, dict) else None,
        duration_ms=_number(line.get("duration_ms")),
        tokens=tokens,
        turns=_turns(line.get("conversation")),
        error=None if error is None else _cut(error if isinstance(error, str) else str(error)),
    )


def read_rows(
    folder: ExperimentFolder, clean: Callable[[str], str] = lambda text: text
) -> list[CaseRow]:
    """One row per case, the latest line of each, attention first (then file order).

    ``clean`` is applied to the whole input and error before they are cut (the report
    passes its redactor: a cut must never leave half a key behind).
    """
    path = folder.path / TRACE_SUMMARY_FILE
    latest: dict[str, CaseRow] = {}
    if path.is_file():
        for number, line in read_json_lines(path):
            for key in ("input", "error"):
                if isinstance(line.get(key), str):
                    line[key] = clean(line[key])
            row = _row(number, line)
            latest.pop(row.case_id, None)  # re-inserted: the order of the latest lines
            latest[row.case_id] = row
    rank = {name: i for i, name in enumerate(CATEGORIES)}
    rows = sorted(latest.values(), key=lambda r: rank[r.category])
    for index, row in enumerate(rows):
        row.index = index
    return rows


# A record line starts with its trace id (the writer dumps TraceRecord in field order): a
# line of a case not shown in full is skipped without parsing its JSON.
_TRACE_ID = re.compile(r'\{"trace_id":\s*"([0-9A-Za-z_.:-]*)"')


def scan_records(
    folder: ExperimentFolder, wanted: Iterable[str]
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """``(file name, line number, record)`` for each wanted trace id, in file order.

    From ``traces.jsonl`` (the first record of each id, as the reader takes it), else from
    ``trace_summary.jsonl`` (its last line per id). One record is held at a time.
    """
    ids = set(wanted)
    if not ids:
        return
    traces = folder.path / TRACES_FILE
    if not traces.is_file():
        found: dict[str, int] = {}
        path = folder.path / TRACE_SUMMARY_FILE
        for number, line in read_json_lines(path):
            if line.get("trace_id") in ids:
                found[str(line["trace_id"])] = number
        lines = set(found.values())
        for number, line in read_json_lines(path):
            if number in lines:
                yield TRACE_SUMMARY_FILE, number, line
        return
    with traces.open("r", encoding="utf-8", errors="replace") as fh:
        for number, text in enumerate(fh, 1):
            match = _TRACE_ID.match(text)
            if match is not None and match.group(1) not in ids:
                continue
            try:
                record = json.loads(text)
            except ValueError:
                continue  # a torn last line, or one the reader would refuse: not shown
            trace_id = record.get("trace_id") if isinstance(record, dict) else None
            if isinstance(trace_id, str) and trace_id in ids:
                ids.discard(trace_id)
                yield TRACES_FILE, number, record
                if not ids:
                    return


@dataclass
class GroupStats:
    """The cases of one persona or one input: outcomes, latency and agent tokens."""

    name: str
    runs: int = 0
    passes: int = 0
    fails: int = 0
    unscored: int = 0
    excluded: int = 0
    durations: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)

    def add(self, row: CaseRow) -> None:
        """Count one case like the run's reliability figures do (:func:`case_outcome`)."""
        self.runs += 1
        if row.outcome == PASS:
            self.passes += 1
        elif row.outcome == FAIL:
            self.fails += 1
        elif row.outcome == EXCLUDED_JUDGE:
            self.unscored += 1
        else:
            self.excluded += 1
        if row.duration_ms is not None and row.outcome in (PASS, FAIL, EXCLUDED_JUDGE):
            self.durations.append(row.duration_ms)
        agent = row.tokens.get("agent")
        if agent is not None:
            self.tokens.append(float(agent))

    @property
    def success_rate(self) -> float | None:
        """Passes over counted runs (unscored and harness failures left out)."""
        counted = self.passes + self.fails
        return self.passes / counted if counted else None

    def pass_hat(self, k: int) -> float | None:
        """pass^k of this group's counted runs (None with fewer than k)."""
        return pass_hat_k(self.passes + self.fails, self.passes, k)

    def latency(self) -> dict[str, Any]:
        """``latency_stats`` of its counted runs."""
        return latency_stats(self.durations)


def group_table(rows: Sequence[CaseRow], key: Callable[[CaseRow], str]) -> list[GroupStats]:
    """Rows grouped by ``key``, worst success rate first (groups with none counted last)."""
    groups: dict[str, GroupStats] = {}
    for row in rows:
        name = key(row)
        stats = groups.get(name)
        if stats is None:
            stats = groups[name] = GroupStats(name)
        stats.add(row)
    return sorted(
        groups.values(),
        key=lambda g: (g.success_rate is None, g.success_rate or 0.0, -g.runs, g.name),
    )


def role_totals(summary: dict[str, Any], rows: Sequence[CaseRow]) -> dict[str, dict[str, Any]]:
    """The run's token counts by role: ``summary.json`` ``token_usage``, else summed from the
    rows (their totals only). Roles in :data:`ROLES` order, then any others."""
    usage = summary.get("token_usage")
    found: dict[str, dict[str, Any]] = {}
    if isinstance(usage, dict) and usage:
        found = {str(k): v for k, v in usage.items() if isinstance(v, dict)}
    else:
        for row in rows:
            for role, total in row.tokens.items():
                into = found.setdefault(role, {"total_tokens": None, "cases": 0})
                into["cases"] += 1
                if total is not None:
                    into["total_tokens"] = (into["total_tokens"] or 0) + total
    order = {role: i for i, role in enumerate(ROLES)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(ROLES)), kv[0])))
