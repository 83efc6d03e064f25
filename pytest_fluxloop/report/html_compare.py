"""The report's baseline section: ``fluxloop report NEW --baseline BASE``.

Rendered from :meth:`.compare.Comparison.to_json`, the one form every view of a comparison
is made from (``fluxloop compare`` prints the same figures). The keys this module knows get
their own tables; any other key (a later version's addition) is still shown, as generic
tables, so nothing the comparison says is lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..artifacts.reader import ExperimentFolder
from ..errors import FluxloopError
from ..redact import redact
from .charts import fmt_number
from .compare import Tolerance, compare_experiments
from .html_parts import TABLE_ROWS, json_tables, pct, table

__all__ = ["comparison_section"]

_RATES = {"pass_rate", "pass_hat_1", "pass_hat_k"}
_LABELS = {
    "cases": "cases",
    "runs": "counted runs",
    "pass_rate": "pass rate",
    "pass_hat_1": "pass^1",
    "flaky_groups": "flaky groups",
    "latency_mean_ms": "mean latency (ms)",
    "latency_p95_ms": "p95 latency (ms)",
    "tokens_mean": "agent tokens / case",
}
_KNOWN = {
    "format",
    "base",
    "new",
    "k",
    "tolerance",
    "regressed",
    "regressions",
    "unchecked",
    "warnings",
    "overall",
    "cases",
    "groups",
    "newly_flaky",
    "added_groups",
    "removed_groups",
}


def _value(name: str, value: Any) -> str:
    return pct(value) if name in _RATES else escape(fmt_number(value))


def _delta(name: str, change: Mapping[str, Any]) -> str:
    delta = change.get("delta")
    if not isinstance(delta, int | float):
        return "—"
    if name in _RATES:
        text = f"{delta * 100:+.1f} pp"
    else:
        text = f"{'+' if delta > 0 else ''}{fmt_number(delta)}"
    relative = change.get("relative")
    if isinstance(relative, int | float):
        text += f" ({relative * 100:+.0f}%)"
    return escape(text)


def _cases(items: Sequence[Any], anchors: Mapping[str, int]) -> str:
    body = []
    for item in items[:TABLE_ROWS]:
        if not isinstance(item, Mapping):
            continue
        case_id = str(item.get("case_id"))
        index = anchors.get(case_id)
        cell = f"<code>{escape(case_id)}</code>"
        body.append(
            [
                f'<a href="#c-{index}">{cell}</a>' if index is not None else cell,
                escape(str(item.get("persona") or "—")),
                escape(str(item.get("iteration"))),
                escape(str(item.get("input"))[:160]),
            ]
        )
    more = len(items) - len(body)
    note = f'<p class="muted">{more:,} more.</p>' if more > 0 else ""
    return table(["case", "persona", "iteration", "input"], body) + note


def _render(data: Mapping[str, Any], anchors: Mapping[str, int]) -> str:
    k = data.get("k")
    labels = {**_LABELS, "pass_hat_k": f"pass^{k}"}
    base, new = data.get("base") or {}, data.get("new") or {}
    out = (
        f"<p>Baseline <code>{escape(str(base.get('folder') or base.get('path')))}</code> "
        f"({escape(str(base.get('cases')))} cases) against this run "
        f"({escape(str(new.get('cases')))} cases).</p>"
    )
    regressions = [r for r in data.get("regressions") or [] if isinstance(r, Mapping)]
    if data.get("regressed"):
        out += f'<p class="warn" data-k="regressed">Regressed: {len(regressions)} check(s).</p>'
        out += table(
            ["check", "message"],
            [[escape(str(r.get("check"))), escape(str(r.get("message")))] for r in regressions],
        )
    else:
        out += '<p class="ok" data-k="regressed">No regression beyond the tolerance.</p>'
    for warning in data.get("warnings") or []:
        out += f'<p class="warn">{escape(str(warning))}</p>'
    overall = data.get("overall") or {}
    body = [
        [
            escape(labels.get(name, name)),
            _value(name, change.get("base")),
            _value(name, change.get("new")),
            _delta(name, change),
        ]
        for name, change in overall.items()
        if isinstance(change, Mapping)
    ]
    out += "<h3>Overall</h3>" + table(["", "baseline", "this run", "change"], body, "num")
    cases = data.get("cases") or {}
    for key, title in (
        ("newly_failing", "Newly failing cases"),
        ("newly_passing", "Newly passing cases"),
        ("still_failing", "Still failing cases"),
    ):
        items = cases.get(key) or []
        out += f"<h3>{title} ({len(items):,})</h3>"
        out += _cases(items, anchors) if items else '<p class="muted">None.</p>'
    groups = [g for g in data.get("groups") or [] if isinstance(g, Mapping)]
    if groups:
        body = []
        for g in groups[:TABLE_ROWS]:
            changes = g.get("changes") or {}
            cells = [
                escape(str(g.get("persona") or "—")),
                escape(str(g.get("input"))[:160]),
                escape(str(g.get("status"))),
            ]
            for name in ("pass_rate", "pass_hat_k", "latency_p95_ms"):
                change = changes.get(name) or {}
                cells.append(
                    f"{_value(name, change.get('base'))} → {_value(name, change.get('new'))}"
                )
            cells.append("newly flaky" if g.get("newly_flaky") else "")
            body.append(cells)
        out += "<h3>Input × persona groups, biggest change first</h3>" + table(
            ["persona", "input", "", "pass rate", f"pass^{k}", "p95 ms", ""], body
        )
    rest = {key: value for key, value in data.items() if key not in _KNOWN}
    if rest:
        out += "<h3>More</h3>" + json_tables(rest)
    return out


def comparison_section(
    new: ExperimentFolder, base: ExperimentFolder, anchors: Mapping[str, int]
) -> str:
    """The "Against the baseline" section; a comparison that cannot be made is a note in it
    (the report of the run itself is still worth having)."""
    try:
        data = redact(compare_experiments(base, new, Tolerance()).to_json())
    except FluxloopError as err:
        body = (
            f'<p class="warn">Could not compare with {escape(str(base.path))}: '
            f"{escape(str(err))}</p>"
        )
    else:
        body = _render(data, anchors)
    return f'<section id="baseline"><h2>Against the baseline</h2>{body}</section>'
