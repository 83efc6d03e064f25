"""The Markdown report ``fluxloop evaluate experiment`` writes next to its ``summary.json``.

Short on purpose: the verdicts, the gates, the reliability table, each evaluator's figures
and the failing cases with their reasons; the full data is in ``summary.json`` and
``per_trace.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records import TraceRecord
from .reliability import reliability_table

if TYPE_CHECKING:
    from .run_stats import EvaluationOutcome
    from .spec import EvaluationSpec

__all__ = ["render_report"]

#: At most this many failing cases are listed (all are in per_trace.jsonl).
FAILURES_SHOWN = 50


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= 120 else text[:119] + "…"


def _fixed(value: Any, form: str) -> str:
    return "" if value is None else form.format(value)


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    """A Markdown section with one table (nothing when there are no rows)."""
    if not rows:
        return []
    lines = [f"## {title}", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "---|" * len(headers))
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def render_report(
    directory: Path,
    records: list[TraceRecord],
    spec: EvaluationSpec,
    outcome: EvaluationOutcome,
) -> str:
    """The report as Markdown text."""
    block = outcome.block
    lines = [f"# Evaluation of {directory.name}", ""]
    if spec.evaluation_goal:
        lines += [f"Goal: {spec.evaluation_goal.strip()}", ""]
    verdicts = block.get("verdicts") or {}
    lines += [
        f"- traces: {len(records)}",
        f"- verdicts: {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items())) or 'none'}",
        f"- threshold: {spec.threshold:g} ({spec.method})",
        f"- unscored evaluator results: {outcome.unscored}",
        f"- run verdict: {'FAIL' if outcome.fails_run else 'PASS'}",
        "",
    ]
    if outcome.gates or outcome.alerts:
        lines += ["## Gates", ""]
        for gate in outcome.gates:
            lines.append(f"- {'PASS' if gate.passed else 'FAIL'}: {gate.message}")
        for alert in outcome.alerts:
            if not alert.passed:
                lines.append(f"- ALERT: {alert.message}")
        lines.append("")
    lines += [
        "## Reliability",
        "",
        "```",
        *reliability_table(block.get("reliability") or {}),
        "```",
        "",
    ]
    evaluators = block.get("evaluators") or {}
    lines += _table(
        "Evaluators",
        ("evaluator", "passed", "failed", "unscored", "skipped", "mean score"),
        [
            (
                name,
                *(s.get(k, 0) for k in ("passed", "failed", "unscored", "skipped")),
                _fixed(s.get("mean_score"), "{:.2f}"),
            )
            for name, s in evaluators.items()
        ],
    )
    personas = block.get("by_persona") or {}
    lines += _table(
        "By persona",
        ("persona", "passed", "failed", "success rate"),
        [
            (name, s.get("passed", 0), s.get("failed", 0), _fixed(s.get("success_rate"), "{:.0%}"))
            for name, s in personas.items()
        ],
    )
    failing = [
        r
        for r in records
        if r.evaluation is not None and r.evaluation.verdict in ("failed", "unscored")
    ]
    if failing:
        lines += ["## Failing and unscored cases", ""]
        for record in failing[:FAILURES_SHOWN]:
            evaluation = record.evaluation
            assert evaluation is not None
            lines.append(
                f"- `{record.case_id}` ({record.persona or '-'}): **{evaluation.verdict}**, "
                f"{_cell(evaluation.reason)}"
            )
            for result in evaluation.evaluators:
                if result.status in ("failed", "unscored"):
                    lines.append(f"  - {result.name}: {result.status}, {_cell(result.reason)}")
        if len(failing) > FAILURES_SHOWN:
            lines.append(f"- … and {len(failing) - FAILURES_SHOWN} more (per_trace.jsonl)")
        lines.append("")
    return "\n".join(lines)
