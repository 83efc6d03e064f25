"""CI shards: a deterministic, balanced slice of an experiment's cases (``--shard K/N``).

Cases are grouped by input × persona (all iterations of one pair stay together, so a
shard can compute per-case reliability on its own). Groups are ordered by the sha256 of
their key (independent of the run seed, the case order and the machine), then each group
goes, in that order, to the least-loaded shard (ties: the lowest shard number). Every
machine that plans the same experiment gets the same shards; shard sizes differ by at most
one group's size, and the N shards together hold every case exactly once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .cases import Case

__all__ = ["Shard", "assign_groups", "group_key", "parse_shard", "select_shard"]

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, option: str = "--shard") -> Shard:
    """``"2/3"`` -> ``Shard(2, 3)``; ConfigError naming ``option`` for anything else
    (K and N whole numbers, 1 <= K <= N)."""
    match = _SHARD.match(text or "")
    if match is None:
        raise ConfigError(
            f"{option}: {text!r} is not a shard; give K/N, the shard to run and the number "
            f"of shards, e.g. {option} 1/3"
        )
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ConfigError(f"{option}: {text!r}: the number of shards N must be at least 1")
    if not 1 <= index <= count:
        raise ConfigError(
            f"{option}: {text!r}: the shard K must be between 1 and N ({count}), e.g. "
            f"{option} 1/{count}"
        )
    return Shard(index, count)


def group_key(case: Case) -> str:
    """The input × persona pair a case belongs to: every iteration of it has the same key.

    Built from the case id with its iteration removed, so duplicate inputs (``-dupN`` ids)
    stay distinct groups and the key depends on nothing but the inputs.
    """
    base, sep, rest = case.case_id.rpartition(f"-it{case.iteration}")
    if not sep:  # pragma: no cover - every planned id holds its iteration
        return f"{case.input_index}\x1f{case.persona or ''}"
    return base + rest  # rest: "" or "-dupN"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def assign_groups(sizes: dict[str, int], count: int) -> dict[str, int]:
    """Group key -> shard number (1-based): groups in sha256 order of their key, each into
    the least-loaded shard (ties: the lowest number)."""
    loads = [0] * count
    shards: dict[str, int] = {}
    for key in sorted(sizes, key=lambda k: (_hash(k), k)):
        target = min(range(count), key=lambda i: (loads[i], i))
        loads[target] += sizes[key]
        shards[key] = target + 1
    return shards


def shard_of_cases(cases: Iterable[Case], count: int) -> dict[str, int]:
    """Case id -> the shard (1-based, of ``count``) that runs it."""
    cases = list(cases)
    sizes: dict[str, int] = {}
    for case in cases:
        key = group_key(case)
        sizes[key] = sizes.get(key, 0) + 1
    groups = assign_groups(sizes, count)
    return {case.case_id: groups[group_key(case)] for case in cases}


def select_shard(cases: Sequence[Case], shard: Shard, option: str = "--shard") -> list[Case]:
    """The cases of ``shard``, in their given order.

    Raises:
        ConfigError: the shard would be empty (more shards than input × persona groups).
    """
    owner = shard_of_cases(cases, shard.count)
    kept = [case for case in cases if owner[case.case_id] == shard.index]
    if not kept:
        groups = len({group_key(case) for case in cases})
        raise ConfigError(
            f"{option} {shard}: shard {shard.index} has no cases: the experiment has "
            f"{groups} input × persona group(s) and a group is never split; use at most "
            f"{groups} shard(s)"
        )
    return kept
