"""How much worse a new run may be than its base: ``--tolerance`` and the regressions.

:class:`Tolerance` holds the allowed changes, :func:`parse_tolerance` reads them from the
``--tolerance "pass_rate=0.05,latency=0.5"`` text, and :func:`find_regressions` checks the
overall figures of a comparison against them. A figure unknown in either run (no counted
case, no token counts reported) breaches nothing and is listed as not checked: comparing
nothing with nothing proves nothing either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ..config.errors import suggest_key
from ..errors import ConfigError
from . import compare_text

__all__ = [
    "TOLERANCE_KEYS",
    "Regression",
    "Tolerance",
    "ToleranceError",
    "beyond",
    "find_regressions",
    "parse_tolerance",
]

_EPS = 1e-9  # a change of exactly the tolerance (up to rounding) is within it


class ToleranceError(ConfigError, ValueError):
    """A ``--tolerance`` text that cannot be read; the message names the key and the fix."""


@dataclass(frozen=True)
class Tolerance:
    """How much worse the new run may be before it counts as a regression.

    ``None`` turns a check off (``latency=off``): wall-clock latency on a shared CI runner is
    often too noisy to gate on.
    """

    pass_rate_drop: float | None = 0.0
    """Absolute drop of the overall pass rate (0.05: five percentage points)."""
    pass_hat_k_drop: float | None = 0.0
    """Absolute drop of the overall pass^k (the mean over input × persona groups)."""
    latency_increase: float | None = 0.2
    """Relative rise of the p95 latency (0.2: 20 %)."""
    latency_floor_ms: float | None = 10.0
    """A p95 rise of fewer ms than this is never a regression, whatever its ratio: a
    sub-millisecond agent doubles its latency on scheduler noise alone."""
    tokens_increase: float | None = 0.2
    """Relative rise of the mean agent tokens per case."""
    new_failures: int | None = 0
    """Cases that passed in the base run and fail in the new one."""

    def to_json(self) -> dict[str, Any]:
        """The tolerance under its ``--tolerance`` keys (``None``: the check is off)."""
        return {key: getattr(self, name) for key, name in _KEY_FIELDS.items()}


_KEY_FIELDS = {
    "pass_rate": "pass_rate_drop",
    "pass_hat_k": "pass_hat_k_drop",
    "latency": "latency_increase",
    "latency_floor_ms": "latency_floor_ms",
    "tokens": "tokens_increase",
    "new_failures": "new_failures",
}
TOLERANCE_KEYS = tuple(_KEY_FIELDS)
"""The keys ``--tolerance`` accepts (the field names of :class:`Tolerance` are accepted too)."""
_ALIASES = {
    **{name: name for name in _KEY_FIELDS.values()},
    **{key: name for key, name in _KEY_FIELDS.items()},
    "pass^k": "pass_hat_k_drop",
}
_NUMBER = re.compile(r"[+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?%?")


def parse_tolerance(text: str | Iterable[str], base: Tolerance | None = None) -> Tolerance:
    """``"pass_rate=0.05,latency=0.5,tokens=off,new_failures=2"`` over ``base`` (default:
    the defaults); several texts (repeated ``--tolerance``) are read as one.

    Rates take ``0.05`` or ``5%``; ``latency_floor_ms`` milliseconds; ``new_failures`` a
    whole number; any key ``off``.

    Raises:
        ToleranceError: an unknown key (with a suggestion and the valid keys), a key given
            twice, or a value that is not a non-negative number.
    """
    parts = [text] if isinstance(text, str) else list(text)
    items = [item.strip() for part in parts for item in part.split(",") if item.strip()]
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = (s.strip() for s in item.partition("="))
        name = _ALIASES.get(key.lower())
        if name is None:
            hint = suggest_key(key, TOLERANCE_KEYS)
            did = f" (did you mean {hint!r}?)" if hint else ""
            raise ToleranceError(
                f"tolerance: unknown key {key!r}{did}; valid keys: {', '.join(TOLERANCE_KEYS)}"
            )
        if not sep or not raw:
            raise ToleranceError(f"tolerance: {key!r} has no value; write e.g. {key}=0.1")
        if name in values:
            raise ToleranceError(f"tolerance: {key!r} is given twice")
        values[name] = _value(key, name, raw)
    return replace(base or Tolerance(), **values)


def _value(key: str, name: str, raw: str) -> float | int | None:
    if raw.lower() in ("off", "none"):
        return None
    if name == "new_failures":
        if not raw.isdigit():
            raise ToleranceError(
                f"tolerance: {key}={raw!r}: give a whole number of cases (0, 1, 2 ...) or 'off'"
            )
        return int(raw)
    if not _NUMBER.fullmatch(raw) or (name == "latency_floor_ms" and raw.endswith("%")):
        what = "milliseconds" if name == "latency_floor_ms" else "a number (0.05 or 5%)"
        raise ToleranceError(f"tolerance: {key}={raw!r}: give {what} at least 0, or 'off'")
    value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    if not math.isfinite(value):
        raise ToleranceError(f"tolerance: {key}={raw!r}: give a finite number, or 'off'")
    return value


@dataclass(frozen=True)
class Regression:
    """One tolerance the new run breached, with what was measured."""

    check: str
    """The ``--tolerance`` key: ``pass_rate``, ``pass_hat_k``, ``latency``, ``tokens`` or
    ``new_failures``."""
    base: float | None
    new: float
    change: float
    """Absolute for the rates and ``new_failures``, relative for latency and tokens."""
    allowed: float
    message: str

    def to_json(self) -> dict[str, Any]:
        """A plain dict of the fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def beyond(
    change: Mapping[str, Any], allowed: float, minimum: float = 0.0, *, both_ways: bool = False
) -> bool:
    """Whether a ``{delta, relative}`` change rose more than ``allowed`` (relative) and by at
    least ``minimum`` (absolute); ``both_ways``: a fall counts as much as a rise."""
    relative, delta = change.get("relative"), change.get("delta")
    if relative is None or delta is None:
        return False
    if both_ways:
        relative, delta = abs(relative), abs(delta)
    return bool(relative > allowed + _EPS and delta >= minimum)


def find_regressions(
    tolerance: Tolerance, overall: Mapping[str, Mapping[str, Any]], k: int, newly_failing: int
) -> tuple[list[Regression], list[str]]:
    """The breached tolerances, and the checks that had nothing to measure (with why).

    ``overall`` is :attr:`.compare.Comparison.overall`; ``newly_failing`` the number of cases
    that passed in the base run and fail in the new one.
    """
    regressions: list[Regression] = []
    unchecked: list[str] = []
    for check, label, allowed in (
        ("pass_rate", "pass rate", tolerance.pass_rate_drop),
        ("pass_hat_k", f"pass^{k}", tolerance.pass_hat_k_drop),
    ):
        figure = overall[check]
        if allowed is None:
            continue
        if figure["delta"] is None:
            unchecked.append(f"{check}: {label} unknown in a run (no counted case)")
        elif -figure["delta"] > allowed + _EPS:
            regressions.append(
                Regression(
                    check,
                    figure["base"],
                    figure["new"],
                    figure["delta"],
                    allowed,
                    f"{label} fell from {compare_text.pct(figure['base'])} to "
                    f"{compare_text.pct(figure['new'])} ({compare_text.points(figure['delta'])};"
                    f" allowed drop {allowed * 100:.1f} pts)",
                )
            )
    floor = tolerance.latency_floor_ms or 0.0
    for check, name, label, allowed, minimum in (
        ("latency", "latency_p95_ms", "p95 latency", tolerance.latency_increase, floor),
        ("tokens", "tokens_mean", "mean agent tokens", tolerance.tokens_increase, 0.0),
    ):
        figure = overall[name]
        if allowed is None:
            continue
        if figure["relative"] is None:
            unchecked.append(f"{check}: {label} {_why_unknown(figure)}")
        elif beyond(figure, allowed, minimum):
            show = compare_text.ms if check == "latency" else compare_text.num
            also = f", or any rise under {minimum:g} ms" if minimum else ""
            regressions.append(
                Regression(
                    check,
                    figure["base"],
                    figure["new"],
                    figure["relative"],
                    allowed,
                    f"{label} rose from {show(figure['base'])} to {show(figure['new'])} "
                    f"({compare_text.rel(figure['relative'])}; allowed rise "
                    f"{allowed * 100:.1f}%{also})",
                )
            )
    allowed_failures = tolerance.new_failures
    if allowed_failures is not None and newly_failing > allowed_failures:
        regressions.append(
            Regression(
                "new_failures",
                0,
                newly_failing,
                newly_failing,
                allowed_failures,
                f"{newly_failing} case(s) passed in the base run and fail in the new one "
                f"(allowed {allowed_failures})",
            )
        )
    return regressions, unchecked


def _why_unknown(figure: Mapping[str, Any]) -> str:
    missing = [label for label in ("base", "new") if figure[label] is None]
    if missing:
        return f"unknown in the {' and '.join(missing)} run (not reported)"
    return "is 0 in the base run (no ratio)"
