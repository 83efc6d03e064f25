"""One case in full: its evaluation, error, transcript and observation timeline.

Rendered as a ``<details>`` element, so it opens and closes with no script. Everything in a
trace is untrusted (an agent's output may hold ``<script>``): every value goes through
:func:`html.escape`. Long payloads are cut to :attr:`CaseLimits.payload_chars` with a note
naming the JSONL file and line that holds them in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from ..artifacts.resume import parse_time
from ..records import conversation_entries
from .charts import fmt_number
from .html_data import CaseRow

__all__ = ["CaseLimits", "badge", "render_case"]


@dataclass(frozen=True)
class CaseLimits:
    """How much of one case is shown; the report shrinks these to fit its size budget."""

    payload_chars: int = 4000
    """Characters of one message, output or observation payload."""
    observations: int = 200
    """Timeline rows (one per span, event or decision)."""

    def smaller(self) -> CaseLimits:
        """A third of each limit (at least 200 characters and 10 rows)."""
        return CaseLimits(max(self.payload_chars // 3, 200), max(self.observations // 3, 10))


def badge(category: str, text: str | None = None) -> str:
    """An outcome badge (``category`` is one of ours; ``text`` is escaped)."""
    return f'<b class="b b-{escape(category)}">{escape(text or category)}</b>'


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _payload(
    value: Any, limit: int, where: str, cut_when_written: Any = None, css: str = "pl"
) -> str:
    """``value`` as preformatted text, cut to ``limit`` characters with a note saying where
    the whole of it is."""
    text = _as_text(value)
    notes = ""
    if len(text) > limit:
        notes += (
            f'<p class="cut">Cut to {limit:,} of {len(text):,} characters: the full text is in '
            f"{escape(where)}.</p>"
        )
        text = text[:limit] + "…"
    if isinstance(cut_when_written, dict) and cut_when_written.get("length"):
        notes += (
            f'<p class="cut">Already cut when written: the full value had '
            f"{int(cut_when_written['length']):,} characters (sha256 "
            f"{escape(str(cut_when_written.get('sha256', ''))[:16])}…).</p>"
        )
    return f'<pre class="{css}">{escape(text)}</pre>{notes}'


def _meta(row: CaseRow, record: dict[str, Any], where: str) -> str:
    items = [
        ("case", row.case_id),
        ("trace", row.trace_id),
        ("persona", row.persona or "—"),
        ("iteration", "—" if row.iteration is None else str(row.iteration)),
        ("status", row.status),
        ("duration", fmt_number(row.duration_ms, "ms")),
        ("attempts", str(record.get("attempts", 1))),
    ]
    description = record.get("persona_description")
    if description:
        items.insert(3, ("persona description", str(description)))
    multi = record.get("multi_turn")
    if isinstance(multi, dict) and multi.get("enabled"):
        items.append(("turns", str(multi.get("turn_count"))))
        items.append(("ended", str(multi.get("termination_reason") or "—")))
    elif record.get("termination_reason"):
        items.append(("ended", str(record["termination_reason"])))
    usage = record.get("token_usage")
    if isinstance(usage, dict):
        for role, counts in usage.items():
            if isinstance(counts, dict):
                total = counts.get("total_tokens")
                calls = counts.get("calls")
                text = f"{fmt_number(total)} tokens"
                if calls:
                    text += f", {calls} call{'' if calls == 1 else 's'}"
                items.append((f"{role} tokens", text))
    items.append(("source", where))
    cells = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f'<dl class="kv meta">{cells}</dl>'


def _error(record: dict[str, Any], limits: CaseLimits, where: str) -> str:
    error = record.get("error")
    if isinstance(error, dict):
        head = f"{error.get('kind') or 'agent'} error: {error.get('type') or ''}".strip()
        message = str(error.get("message") or "")
        traceback = error.get("traceback")
    elif error:
        head, message, traceback = f"{record.get('error_kind') or 'agent'} error", str(error), None
        head += f": {record.get('error_type')}" if record.get("error_type") else ""
    else:
        return ""
    out = f'<div class="err"><h4>{escape(head)}</h4>'
    out += _payload(message, limits.payload_chars, where, record.get("error_truncated"))
    if traceback:
        out += "<details><summary>Traceback</summary>"
        out += _payload(traceback, limits.payload_chars, where) + "</details>"
    return out + "</div>"


def _evaluation(record: dict[str, Any], limits: CaseLimits) -> str:
    evaluation = record.get("evaluation")
    if not isinstance(evaluation, dict):
        return ""
    verdict = str(evaluation.get("verdict") or "none")
    known = verdict in ("passed", "failed", "unscored")
    head = f"Evaluation {badge(verdict if known else 'none', verdict)}"
    score, threshold = evaluation.get("score"), evaluation.get("threshold")
    if score is not None:
        head += f" score {escape(fmt_number(score))}"
    if threshold is not None:
        head += f" (threshold {escape(fmt_number(threshold))})"
    out = f'<div class="eval"><h4>{head}</h4>'
    if evaluation.get("reason"):
        out += f"<p>{escape(str(evaluation['reason']))}</p>"
    evaluators = evaluation.get("evaluators")
    if isinstance(evaluators, dict):  # the short form of a trace_summary.jsonl line
        evaluators = [{"name": k, **v} for k, v in evaluators.items() if isinstance(v, dict)]
    rows = []
    for item in evaluators or []:
        if not isinstance(item, dict):
            continue
        status = str(item.get("status") or "")
        why = str(item.get("reason") or item.get("unscored_reason") or "")
        detail = ""
        for rule in item.get("rules") or []:
            if isinstance(rule, dict):
                mark = {True: "pass", False: "FAIL", None: "n/a"}.get(rule.get("passed"), "?")
                detail += f"<li>{escape(mark)} {escape(str(rule.get('check')))}: "
                detail += f"{escape(str(rule.get('reason') or ''))}</li>"
        for cite in item.get("evidence") or []:
            if isinstance(cite, dict):
                quote = _as_text(cite.get("quote") or "")[: limits.payload_chars]
                detail += f"<li>turn {escape(str(cite.get('turn')))}: “{escape(quote)}”</li>"
        kind = str(item.get("type") or "")
        if item.get("model"):
            kind += f" {item['model']}"
        rows.append(
            f"<tr><td>{escape(str(item.get('name')))}</td><td>{escape(kind)}</td>"
            f"<td>{badge(status if status in ('passed', 'failed', 'unscored') else 'none', status)}"
            f"</td><td>{escape(fmt_number(item.get('score')))}</td><td>{escape(why)}"
            f"{f'<ul>{detail}</ul>' if detail else ''}</td></tr>"
        )
    if rows:
        out += (
            "<table><thead><tr><th>evaluator</th><th>type</th><th>status</th><th>score</th>"
            f"<th>reason</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return out + "</div>"


_WHO = {"input": "user", "supervisor": "user (simulated)", "agent": "agent"}


def _transcript(record: dict[str, Any], limits: CaseLimits, where: str) -> str:
    entries = record.get("conversation")
    if not isinstance(entries, list):
        entries = conversation_entries(record)
    parts = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        source = str(entry.get("source") or "")
        who = "closing (simulated user)" if entry.get("closing") else _WHO.get(source, source)
        css = "m-agent" if source == "agent" else "m-user"
        parts.append(
            f'<div class="msg {css}"><div class="who">turn {escape(str(entry.get("turn_index")))}'
            f" · {escape(who)}</div>"
            + _payload(
                entry.get("content"), limits.payload_chars, where, entry.get("content_truncated")
            )
            + "</div>"
        )
    if not parts:
        return ""
    return f'<div class="transcript"><h4>Transcript</h4>{"".join(parts)}</div>'


def _spans(observations: list[Any]) -> list[dict[str, Any]]:
    """Observations as timeline items: a span_start and its span_end become one item."""
    items: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for obs in observations:
        if not isinstance(obs, dict):
            continue
        kind, oid, at = obs.get("type"), obs.get("observation_id"), parse_time(obs.get("timestamp"))
        if kind == "span_end" and oid in by_id and by_id[oid]["end"] is None:
            item = by_id[oid]
            item.update(end=at, output=obs.get("output"), error=obs.get("error") or item["error"])
            item["output_cut"] = obs.get("output_truncated")
            item["duration"] = obs.get("duration_ms")
            item["meta"] = {**item["meta"], **(obs.get("metadata") or {})}
            continue
        duration = obs.get("duration_ms")
        start = at
        if kind != "span_start" and at is not None and isinstance(duration, int | float):
            start = datetime.fromtimestamp(at.timestamp() - duration / 1000.0, tz=at.tzinfo)
        item = {
            "type": kind,
            "name": obs.get("name"),
            "kind": obs.get("kind") or "event",
            "role": obs.get("role") or "",
            "start": start,
            "end": None if kind == "span_start" else at,
            "duration": duration,
            "input": obs.get("input"),
            "input_cut": obs.get("input_truncated"),
            "output": obs.get("output"),
            "output_cut": obs.get("output_truncated"),
            "error": obs.get("error"),
            "meta": obs.get("metadata") or {},
            "id": oid,
            "parent": obs.get("parent_id"),
        }
        items.append(item)
        if kind == "span_start" and isinstance(oid, str):
            by_id[oid] = item
    known = {item["id"]: item for item in items if isinstance(item["id"], str)}
    for item in items:
        depth, parent, seen = 0, item["parent"], set()
        while parent in known and parent not in seen and depth < 12:
            seen.add(parent)
            depth += 1
            parent = known[parent]["parent"]
        item["depth"] = depth
    return items


def _timeline(record: dict[str, Any], limits: CaseLimits, where: str) -> str:
    observations = record.get("observations")
    if not isinstance(observations, list) or not observations:
        return ""
    items = _spans(observations)
    times = [t for item in items for t in (item["start"], item["end"]) if t is not None]
    origin = parse_time(record.get("started_at")) or (min(times) if times else None)
    if origin is None or not times:
        return ""
    total_ms = max((max(times) - origin).total_seconds() * 1000.0, 0.001)
    # By start time: an event (a turn) is logged when it ends, after the spans inside it.
    items.sort(key=lambda item: item["start"] or item["end"] or origin)
    rows = []
    limit = limits.payload_chars // 2
    for item in items[: limits.observations]:
        start = item["start"] or item["end"] or origin
        left = max((start - origin).total_seconds() * 1000.0, 0.0)
        end = item["end"] or start
        span = max((end - start).total_seconds() * 1000.0, 0.0)
        bar = (
            f'<div class="track"><div class="bar k-{escape(str(item["kind"]))}" '
            f'style="left:{min(100 * left / total_ms, 99.5):.2f}%;'
            f'width:{max(100 * span / total_ms, 0.5):.2f}%"></div></div>'
        )
        usage = item["meta"].get("usage") if isinstance(item["meta"], dict) else None
        tokens = fmt_number(usage.get("total_tokens")) if isinstance(usage, dict) else ""
        name = escape(str(item["name"]))
        model = item["meta"].get("model") if isinstance(item["meta"], dict) else None
        if model:
            name += f' <span class="muted">{escape(str(model))}</span>'
        body = ""
        for label, value, cut in (
            ("input", item["input"], item["input_cut"]),
            ("output", item["output"], item["output_cut"]),
            ("error", item["error"], None),
        ):
            if value not in (None, "", {}, []):
                body += f'<div class="io">{label}</div>' + _payload(value, limit, where, cut)
        if body:
            name = f"<details><summary>{name}</summary>{body}</details>"
        css = ' class="obs-err"' if item["error"] else ""
        rows.append(
            f"<tr{css}><td class=num>+{escape(fmt_number(left))}</td>"
            f'<td><span class="k k-{escape(str(item["kind"]))}">{escape(str(item["kind"]))}'
            f"</span></td><td>{escape(str(item['role']))}</td>"
            f'<td style="padding-left:{0.4 + 1.1 * item["depth"]:.1f}em">{name}</td>'
            f"<td class=num>{escape(fmt_number(item['duration']))}</td>"
            f"<td class=num>{escape(tokens)}</td><td class=tl>{bar}</td></tr>"
        )
    note = ""
    if len(items) > limits.observations:
        note = (
            f'<p class="cut">{len(items) - limits.observations:,} more observations not '
            f"shown: they are in {escape(where)}.</p>"
        )
    dropped = record.get("observations_dropped")
    if dropped:
        note += f'<p class="cut">{int(dropped):,} observations were dropped during the run.</p>'
    return (
        '<div class="timeline"><h4>Observations</h4><table class="obs"><thead><tr>'
        "<th>start ms</th><th>kind</th><th>role</th><th>name</th><th>ms</th><th>tokens</th>"
        f'<th class="tl">{escape(fmt_number(total_ms, "ms"))}</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{note}</div>"
    )


def render_case(
    row: CaseRow, record: dict[str, Any], source: str, line: int, limits: CaseLimits
) -> str:
    """The ``<details>`` of one case; ``source`` and ``line`` say where ``record`` was read."""
    where = f"{source} line {line}"
    label = row.status if row.category == "error" else row.category
    summary = (
        f"{badge(row.category, label)} <code>{escape(row.case_id)}</code> "
        f'<span class="muted">{escape(row.persona)}</span> {escape(row.input[:160])}'
    )
    body = (
        _meta(row, record, where)
        + _error(record, limits, where)
        + _evaluation(record, limits)
        + _transcript(record, limits, where)
        + _timeline(record, limits, where)
    )
    return (
        f'<details class="case" id="c-{row.index}" data-o="{escape(row.category)}" '
        f'data-p="{escape(row.persona)}"><summary>{summary}</summary>'
        f'<div class="body">{body}</div></details>'
    )
