"""The run-level sections of the HTML report: header and headline, and the helpers every
section uses (tables, percentages, JSON shown as tables).

Each function returns an HTML fragment with every value escaped (a persona name, an input,
a config value are data from the run). Numbers are formatted once, here, so the page shows
exactly what ``summary.json`` holds (percentages to one decimal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..artifacts.reader import ExperimentFolder
from ..artifacts.resume import parse_time
from ..redact import redact
from .charts import fmt_number, stacked_bar_svg
from .html_data import CATEGORIES, CaseRow

__all__ = [
    "TABLE_ROWS",
    "evaluated",
    "header",
    "headline",
    "json_tables",
    "pct",
    "pick_k",
    "table",
    "text",
]

CONFIG_CHARS = 60_000
"""Characters of the config snapshot shown (it is in config.yaml in full)."""
TABLE_ROWS = 200
"""Rows of a per-input or reliability table; the worst come first, the rest are counted."""


def pct(value: Any) -> str:
    """A share as a percentage with one decimal, ``—`` when there is none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value * 100:.1f}%"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    """A table whose cells are already HTML (escape them first); ``head`` is escaped here."""
    cls = f' class="{css}"' if css else ""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table{cls}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def text(value: Any) -> str:
    """A value as escaped text, ``—`` for None."""
    return escape("—" if value is None else str(value))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


_STATUS_NOTES = {
    "running": "This run had not finished when the report was made (or it died): the figures "
    "cover the cases written so far.",
    "incomplete": "Some cases reported a result but their record was never written: "
    "run them again with --resume.",
    "interrupted": "This run was interrupted: the figures cover the cases that finished.",
    "failed": "This run stopped with an error: the figures cover the cases that finished.",
}


def header(folder: ExperimentFolder) -> str:
    """Experiment name and status, what ran, when, for how long, with which versions, and the
    config snapshot (collapsed)."""
    summary, meta = redact(folder.summary), redact(folder.metadata)
    status = str(summary.get("status") or "unknown")
    started = parse_time(summary.get("started_at") or meta.get("started_at"))
    completed = parse_time(summary.get("completed_at"))
    duration = (completed - started).total_seconds() if started and completed else None
    facts: list[tuple[str, Any]] = [
        ("started", started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else None),
        ("took", None if duration is None else _duration(duration)),
        ("cases", f"{summary.get('total_traces', '—')} of {summary.get('total_cases', '—')}"),
        ("seed", summary.get("seed")),
        ("exit code", summary.get("exit_code")),
        ("pytest-fluxloop", meta.get("fluxloop_version")),
        ("Python", meta.get("python_version")),
    ]
    more: list[tuple[str, Any]] = [
        ("folder", str(folder.path.resolve())),
        ("completed", completed.strftime("%Y-%m-%d %H:%M:%S UTC") if completed else None),
        ("config", meta.get("config_path")),
        ("target", meta.get("target")),
        ("plan", meta.get("plan")),
        ("run id", summary.get("run_id") or meta.get("run_id")),
        ("host", summary.get("host") or meta.get("host")),
        ("platform", meta.get("platform")),
        ("artifact format", meta.get("artifact_format")),
    ]
    out = (
        f'<header><h1>{escape(folder.name)} <b class="st st-{escape(status)}">'
        f"{escape(status)}</b></h1>"
    )
    description = summary.get("description") or meta.get("description")
    if description:
        out += f'<p class="desc">{escape(str(description))}</p>'
    if status in _STATUS_NOTES:
        out += f'<p class="warn">{escape(_STATUS_NOTES[status])}</p>'
    out += '<ul class="facts">' + "".join(
        f"<li><span>{escape(k)}</span> {text(v)}</li>" for k, v in facts if v not in (None, "")
    )
    out += "</ul><details><summary>Run details and config snapshot</summary>"
    out += '<dl class="kv">' + "".join(
        f"<dt>{escape(k)}</dt><dd>{text(v)}</dd>" for k, v in more if v not in (None, "")
    )
    out += "</dl>"
    config = redact(folder.config)
    if config:
        import yaml

        dump = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
        note = ""
        if len(dump) > CONFIG_CHARS:
            note = f'<p class="cut">Cut to {CONFIG_CHARS:,} characters: see config.yaml.</p>'
            dump = dump[:CONFIG_CHARS] + "…"
        out += f"<h4>Config snapshot</h4><pre>{escape(dump)}</pre>{note}"
    out += "</details>"
    return out + "</header>"


def evaluated(block: Mapping[str, Any]) -> bool:
    """Whether an evaluation.yaml judged the cases (else pass means the agent answered)."""
    verdicts = block.get("verdicts") or {}
    return bool(block.get("evaluators")) or any(k != "none" for k in verdicts)


def pick_k(overall: Mapping[str, Any], key: str = "pass_hat_k") -> tuple[str, Any]:
    """The largest k whose figure exists (``pass^3`` before ``pass^1``), and its value."""
    values = overall.get(key) or {}
    ks = sorted((k for k in values if str(k).isdigit()), key=int, reverse=True)
    for k in ks:
        if values[k] is not None:
            return str(k), values[k]
    return (ks[-1], None) if ks else ("1", None)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _card(key: str, label: str, value: str, sub: str = "", css: str = "") -> str:
    return (
        f'<div class="card {css}" data-k="{key}"><div class="lbl">{label}</div>'
        f'<div class="v">{value}</div><div class="sub">{sub}</div></div>'
    )


def headline(block: Mapping[str, Any], rows: Sequence[CaseRow]) -> str:
    """The cards: cases, pass rate, pass^k, failures, unscored, latency, tokens, gates."""
    rel = block.get("reliability") or {}
    overall = rel.get("overall") or {}
    judged = evaluated(block)
    counts = {c: 0 for c in CATEGORIES}
    for row in rows:
        counts[row.category] += 1
    rate = overall.get("success_rate")
    wilson = overall.get("wilson")
    sub = f"{overall.get('passes', 0):,} of {overall.get('runs', 0):,} counted runs"
    if isinstance(wilson, list) and len(wilson) == 2:
        sub += f" · {round(100 * float(rel.get('confidence') or 0.95))}% CI "
        sub += f"{pct(wilson[0])}–{pct(wilson[1])}"
    k, hat = pick_k(overall)
    k_at, at = pick_k(overall, "pass_at_k")
    flaky = overall.get("flaky_groups") or 0
    cards = [
        _card("cases", "Cases", f"{len(rows):,}", _plural(counts["error"], "agent error")),
        _card(
            "pass-rate",
            "Pass rate" if judged else "Success rate",
            pct(rate),
            escape(sub),
            "good" if rate == 1 else "bad" if isinstance(rate, float) and rate < 0.8 else "",
        ),
        _card(
            "pass-hat-k",
            f"pass^{escape(k)}",
            pct(hat),
            f"pass@{escape(k_at)} {pct(at)} · {flaky:,} flaky group{'s' if flaky != 1 else ''}",
        ),
        _card(
            "failed",
            "Failed",
            f"{counts['failed'] + counts['error']:,}",
            f"{counts['failed']:,} by evaluation · {_plural(counts['error'], 'agent error')}",
            "bad" if counts["failed"] + counts["error"] else "",
        ),
    ]
    if judged:
        cards.append(
            _card(
                "unscored",
                "Unscored",
                f"{counts['unscored']:,}",
                f"{int(block.get('unscored') or 0):,} evaluator results without a verdict",
            )
        )
    latency = block.get("latency_ms") or {}
    cards.append(
        _card(
            "p95",
            "Latency p95",
            escape(fmt_number(latency.get("p95"), "ms")),
            f"p50 {escape(fmt_number(latency.get('p50')))} · max "
            f"{escape(fmt_number(latency.get('max')))} ms",
        )
    )
    if block.get("tokens_per_case") is not None:
        cards.append(
            _card(
                "tokens",
                "Tokens / case",
                escape(fmt_number(block.get("tokens_per_case"))),
                "mean total tokens of the agent's LLM calls",
            )
        )
    gates = block.get("gates") or []
    if gates:
        failed = sum(1 for g in gates if isinstance(g, dict) and not g.get("passed"))
        cards.append(
            _card(
                "gates",
                "Gates",
                f"{len(gates) - failed} / {len(gates)} passed",
                f"{failed} failed" if failed else "all passed",
                "bad" if failed else "good",
            )
        )
    bar = stacked_bar_svg([(c, counts[c], f"s-{c}") for c in CATEGORIES], label="cases by outcome")
    legend = " ".join(
        f'<span class="lg s-{c}"></span>{c} {counts[c]:,}' for c in CATEGORIES if counts[c]
    )
    note = ""
    if not judged:
        note = (
            '<p class="muted">No evaluation.yaml judged this run: a case passes when the '
            "agent returned normally.</p>"
        )
    return (
        f'<section id="headline"><div class="cards">{"".join(cards)}</div>{bar}'
        f'<p class="legend">{legend}</p>{note}</section>'
    )


def json_tables(value: Any, depth: int = 0) -> str:
    """Any JSON value as nested tables: an object of scalars is a two-column table, a list of
    objects a table with a column per key, anything deeper a heading per key."""
    if isinstance(value, Mapping):
        scalars = [(k, v) for k, v in value.items() if not isinstance(v, Mapping | list)]
        nested = [(k, v) for k, v in value.items() if isinstance(v, Mapping | list)]
        out = (
            table(["", "value"], [[escape(str(k)), _cell(v)] for k, v in scalars])
            if scalars
            else ""
        )
        for key, item in nested:
            if depth >= 3:
                out += f"<h4>{escape(str(key))}</h4>{_cell(item)}"
            else:
                level = min(depth + 3, 6)
                inner = json_tables(item, depth + 1)
                out += f"<h{level}>{escape(str(key))}</h{level}>{inner}"
        return out
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            keys: list[str] = []
            for item in value[:TABLE_ROWS]:
                keys += [str(k) for k in item if str(k) not in keys]
            body = [[_cell(item.get(k)) for k in keys] for item in value[:TABLE_ROWS]]
            more = (
                f'<p class="muted">{len(value) - TABLE_ROWS:,} more.</p>'
                if len(value) > TABLE_ROWS
                else ""
            )
            return table(keys, body) + more
        return _cell(value)
    return _cell(value)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return escape(fmt_number(value))
    if isinstance(value, int | str):
        return escape(str(value))
    compact = json.dumps(value, ensure_ascii=False, default=str)
    return f"<code>{escape(compact[:400] + ('…' if len(compact) > 400 else ''))}</code>"
