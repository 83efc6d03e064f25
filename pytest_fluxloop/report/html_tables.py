"""The report's tables: gates, evaluators, by persona, by input, the least reliable groups,
the distributions and the tokens by role.

Per-persona and per-input figures are counted from the report's rows with the run's own
rules (:func:`pytest_fluxloop.evaluation.reliability.case_outcome`), so they add up to the
headline; pass^k of a persona or an input is the mean over its input × persona groups, as
the run's overall pass^k is the mean over all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from ..evaluation.gates import latency_stats
from .charts import fmt_number, histogram_svg, stacked_bar_svg
from .html_data import CaseRow, GroupStats, group_table
from .html_parts import TABLE_ROWS, pct, table, text

__all__ = ["evaluation_tables", "tokens_and_charts"]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _hat_by(
    rows: Sequence[CaseRow], k: int, by: Callable[[tuple[str, str]], str]
) -> dict[str, float | None]:
    """Mean pass^k of the (input, persona) groups under each ``by`` key, as the run's overall
    figure is the mean over all groups (groups with fewer than k runs left out)."""
    tasks: dict[tuple[str, str], GroupStats] = {}
    for row in rows:
        tasks.setdefault(row.group, GroupStats(str(row.group))).add(row)
    found: dict[str, list[float]] = {}
    for key, stats in tasks.items():
        value = stats.pass_hat(k)
        found.setdefault(by(key), [])
        if value is not None:
            found[by(key)].append(value)
    return {name: _mean(values) for name, values in found.items()}


def _group_rows(
    groups: Sequence[GroupStats], hats: Mapping[str, float | None], cut: int = 160
) -> list[list[str]]:
    out = []
    for g in groups:
        latency = g.latency()
        name = g.name if len(g.name) <= cut else g.name[: cut - 1] + "…"
        out.append(
            [
                escape(name or "—"),
                f"{g.runs:,}",
                f"{g.passes:,}",
                f"{g.fails:,}",
                f"{g.unscored:,}",
                f"{g.excluded:,}",
                pct(g.success_rate),
                pct(hats.get(g.name)),
                escape(fmt_number(latency.get("p95"))),
                escape(fmt_number(_mean(g.tokens))),
            ]
        )
    return out


def evaluation_tables(
    block: Mapping[str, Any], rows: Sequence[CaseRow], anchors: Mapping[str, int]
) -> str:
    """Gates, evaluators, per persona, per input and the least reliable groups."""
    out = ""
    gates = [g for g in block.get("gates") or [] if isinstance(g, dict)]
    alerts = [a for a in block.get("alerts") or [] if isinstance(a, dict)]
    if gates or alerts:
        body = [
            [
                f"<code>{text(g.get('gate'))}</code>",
                escape(fmt_number(g.get("value"))),
                '<b class="b b-passed">passed</b>'
                if g.get("passed")
                else '<b class="b b-failed">failed</b>',
                text(g.get("message")),
            ]
            for g in gates
        ]
        body += [
            [
                f"<code>{text(a.get('gate'))}</code>",
                escape(fmt_number(a.get("value"))),
                '<b class="b b-unscored">alert</b>',
                text(a.get("message")),
            ]
            for a in alerts
        ]
        out += (
            '<section id="gates"><h2>Gates</h2>'
            + table(["gate", "value", "result", "message"], body)
            + "</section>"
        )
    evaluators = block.get("evaluators") or {}
    if evaluators:
        body = [
            [
                escape(str(name)),
                *(
                    f"{int(stats.get(k) or 0):,}"
                    for k in ("passed", "failed", "unscored", "skipped")
                ),
                escape(fmt_number(stats.get("mean_score"))),
                escape(
                    ", ".join(f"{r}: {n}" for r, n in (stats.get("unscored_reasons") or {}).items())
                    or "—"
                ),
            ]
            for name, stats in evaluators.items()
            if isinstance(stats, dict)
        ]
        out += (
            '<section id="evaluators"><h2>Evaluators</h2>'
            + table(
                [
                    "evaluator",
                    "passed",
                    "failed",
                    "unscored",
                    "skipped",
                    "mean score",
                    "unscored reasons",
                ],
                body,
            )
            + "</section>"
        )
    ks = [int(k) for k in (block.get("reliability") or {}).get("k") or [1]]
    k = max(ks)
    head = [
        "",
        "cases",
        "passed",
        "failed",
        "unscored",
        "excluded",
        "success rate",
        f"pass^{k}",
        "p95 ms",
        "agent tokens",
    ]
    personas = group_table(rows, lambda r: r.persona)
    out += (
        '<section id="personas"><h2>By persona</h2>'
        + table(
            ["persona", *head[1:]], _group_rows(personas, _hat_by(rows, k, lambda g: g[1])), "num"
        )
        + "</section>"
    )
    inputs = group_table(rows, lambda r: r.group[0])
    more = ""
    if len(inputs) > TABLE_ROWS:
        more = (
            f'<p class="muted">{len(inputs) - TABLE_ROWS:,} more inputs, all doing better '
            "than these.</p>"
        )
    out += (
        '<section id="inputs"><h2>By input</h2><p class="muted">Worst success rate first.</p>'
        + table(
            ["input", *head[1:]],
            _group_rows(inputs[:TABLE_ROWS], _hat_by(rows, k, lambda g: g[0])),
            "num",
        )
        + more
        + "</section>"
    )
    return out + _reliability(block, anchors)


def _reliability(block: Mapping[str, Any], anchors: Mapping[str, int]) -> str:
    rel = block.get("reliability") or {}
    groups = [g for g in rel.get("groups") or [] if isinstance(g, dict)]
    if not groups:
        return ""
    ks = [str(k) for k in rel.get("k") or []]
    body = []
    for g in groups[:TABLE_ROWS]:
        wilson = g.get("wilson")
        ci = (
            f" [{pct(wilson[0])}–{pct(wilson[1])}]"
            if isinstance(wilson, list) and len(wilson) == 2
            else ""
        )
        failed = []
        for case_id in g.get("failed_case_ids") or []:
            index = anchors.get(str(case_id))
            code = f"<code>{escape(str(case_id))}</code>"
            failed.append(f'<a href="#c-{index}">{code}</a>' if index is not None else code)
        body.append(
            [
                text(g.get("persona") or "—"),
                escape(str(g.get("input"))[:160]),
                f"{g.get('n', 0):,}",
                f"{g.get('c', 0):,}",
                pct(g.get("success_rate")) + escape(ci),
                *(pct((g.get("pass_hat_k") or {}).get(k)) for k in ks),
                "flaky" if g.get("flaky") else "",
                " ".join(failed),
            ]
        )
    total = rel.get("groups_total") or len(groups)
    more = (
        f'<p class="muted">{total - min(len(groups), TABLE_ROWS):,} more groups.</p>'
        if total > TABLE_ROWS
        else ""
    )
    return (
        '<section id="reliability"><h2>Least reliable groups (input × persona)</h2>'
        + table(
            [
                "persona",
                "input",
                "n",
                "c",
                "success rate",
                *(f"pass^{k}" for k in ks),
                "",
                "failed cases",
            ],
            body,
        )
        + more
        + "</section>"
    )


_ROLE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "calls",
    "calls_without_usage",
)


def tokens_and_charts(rows: Sequence[CaseRow], totals: Mapping[str, Mapping[str, Any]]) -> str:
    """Latency and agent-token histograms, and the run's tokens split by role."""
    durations = [
        r.duration_ms
        for r in rows
        if r.duration_ms is not None and r.outcome in ("pass", "fail", "judge")
    ]
    tokens = [float(t) for r in rows if (t := r.tokens.get("agent")) is not None]
    out = '<section id="charts"><h2>Distributions</h2><div class="charts">'
    for title, values, unit in (
        ("Latency per case", durations, "ms"),
        ("Agent tokens per case", tokens, ""),
    ):
        stats = latency_stats(values)  # nearest-rank percentiles, as summary.json has them
        caption = "no values"
        if stats["count"]:
            caption = (
                f"{stats['count']:,} cases · mean {fmt_number(stats['avg'])} · "
                f"p50 {fmt_number(stats['p50'])} · p95 {fmt_number(stats['p95'])} · "
                f"max {fmt_number(stats['max'], unit)}"
            )
        out += (
            f"<figure><figcaption><b>{escape(title)}</b> {escape(caption)}</figcaption>"
            f"{histogram_svg(values, label=title, unit=unit)}</figure>"
        )
    out += "</div></section>"
    out += '<section id="tokens"><h2>Token usage by role</h2>'
    if not totals:
        return out + '<p class="muted">No LLM call reported token usage.</p></section>'
    parts = [(role, float(c.get("total_tokens") or 0), f"r-{role}") for role, c in totals.items()]
    out += stacked_bar_svg(parts, label="total tokens by role")
    out += (
        '<p class="legend">'
        + " ".join(
            f'<span class="lg r-{escape(role)}"></span>{escape(role)} {escape(fmt_number(value))}'
            for role, value, _ in parts
        )
        + "</p>"
    )
    body = [
        [escape(role), *(escape(fmt_number(c.get(key))) for key in _ROLE_KEYS)]
        for role, c in totals.items()
    ]
    out += table(
        ["role", "input", "output", "cached", "reasoning", "total", "calls", "calls without usage"],
        body,
        "num",
    )
    out += (
        '<p class="muted">Tokens of the supervisor (the simulated user) and the judges are '
        "never counted as the agent's.</p>"
    )
    return out + "</section>"
