"""The Markdown (pull-request comment) and terminal views of ``fluxloop compare``.

Both render the JSON form of :meth:`.compare.Comparison.to_json` and nothing else, so every
view says the same thing as the JSON a CI step or the HTML report reads. The Markdown stays
well below GitHub's 65,536-character comment limit at any run size: long lists are cut to
:data:`TOP` items with a count, the folded rest to :data:`FOLDED` rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["FOLDED", "TOP", "ms", "num", "pct", "points", "rel", "render_markdown", "render_table"]

TOP = 20
"""Newly failing cases and changed groups shown before the rest is cut or folded."""
FOLDED = 100
"""Rows at most inside a folded ``<details>`` table."""
INPUT_WIDTH = 60
"""Characters of an input shown in a cell."""

# Which overall figure each tolerance key measures (to mark it as the breached one).
_CHECK_FIGURE = {
    "pass_rate": "pass_rate",
    "pass_hat_k": "pass_hat_k",
    "latency": "latency_p95_ms",
    "tokens": "tokens_mean",
}

# ---------------------------------------------------------------------- numbers


def pct(value: Any) -> str:
    """A rate in 0..1 as ``87.5%``; ``—`` when unknown."""
    return "—" if value is None else f"{value * 100:.1f}%"


def points(delta: Any) -> str:
    """A change of a rate in percentage points: ``+12.5 pts``, ``-50.0 pts``."""
    return "—" if delta is None else f"{delta * 100:+.1f} pts"


def rel(value: Any) -> str:
    """A relative change: ``+66.7%``."""
    return "—" if value is None else f"{value * 100:+.1f}%"


def ms(value: Any) -> str:
    """A duration in ms, with the precision its size needs."""
    if value is None:
        return "—"
    return (
        f"{value:.0f} ms"
        if value >= 100
        else f"{value:.1f} ms"
        if value >= 1
        else (f"{value:.2f} ms")
    )


def num(value: Any) -> str:
    """A token count (a mean may have a fraction)."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _count(value: Any) -> str:
    return "—" if value is None else f"{value:,}"


def _signed(value: Any) -> str:
    return "—" if value is None else f"{value:+,}"


# Overall rows: (key, label, value format, change format, "delta" or "relative").
_ROWS: list[tuple[str, str, Callable[[Any], str], Callable[[Any], str], str]] = [
    ("pass_rate", "pass rate", pct, points, "delta"),
    ("pass_hat_1", "pass^1", pct, points, "delta"),
    ("pass_hat_k", "pass^{k}", pct, points, "delta"),
    ("flaky_groups", "flaky groups", _count, _signed, "delta"),
    ("latency_p95_ms", "p95 latency", ms, rel, "relative"),
    ("latency_mean_ms", "mean latency", ms, rel, "relative"),
    ("tokens_mean", "mean agent tokens", num, rel, "relative"),
    ("cases", "cases", _count, _signed, "delta"),
    ("excluded", "excluded cases", _count, _signed, "delta"),
]


def _overall_rows(data: Mapping[str, Any], mark: str) -> list[list[str]]:
    breached = {_CHECK_FIGURE.get(r["check"]) for r in data["regressions"]}
    rows = []
    for key, label, value, change, which in _ROWS:
        if key == "pass_hat_1" and data["k"] == 1:
            continue  # the same row as pass^k
        figure = data["overall"][key]
        rows.append(
            [
                label.format(k=data["k"]),
                value(figure["base"]),
                value(figure["new"]),
                change(figure[which]),
                mark if key in breached else "",
            ]
        )
    return rows


def _flat(text: str, width: int = INPUT_WIDTH) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _pair(figures: Mapping[str, Any], name: str, show: Callable[[Any], str]) -> str:
    change = figures[name]
    return f"{show(change['base'])} → {show(change['new'])}"


def _group_cells(group: Mapping[str, Any], k: int) -> list[str]:
    changes = group["changes"]
    flags = []
    if group["newly_flaky"]:
        flags.append("newly flaky")
    if group["no_longer_flaky"]:
        flags.append("no longer flaky")
    if group["status"] != "compared":
        flags.append(group["status"])
    return [
        group["persona"] or "-",
        _flat(group["input"]),
        f"{_pair(changes, 'pass_rate', pct)} ({points(changes['pass_rate']['delta'])})",
        _pair(changes, "pass_hat_k", pct),
        f"{_pair(changes, 'latency_p95_ms', ms)} ({rel(changes['latency_p95_ms']['relative'])})",
        _pair(changes, "tokens_mean", num),
        ", ".join(flags),
    ]


def _changed(group: Mapping[str, Any]) -> bool:
    return group["status"] == "compared" and bool(
        group["size"] or group["newly_flaky"] or group["no_longer_flaky"]
    )


def _group_header(k: int) -> list[str]:
    return ["persona", "input", "pass rate", f"pass^{k}", "p95 latency", "tokens", ""]


def _headline(data: Mapping[str, Any]) -> str:
    count = len(data["regressions"])
    if not count:
        return "no regression beyond tolerance"
    return f"{count} regression{'s' if count > 1 else ''} beyond tolerance"


def _runs_line(data: Mapping[str, Any]) -> tuple[str, str, str]:
    base, new = data["base"], data["new"]
    name = new["experiment"] or base["experiment"] or "experiment"
    return (
        name,
        f"{base['folder']} ({base['cases']} cases)",
        f"{new['folder']} ({new['cases']} cases)",
    )


def _tolerance_text(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={'off' if v is None else v}" for k, v in data["tolerance"].items())


# ---------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def _md(text: str) -> str:
    """Text safe in a Markdown table cell: no Markdown or HTML takes effect."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A table; ``align`` has one letter per column, ``l`` (text) or ``r`` (numbers)."""
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


_PLAIN_ID = re.compile(r"[\w.@:+-]+")


def _md_id(case_id: str) -> str:
    """A case id as code, unless it holds characters a code span would not neutralise in a
    table (``|``); ids the plugin makes are slugs, so this is for hand-made folders."""
    return f"`{case_id}`" if _PLAIN_ID.fullmatch(case_id) else _md(case_id)


def _md_cases(cases: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [
        [
            _md(c["persona"] or "-"),
            _md(_flat(c["input"])),
            str(c["iteration"]),
            _md_id(c["case_id"]),
        ]
        for c in cases[:TOP]
    ]
    lines = _md_table(["persona", "input", "iteration", "case"], rows, "llrl")
    if len(cases) > TOP:
        lines.append(f"\n… and {len(cases) - TOP} more (`fluxloop compare --format json`).")
    return lines


def _md_groups(groups: Sequence[Mapping[str, Any]], k: int) -> list[str]:
    rows = [[_md(cell) for cell in _group_cells(g, k)] for g in groups]
    return _md_table(_group_header(k), rows, "llrrrrl")


def _md_details(summary: str, body: list[str]) -> list[str]:
    return ["", f"<details><summary>{summary}</summary>", "", *body, "", "</details>"]


def render_markdown(data: Mapping[str, Any]) -> str:
    """A pull-request comment for the comparison ``data`` (:meth:`Comparison.to_json`)."""
    k = data["k"]
    icon = "❌" if data["regressed"] else "✅"
    name, base, new = _runs_line(data)
    out = [
        f"## {icon} FluxLoop compare: {_headline(data)}",
        "",
        f"**{_md(name)}** · base `{base}` → new `{new}` · pass^k with k = {k}",
    ]
    for warning in data["warnings"]:
        out += ["", f"> ⚠️ {_md(warning)}"]
    if data["regressions"]:
        out += ["", *(f"- ❌ {_md(r['message'])}" for r in data["regressions"])]
    out += ["", *_md_table(["", "base", "new", "change", ""], _overall_rows(data, "❌"), "lrrrl")]

    cases = data["cases"]
    failing = cases["newly_failing"]
    out += ["", f"### Newly failing cases ({len(failing)})", ""]
    out += _md_cases(failing) if failing else ["None: every case that passed still passes."]
    flaky = data["newly_flaky"]
    if flaky:
        out += ["", f"### Newly flaky ({len(flaky)})", ""]
        out += [f"- {_md(g['persona'] or '-')}: {_md(_flat(g['input']))}" for g in flaky[:TOP]]
        if len(flaky) > TOP:
            out.append(f"- … and {len(flaky) - TOP} more")
    if cases["newly_passing"]:
        passing = cases["newly_passing"]
        out += _md_details(f"Newly passing cases ({len(passing)})", _md_cases(passing))
    if cases["still_failing"]:
        out += ["", f"Still failing: {len(cases['still_failing'])} case(s)."]

    compared = [g for g in data["groups"] if g["status"] == "compared"]
    changed = [g for g in compared if _changed(g)]
    out += ["", f"### Biggest changes by input × persona ({len(changed)} of {len(compared)})", ""]
    if changed:
        out += _md_groups(changed[:TOP], k)
    else:
        out.append("No input × persona changed its pass rate or flakiness.")
    rest = [g for g in compared if g not in changed[:TOP]]
    if rest:
        body = _md_groups(rest[:FOLDED], k)
        if len(rest) > FOLDED:
            body.append(f"\n… and {len(rest) - FOLDED} more (`--format json`).")
        out += _md_details(f"The other {len(rest)} input × persona groups", body)
    for status, title in (("added", "Only in the new run"), ("removed", "Only in the base run")):
        only = [g for g in data["groups"] if g["status"] == status]
        if only:
            body = _md_groups(only[:FOLDED], k)
            if len(only) > FOLDED:
                body.append(f"\n… and {len(only) - FOLDED} more.")
            out += _md_details(f"{title}: {len(only)} input × persona groups", body)
    footer = f"Tolerance: {_tolerance_text(data)}"
    if data["unchecked"]:
        footer += " · not checked: " + "; ".join(data["unchecked"])
    out += ["", f"<sub>{_md(footer)}</sub>", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------- terminal


def _aligned(rows: Sequence[Sequence[str]], left: int = 1, indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(
            cell.ljust(widths[i]) if i < left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def _table_cases(title: str, cases: Sequence[Mapping[str, Any]]) -> list[str]:
    if not cases:
        return [f"{title}: none"]
    rows = [["persona", "input", "it", "case"]]
    rows += [
        [c["persona"] or "-", _flat(c["input"], 40), str(c["iteration"]), c["case_id"]]
        for c in cases[:TOP]
    ]
    lines = [f"{title} ({len(cases)}):", *_aligned(rows, left=2)]
    if len(cases) > TOP:
        lines.append(f"  … and {len(cases) - TOP} more (--format json)")
    return lines


def render_table(data: Mapping[str, Any]) -> str:
    """Aligned plain text for a terminal, for the comparison ``data``."""
    k = data["k"]
    name, base, new = _runs_line(data)
    verdict = "REGRESSED" if data["regressed"] else "OK"
    out = [
        f"FluxLoop compare: {verdict}, {_headline(data)}",
        f"{name}: base {base} -> new {new}; pass^k with k={k}",
    ]
    out += [f"WARNING: {w}" for w in data["warnings"]]
    if data["regressions"]:
        out += ["", "regressions:", *(f"  - {r['message']}" for r in data["regressions"])]
    overall = [["", "base", "new", "change", ""], *_overall_rows(data, "REGRESSION")]
    out += ["", *_aligned(overall)]
    cases = data["cases"]
    out += ["", *_table_cases("newly failing", cases["newly_failing"])]
    out += _table_cases("newly passing", cases["newly_passing"])
    out.append(f"still failing: {len(cases['still_failing'])} case(s)")
    flaky = data["newly_flaky"]
    if flaky:
        out.append(f"newly flaky ({len(flaky)}):")
        out += [f"  {g['persona'] or '-'}: {_flat(g['input'])}" for g in flaky[:TOP]]
    compared = [g for g in data["groups"] if g["status"] == "compared"]
    changed = [g for g in compared if _changed(g)]
    if changed:
        out += ["", f"biggest changes by input × persona ({len(changed)} of {len(compared)}):"]
        rows = [_group_header(k), *(_group_cells(g, k) for g in changed[:TOP])]
        out += _aligned(rows, left=2)
        if len(changed) > TOP:
            out.append(f"  … and {len(changed) - TOP} more (--format json)")
    else:
        out += ["", f"no input × persona changed its pass rate ({len(compared)} compared)"]
    for status, title in (("added", "only in the new run"), ("removed", "only in the base run")):
        only = [g for g in data["groups"] if g["status"] == status]
        if only:
            out.append(f"{title}: {len(only)} input × persona group(s)")
            out += [f"  {g['persona'] or '-'}: {_flat(g['input'])}" for g in only[:TOP]]
            if len(only) > TOP:
                out.append(f"  … and {len(only) - TOP} more")
    out += ["", f"tolerance: {_tolerance_text(data)}"]
    if data["unchecked"]:
        out.append("not checked: " + "; ".join(data["unchecked"]))
    return "\n".join(out) + "\n"
