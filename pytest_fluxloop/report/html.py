"""The single-file HTML report of an experiment: ``fluxloop report DIR`` and
``--fluxloop-report``.

One ``report.html`` with its CSS and script inline, that opens from ``file://`` with no
network (its Content-Security-Policy allows nothing else). Everything is rendered to HTML
here, so the page reads with JavaScript blocked: transcripts are ``<details>`` elements, and
the small inline script only adds search, filters and sorting.

What it shows, top to bottom: the run (experiment, status, when, how long, versions, config
snapshot), the headline figures, gates, the comparison with a baseline, the cases that need
attention in full (evaluation, error, transcript, observation timeline), per-evaluator,
per-persona and per-input tables, latency and token histograms, tokens by role, and a table
of every case followed by the passing cases shown in full.

A size budget (``max_bytes``) keeps the file small at any run size: up to
:data:`MAX_DETAILED` cases are shown in full (failures first), each cut to its share of the
budget, with long payloads cut and a note naming the JSONL file and line that has them;
the case table then lists as many rows as the rest of the budget holds (failures first) and
says how many it left out. Traces are streamed: one full record is held at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from html import escape
from importlib import resources
from pathlib import Path

from ..artifacts.reader import ExperimentFolder
from ..artifacts.writer import JSONL_FILES
from ..atomicfile import write_atomic
from ..errors import ConfigError
from ..redact import Redactor
from .charts import fmt_number
from .figures import run_figures
from .html_case import CaseLimits, render_case
from .html_data import ATTENTION, CATEGORIES, CaseRow, read_rows, role_totals, scan_records
from .html_parts import header, headline
from .html_tables import evaluation_tables, tokens_and_charts

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_DETAILED",
    "REPORT_FILE",
    "REPORT_MARKER",
    "render_report",
    "write_report",
]

REPORT_FILE = "report.html"
"""The default file name, inside the experiment folder."""
REPORT_MARKER = '<meta name="generator" content="pytest-fluxloop report">'
"""In every report's head: how :func:`write_report` knows a file it may replace."""
DEFAULT_MAX_BYTES = 8_000_000
"""The default size budget: 20,000 cases' rows and a few hundred transcripts fit."""
MAX_DETAILED = 200
"""Cases shown in full at most (failures first)."""
DETAIL_SHARE = 0.4
"""The part of the budget the cases shown in full may take; the case table gets the rest."""
MIN_CASE_BYTES = 6_000
MAX_CASE_BYTES = 120_000
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
PROTECTED_FILES = frozenset({*JSONL_FILES, "summary.json", "metadata.json", "config.yaml"})
"""An experiment's own artifacts: never overwritten by a report."""


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets").joinpath(name).read_text("utf-8")


def _size(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


def _fit_case(row: CaseRow, record: dict[str, object], source: str, line: int, budget: int) -> str:
    """The case within ``budget`` bytes: shown with smaller limits until it fits (the last
    try, with the smallest limits, is kept whatever its size)."""
    limits = CaseLimits(
        payload_chars=max(min(budget // 6, 6000), 300),
        observations=max(min(budget // 500, 300), 10),
    )
    html = render_case(row, record, source, line, limits)
    for _ in range(3):
        if _size(html) <= budget:
            break
        limits = limits.smaller()
        html = render_case(row, record, source, line, limits)
    return html


def _details(
    folder: ExperimentFolder,
    rows: Sequence[CaseRow],
    budget: int,
    max_detailed: int,
    redact: Redactor,
) -> dict[int, str]:
    """The cases shown in full, by row index: the first rows (failures come first)."""
    if not rows or budget <= 0 or max_detailed <= 0:
        return {}
    count = min(len(rows), max_detailed, max(budget // MIN_CASE_BYTES, 1))
    per_case = min(MAX_CASE_BYTES, budget // count)
    chosen = {row.trace_id: row for row in rows[:count] if row.trace_id}
    out: dict[int, str] = {}
    for source, line, record in scan_records(folder, chosen):
        row = chosen[str(record.get("trace_id"))]
        out[row.index] = _fit_case(row, redact(record), source, line, per_case)
    return out


def _row_html(row: CaseRow, linked: bool) -> str:
    # Lean on purpose: at 20,000 cases every byte here is 20 kB of page. The persona filter
    # reads the persona cell; the outcome cell is coloured from the row's data-o.
    case = escape(row.case_id)
    if linked:
        case = f'<a href="#c-{row.index}">{case}</a>'
    label = row.status if row.category == "error" else row.category
    tokens = row.tokens.get("agent")
    return (
        f'<tr data-o="{row.category}"><td>{case}</td><td>{escape(row.persona)}</td>'
        f"<td>{'' if row.iteration is None else row.iteration}</td>"
        f"<td>{escape(row.input[:120])}</td><td>{escape(label)}</td>"
        f"<td>{fmt_number(row.score)}</td><td>{fmt_number(row.duration_ms)}</td>"
        f"<td>{fmt_number(tokens)}</td><td>{'' if row.turns is None else row.turns}</td>"
        f"<td>{row.line}</td></tr>"
    )


def _cases_table(rows: Sequence[CaseRow], details: dict[int, str], budget: int) -> str:
    """The table of cases, as many rows as ``budget`` bytes hold, and a note on the rest."""
    parts: list[str] = []
    used = 0
    for row in rows:
        html = _row_html(row, row.index in details)
        used += _size(html)
        if used > budget:
            break
        parts.append(html)
    note = ""
    left = rows[len(parts) :]
    if left:
        counts = {c: sum(1 for r in left if r.category == c) for c in CATEGORIES}
        spread = ", ".join(f"{n:,} {c}" for c, n in counts.items() if n)
        note = (
            f'<p class="warn">{len(left):,} more cases not listed ({spread}) to keep this '
            "file small: every case is in trace_summary.jsonl (the line column below is its "
            "line there).</p>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("case", "persona", "iter", "input", "outcome", "score", "ms", "agent tokens")
    )
    return (
        f'{note}<table class="cases"><thead><tr>{head}<th>turns</th><th>line</th></tr>'
        f"</thead><tbody>{''.join(parts)}</tbody></table>"
    )


def _filters(rows: Sequence[CaseRow]) -> str:
    personas = sorted({row.persona for row in rows} - {""})  # "" is "All personas"
    options = "".join(f'<option value="{escape(p)}">{escape(p or "—")}</option>' for p in personas)
    return (
        '<div id="filters" class="filters" hidden>'
        '<input id="f-q" type="search" placeholder="Search cases and transcripts" '
        'aria-label="Search">'
        '<select id="f-o" aria-label="Outcome"><option value="">All outcomes</option>'
        '<option value="attention">Needs attention</option><option value="error">Agent '
        'errors</option><option value="failed">Failed</option><option value="unscored">'
        'Unscored</option><option value="passed">Passed</option></select>'
        f'<select id="f-p" aria-label="Persona"><option value="">All personas</option>{options}'
        '</select><span id="f-count" class="muted"></span></div>'
    )


def render_report(
    folder: ExperimentFolder,
    *,
    baseline: ExperimentFolder | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_detailed: int = MAX_DETAILED,
) -> str:
    """The report of ``folder`` as one HTML document (``baseline``: add a comparison)."""
    # The artifacts were redacted when written; this redacts again with what is secret now
    # (this environment's keys), as `fluxloop parse` does, before anything is cut. Inputs
    # repeat over iterations and personas: each distinct text is redacted once.
    redact = Redactor()
    clean = functools.lru_cache(maxsize=8192)(redact.redact_text)
    rows = read_rows(folder, clean)
    block = redact(run_figures(folder))
    details = _details(folder, rows, int(max_bytes * DETAIL_SHARE), max_detailed, redact)
    anchors = {row.case_id: row.index for row in rows if row.index in details}
    attention = [details[r.index] for r in rows if r.category in ATTENTION and r.index in details]
    others = [details[r.index] for r in rows if r.category not in ATTENTION and r.index in details]
    comparison = ""
    if baseline is not None:
        from .html_compare import comparison_section

        comparison = comparison_section(folder, baseline, anchors)
    failing = sum(1 for r in rows if r.category in ATTENTION)
    shown_note = ""
    if failing > len(attention):
        shown_note = (
            f'<p class="warn">{len(attention):,} of {failing:,} cases that need attention are '
            "shown in full (size budget); the table of cases lists the others.</p>"
        )
    sections = [
        header(folder),
        headline(block, rows),
        comparison,
        '<section id="failures"><h2>Needs attention</h2>'
        + (
            f'<p class="muted">{failing:,} case{"s" if failing != 1 else ""}: agent errors, '
            "failed and unscored evaluations, each with its transcript and timeline.</p>"
            if failing
            else '<p class="ok">Every case passed.</p>'
        )
        + shown_note
        + "".join(attention)
        + "</section>",
        evaluation_tables(block, rows, anchors),
        tokens_and_charts(rows, role_totals(folder.summary, rows)),
    ]
    tail = "".join(others)
    css, js = _asset("report.css"), _asset("report.js")
    title = escape(f"FluxLoop report: {folder.name}")
    nav = (
        '<nav class="top"><b>FluxLoop</b><a href="#headline">Summary</a>'
        + ('<a href="#baseline">Baseline</a>' if comparison else "")
        + '<a href="#failures">Needs attention</a><a href="#personas">Personas</a>'
        '<a href="#inputs">Inputs</a><a href="#charts">Distributions</a>'
        '<a href="#tokens">Tokens</a><a href="#cases">All cases</a>' + _filters(rows) + "</nav>"
    )
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'{REPORT_MARKER}<title>{title}</title><link rel="icon" href="data:,">'
        f"<style>{css}</style></head><body>{nav}<main>"
    )
    foot = (
        "<footer>Made by pytest-fluxloop from the files of this experiment folder; every "
        "figure is in summary.json, every case in trace_summary.jsonl and traces.jsonl."
        f"</footer></main><script>{js}</script></body></html>\n"
    )
    cases_head = (
        '<section id="cases"><h2>All cases</h2><p class="muted">Needs attention first. '
        "The line column is the case's line in trace_summary.jsonl.</p>"
    )
    passing_head = "<h3>Passing cases in full</h3>" if others else ""
    fixed = sum(map(_size, (*sections, tail, head, foot, cases_head, passing_head)))
    # 1,000 bytes: the table head and the note on the rows left out.
    table = _cases_table(rows, details, max_bytes - fixed - 1000)
    body = "".join(sections) + cases_head + table + passing_head + tail + "</section>"
    return head + body + foot


def _is_report(path: Path) -> bool:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return REPORT_MARKER in fh.read(4096)
    except OSError:
        return False


def write_report(
    folder: ExperimentFolder | Path | str,
    output: Path | None = None,
    *,
    baseline: ExperimentFolder | Path | str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    overwrite: bool = False,
) -> Path:
    """Write the report of ``folder`` to ``output`` (default ``<folder>/report.html``),
    atomically; returns the path written.

    An earlier report is replaced; any other existing file only with ``overwrite``; an
    experiment's own artifact files (summary.json, traces.jsonl ...) never.

    Raises:
        NotAnExperimentError, NewerFormatError: ``folder`` or ``baseline`` cannot be read.
        ConfigError: ``output`` is an artifact file, a folder, or an existing file that
            is not a report (without ``overwrite``).
    """
    experiment = folder if isinstance(folder, ExperimentFolder) else ExperimentFolder.open(folder)
    base = (
        baseline
        if baseline is None or isinstance(baseline, ExperimentFolder)
        else ExperimentFolder.open(baseline)
    )
    target = Path(output) if output is not None else experiment.path / REPORT_FILE
    target = target.expanduser()
    if target.name in PROTECTED_FILES and (target.parent / "trace_summary.jsonl").exists():
        raise ConfigError(f"{target}: an experiment's own file; give another --output")
    if target.is_dir():
        raise ConfigError(f"{target}: a folder; give a file name, e.g. {target / REPORT_FILE}")
    if target.exists() and not overwrite and not _is_report(target):
        raise ConfigError(f"{target}: exists and is not a FluxLoop report; pass --overwrite")
    html = render_report(experiment, baseline=base, max_bytes=max_bytes)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, html.encode("utf-8", "replace"))
    return target
