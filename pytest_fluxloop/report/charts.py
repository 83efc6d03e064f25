"""Inline SVG charts for the HTML report: histograms and a stacked bar.

Drawn on the server, as markup, so the page needs no script and no network to show them;
every chart also has its numbers as text next to it (a caption or a table), so a reader
whose browser draws no SVG, or who reads the page with a screen reader, loses nothing.
Labels go through :func:`html.escape`: a persona name or role is data from the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["fmt_number", "histogram_svg", "stacked_bar_svg"]

WIDTH = 640
HEIGHT = 170
LEFT = 44  # room for the count axis labels
BOTTOM = 30  # room for the value axis labels
TOP = 14  # room for the marker labels
BINS = 24


def fmt_number(value: float | None, unit: str = "") -> str:
    """A short, readable number: thousands separators, at most one decimal below 1,000."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000 or float(value).is_integer():
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip() if unit else text


def _nearest_rank(values: Sequence[float], p: float) -> float:
    # Nearest rank, like evaluation.gates.latency_stats: always a value that occurred.
    return values[max(math.ceil(p / 100.0 * len(values)), 1) - 1]


def histogram_svg(values: Sequence[float], *, label: str, unit: str = "") -> str:
    """A histogram of ``values`` as an ``<svg>`` element, with p50 and p95 marked.

    A long tail would squeeze every other bar into one: when the maximum is more than four
    times the p95, the axis ends at the p99 and the last bar counts everything above it
    (its tooltip says so). Returns a short note for an empty series.
    """
    data = sorted(v for v in values if math.isfinite(v))
    if not data:
        return '<p class="muted">No values recorded.</p>'
    lo, hi = data[0], data[-1]
    p50, p95 = _nearest_rank(data, 50), _nearest_rank(data, 95)
    clipped = len(data) >= 20 and hi > 4 * p95 and p95 > lo
    axis_hi = _nearest_rank(data, 99) if clipped else hi
    if axis_hi <= lo:
        axis_hi = lo + (1.0 if lo == 0 else abs(lo) * 0.01)
    bins = BINS if len(data) > 1 else 1
    width = (axis_hi - lo) / bins
    counts = [0] * bins
    for value in data:
        index = int((value - lo) / width) if value < axis_hi else bins - 1
        counts[min(index, bins - 1)] += 1
    peak = max(counts)
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    bar_w = plot_w / bins
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{peak:,}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i, count in enumerate(counts):
        if not count:
            continue
        h = max(plot_h * count / peak, 1.0)
        x = LEFT + i * bar_w
        start = lo + i * width
        end = start + width
        last_open = clipped and i == bins - 1
        span = (
            f"≥ {fmt_number(start, unit)}"
            if last_open
            else f"{fmt_number(start)}–{fmt_number(end, unit)}"
        )
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{TOP + plot_h - h:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}"><title>{escape(span)}: '
            f"{count:,} case{'s' if count != 1 else ''}</title></rect>"
        )
    for name, value in (("p50", p50), ("p95", p95)):
        if value > axis_hi:
            continue
        x = LEFT + plot_w * (value - lo) / (axis_hi - lo) if axis_hi > lo else LEFT
        parts.append(
            f'<line class="marker" x1="{x:.1f}" y1="{TOP - 2}" x2="{x:.1f}" '
            f'y2="{TOP + plot_h}"/><text class="mlabel" x="{x + 3:.1f}" y="{TOP + 6}">'
            f"{name}</text>"
        )
    right = f"{'≥ ' if clipped else ''}{fmt_number(axis_hi, unit)}"
    parts += [
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 10}">{escape(fmt_number(lo, unit))}</text>',
        f'<text class="tick" x="{LEFT + plot_w}" y="{HEIGHT - 10}" text-anchor="end">'
        f"{escape(right)}</text>",
        "</svg>",
    ]
    return "".join(parts)


def stacked_bar_svg(parts: Sequence[tuple[str, float, str]], *, label: str) -> str:
    """One horizontal bar split into ``(name, value, css class)`` segments, in order.

    Zero and negative values are left out; a bar with nothing to show is a short note.
    """
    shown = [(name, value, css) for name, value, css in parts if value > 0]
    total = sum(value for _, value, _ in shown)
    if total <= 0:
        return '<p class="muted">Nothing to show.</p>'
    out = [
        f'<svg class="stack" viewBox="0 0 {WIDTH} 22" role="img" aria-label="{escape(label)}" '
        'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">'
    ]
    x = 0.0
    for name, value, css in shown:
        w = WIDTH * value / total
        share = 100.0 * value / total
        out.append(
            f'<rect class="{escape(css)}" x="{x:.2f}" y="0" width="{w:.2f}" height="22">'
            f"<title>{escape(name)}: {fmt_number(value)} ({share:.1f}%)</title></rect>"
        )
        x += w
    out.append("</svg>")
    return "".join(out)
