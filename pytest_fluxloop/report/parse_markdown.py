"""The Markdown file of one trace, for ``fluxloop parse``.

Rendered from the trace's ``per_trace.jsonl`` entry (:func:`.parse.per_trace_entry`), so
both outputs always agree. Everything that came from the agent, the user or the supervisor
is untrusted text: a short value goes into a line or a table cell with Markdown's special
characters escaped and its line breaks folded; a long one goes into a fenced block whose
fence is longer than any run of backticks in it. Either way no value can close a block,
start a heading or break a table.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..records import TOKEN_COUNT_KEYS

__all__ = ["CUT", "cell", "fenced", "render_trace"]

CUT = 200
"""Arguments, results and messages in the timeline are cut to this many characters."""

# What Markdown (with GFM tables) could read as syntax inside a line. "_" only at a word's
# edge: inside a word (snake_case) it is never emphasis, and escaping it there is just noise.
_SPECIAL = re.compile(r"([\\`*\[\]<>&|~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_BACKTICKS = re.compile(r"`+")


def as_text(value: Any) -> str:
    """A value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def cell(value: Any, limit: int | None = CUT) -> str:
    """``value`` as inline Markdown: one line, cut to ``limit`` characters, every character
    Markdown (or a GFM table) would read as syntax escaped."""
    text = " ".join(("" if value is None else as_text(value)).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", text)


def fenced(value: Any, info: str = "text") -> list[str]:
    """``value`` as a fenced code block (JSON, indented, for anything but text)."""
    if isinstance(value, str):
        text = value.replace("\r\n", "\n").replace("\r", "\n")
    else:
        text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
        info = "json"
    if text.endswith("\n"):  # the closing fence's own line break stands for it
        text = text[:-1]
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text, fence, ""]


def _ms(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    if abs(value) < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def _tokens(usage: Any) -> str:
    """``12 in / 5 out / 17 total``, with cached and reasoning counts when there are any."""
    if not isinstance(usage, dict):
        return ""
    names = {"input_tokens": "in", "output_tokens": "out", "total_tokens": "total"}
    names |= {"cached_tokens": "cached", "reasoning_tokens": "reasoning"}
    parts = [
        f"{usage[key]} {names[key]}"
        for key in TOKEN_COUNT_KEYS
        if isinstance(usage.get(key), (int, float)) and not isinstance(usage.get(key), bool)
    ]
    return " / ".join(parts)


def _token_usage(usage: Any) -> str:
    if not isinstance(usage, dict) or not usage:
        return "not recorded"
    parts = []
    for role, counts in usage.items():
        if not isinstance(counts, dict):
            continue
        calls = counts.get("calls")
        described = _tokens(counts) or "no counts"
        if isinstance(calls, int):
            described += f" ({calls} call{'s' if calls != 1 else ''})"
        parts.append(f"{cell(role)}: {described}")
    return "; ".join(parts) or "not recorded"


def _header(entry: dict[str, Any], label: str, experiment: str) -> list[str]:
    case_id = entry.get("case_id") or entry.get("trace_id")
    status = str(entry.get("status") or "")
    error = entry.get("error") or {}
    if error.get("kind"):
        status += f" ({error['kind']})"
    persona = cell(entry.get("persona") or "-")
    if entry.get("persona_description"):
        persona += f" ({cell(entry['persona_description'])})"
    rows = [
        ("experiment", cell(experiment)),
        ("trace", cell(entry.get("trace_id"))),
        ("persona", persona),
        ("iteration", cell(entry.get("iteration"))),
        ("status", f"**{cell(status)}**"),
        ("duration", f"{_ms(entry.get('duration_ms'))} ms"),
        ("attempts", cell(entry.get("attempts"))),
        ("tokens", _token_usage(entry.get("token_usage"))),
    ]
    supervisor = entry.get("supervisor")
    if isinstance(supervisor, dict):
        who = cell(supervisor.get("implementation") or "supervisor")
        if supervisor.get("model"):
            who += f" ({cell(supervisor['model'])})"
        rows.append(("supervisor", f"{who}, {cell(supervisor.get('calls'))} decisions"))
    multi_turn = entry.get("multi_turn") or {}
    if multi_turn.get("enabled"):
        turns = multi_turn.get("turn_count")
        ended = multi_turn.get("termination_reason")
        rows.append(("turns", f"{cell(turns if turns is not None else '?')}, ended: {cell(ended)}"))
    evaluation = entry.get("evaluation")
    if isinstance(evaluation, dict):
        rows.append(("verdict", _verdict(evaluation)))
    lines = [f"# {cell(label)} · {cell(case_id, None)}", ""]
    lines += [f"- **{name}**: {value}" for name, value in rows]
    return [*lines, ""]


def _verdict(evaluation: dict[str, Any]) -> str:
    text = f"**{cell(evaluation.get('verdict'))}**"
    score = evaluation.get("score")
    if isinstance(score, (int, float)):
        text += f", score {score:.2f}"
    return text


# --------------------------------------------------------------------------- timeline


def _details(step: dict[str, Any]) -> str:
    """What a timeline entry did, in one cell."""
    meta = step.get("metadata") or {}
    parts: list[str] = []
    kind, kind_of = step.get("kind"), step.get("type")
    if kind_of == "supervisor_decision":
        output = step.get("output")
        decision: dict[str, Any] = output if isinstance(output, dict) else {}
        said = decision.get("next_user_message") or decision.get("closing_user_message")
        chosen = cell(decision.get("decision") or "")
        if decision.get("termination_reason"):
            chosen += f" ({cell(decision['termination_reason'])})"
        if chosen:
            parts.append(f"**{chosen}**")
        if said:
            parts.append(f"says: {cell(said)}")
        if _tokens(meta.get("usage")):
            parts.append(f"tokens {_tokens(meta.get('usage'))}")
    elif kind == "generation":
        model = meta.get("model")
        if model:
            parts.append(f"model {cell(model)}")
        if _tokens(meta.get("usage")):
            parts.append(f"tokens {_tokens(meta['usage'])}")
        elif "usage" in meta:
            parts.append("tokens not reported")
        if meta.get("finish_reason"):
            parts.append(f"finish {cell(meta['finish_reason'])}")
        if step.get("output") is not None:
            parts.append(f"→ {cell(step['output'])}")
    elif kind_of == "retry":
        parts.append(f"attempt {cell(meta.get('attempt'))}")
        if meta.get("delay_s") is not None:
            parts.append(f"wait {cell(meta['delay_s'])} s")
    else:
        if step.get("input") is not None:
            parts.append(f"{'args' if kind == 'tool' else 'in'}: {cell(step['input'])}")
        if step.get("output") is not None:
            parts.append(f"→ {'result' if kind == 'tool' else 'out'}: {cell(step['output'])}")
    if step.get("status") == "unfinished":
        parts.append("**never ended**")
    if step.get("error"):
        parts.append(f"**error**: {cell(step['error'])}")
    return " · ".join(parts)


def _timeline(entry: dict[str, Any]) -> list[str]:
    timeline = entry.get("timeline") or []
    metrics = entry.get("metrics") or {}
    lines = ["## Timeline", ""]
    if not timeline:
        if metrics.get("observations_dropped") is None:  # read from trace_summary.jsonl
            lines += ["No observations: this run kept no traces.jsonl (save_traces: false).", ""]
        else:
            lines += ["No observations were recorded for this trace.", ""]
        return lines
    lines += [
        "| # | at ms | took ms | kind | role | name | details |",
        "|---:|---:|---:|---|---|---|---|",
    ]
    for index, step in enumerate(timeline, 1):
        name = "· " * int(step.get("depth") or 0) + cell(step.get("name"), 80)
        kind = cell(step.get("kind"))
        if step.get("type") not in ("span", kind):
            kind += f" ({cell(step.get('type'))})"
        lines.append(
            f"| {index} | {_ms(step.get('offset_ms'))} | {_ms(step.get('duration_ms'))} | "
            f"{kind} | {cell(step.get('role') or '')} | {name} | {_details(step)} |"
        )
    dropped = metrics.get("observations_dropped")
    if dropped:
        lines += ["", f"{dropped} more observations were dropped (capture.max_observations)."]
    return [*lines, ""]


# ------------------------------------------------------------------------ the rest


def _conversation(entry: dict[str, Any]) -> list[str]:
    if not (entry.get("multi_turn") or {}).get("enabled"):
        return []
    lines = ["## Conversation", ""]
    for turn in entry.get("conversation") or []:
        if not isinstance(turn, dict):
            continue
        given = turn.get("metadata")
        metadata: dict[str, Any] = given if isinstance(given, dict) else {}
        closing = turn.get("closing") or metadata.get("closing")
        label = f"### {cell(turn.get('turn_index'))}. {cell(turn.get('role'))}"
        if turn.get("source"):
            label += f" ({cell(turn['source'])})"
        if closing:
            label += " · closing message, not sent to the agent"
        lines += [label, "", *fenced(turn.get("content") or "")]
    return lines


def _error(entry: dict[str, Any]) -> list[str]:
    error = entry.get("error")
    if not isinstance(error, dict):
        return []
    what = f"**{cell(error.get('kind') or 'error')}**"
    if error.get("type"):
        what += f" {cell(error['type'])}"
    lines = ["## Error", "", what, "", *fenced(str(error.get("message") or ""))]
    if error.get("traceback"):
        lines += ["Traceback:", "", *fenced(str(error["traceback"]), "python")]
    return lines


def _evaluation(entry: dict[str, Any]) -> list[str]:
    evaluation = entry.get("evaluation")
    if not isinstance(evaluation, dict):
        return []
    line = _verdict(evaluation)
    if evaluation.get("threshold") is not None:
        line += f" (threshold {cell(evaluation['threshold'])}, {cell(evaluation.get('method'))})"
    if evaluation.get("reason"):
        line += f": {cell(evaluation['reason'], None)}"
    lines = ["## Evaluation", "", line, ""]
    evaluators = evaluation.get("evaluators") or []
    if isinstance(evaluators, dict):  # a trace_summary line's short form: {name: {...}}
        evaluators = [{"name": k, **v} for k, v in evaluators.items() if isinstance(v, dict)]
    rows = [e for e in evaluators if isinstance(e, dict)]
    if not rows:
        return lines
    lines += ["| evaluator | type | status | score | reason |", "|---|---|---|---:|---|"]
    for result in rows:
        score = result.get("score")
        shown = f"{score:.2f}" if isinstance(score, (int, float)) else ""
        reason = result.get("reason") or result.get("unscored_reason") or ""
        lines.append(
            f"| {cell(result.get('name'))} | {cell(result.get('type') or '')} | "
            f"{cell(result.get('status'))} | {shown} | {cell(reason, None)} |"
        )
    lines.append("")
    for result in rows:
        details = [
            f"- rule {cell(r.get('check'))}: "
            f"{'passed' if r.get('passed') else 'n/a' if r.get('passed') is None else 'failed'}"
            + (f", {cell(r['reason'], None)}" if r.get("reason") else "")
            for r in result.get("rules") or []
            if isinstance(r, dict)
        ]
        details += [
            f"- evidence, turn {cell(e.get('turn'))}: “{cell(e.get('quote'), None)}”"
            for e in result.get("evidence") or []
            if isinstance(e, dict)
        ]
        if details:
            lines += [f"### {cell(result.get('name'))}", "", *details, ""]
    return lines


def render_trace(entry: dict[str, Any], *, label: str, experiment: str) -> str:
    """The Markdown of one trace from its ``per_trace.jsonl`` entry; ``label`` is its
    number in the experiment (``NN``, as in its file name)."""
    lines = _header(entry, label, experiment)
    lines += ["## Input", "", *fenced(entry.get("input") or "")]
    lines += _timeline(entry)
    lines += _conversation(entry)
    if entry.get("output") is not None:
        lines += ["## Output", "", *fenced(entry["output"])]
    lines += _error(entry)
    lines += _evaluation(entry)
    return "\n".join(lines).rstrip("\n") + "\n"
