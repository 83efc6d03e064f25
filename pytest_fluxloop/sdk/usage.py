"""Token usage summed by role: a trace's from its generations, a run's from its traces.

The shape (``TraceRecord.token_usage``, ``ExperimentSummary.token_usage``)::

    {"agent": {"input_tokens": 120, "output_tokens": 30, "cached_tokens": null,
               "reasoning_tokens": null, "total_tokens": 150,
               "calls": 3, "calls_without_usage": 1},
     "supervisor": {...}}

A count is null when no call of that role reported it (unknown is not zero); a call whose
provider sent no usage at all is counted in ``calls_without_usage``, so a sum that misses
some calls says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..records import TOKEN_COUNT_KEYS, Observation

__all__ = ["RoleUsage", "add_role_usage", "token_usage_by_role"]

RoleUsage = dict[str, dict[str, Any]]


def _empty() -> dict[str, Any]:
    return {**dict.fromkeys(TOKEN_COUNT_KEYS), "calls": 0, "calls_without_usage": 0}


def _add_tokens(into: dict[str, Any], counts: Mapping[str, Any]) -> None:
    """Add each count of ``counts`` that is a number to ``into``'s (null until one is)."""
    for key in TOKEN_COUNT_KEYS:
        value = counts.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            into[key] = (into[key] or 0) + int(value)


def token_usage_by_role(
    observations: Iterable[Observation], skip_roles: Iterable[str] = ()
) -> RoleUsage | None:
    """Sum the ``usage`` of every finished generation in ``observations`` by role.

    ``skip_roles`` leaves out roles whose usage the caller counts another way (the
    supervisor's, which the conversation driver tallies even when LLM capture is off).
    Returns None when there is no generation to count.
    """
    skipped = frozenset(skip_roles)
    by_role: RoleUsage = {}
    for obs in observations:
        if obs.type != "span_end" or obs.kind != "generation":
            continue
        role = obs.role or "agent"
        if role in skipped:
            continue
        usage = obs.metadata.get("usage")
        into = by_role.setdefault(role, _empty())
        into["calls"] += 1
        if isinstance(usage, Mapping):
            _add_tokens(into, usage)
        else:
            into["calls_without_usage"] += 1
    return by_role or None


def add_role_usage(total: RoleUsage | None, usage: Mapping[str, Any] | None) -> RoleUsage | None:
    """``total`` with a trace's ``token_usage`` (same shape) added to it, role by role.

    Each role of ``usage`` may also be an earlier shape (``prompt_tokens`` /
    ``completion_tokens``), read as input/output. Returns ``total`` (a new dict when it was
    None and ``usage`` holds something).
    """
    if not usage:
        return total
    total = total if total is not None else {}
    for role, counts in usage.items():
        if not isinstance(counts, Mapping):
            continue
        into = total.setdefault(str(role), _empty())
        calls = counts.get("calls")
        calls = calls if isinstance(calls, int) and not isinstance(calls, bool) else 1
        without = counts.get("calls_without_usage")
        without = without if isinstance(without, int) and not isinstance(without, bool) else 0
        into["calls"] += calls
        into["calls_without_usage"] += without
        normalised = {
            "input_tokens": counts.get("input_tokens", counts.get("prompt_tokens")),
            "output_tokens": counts.get("output_tokens", counts.get("completion_tokens")),
            "cached_tokens": counts.get("cached_tokens"),
            "reasoning_tokens": counts.get("reasoning_tokens"),
            "total_tokens": counts.get("total_tokens"),
        }
        _add_tokens(into, normalised)
    return total
