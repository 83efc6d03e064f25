"""Node ids of experiment items: built and parsed here only.

An item is named ``<experiment name>[<case id>]`` under the config file's node, like a
parametrized function, so ``-k``, ``--lf`` and IDE test explorers treat cases as tests.
"""

from __future__ import annotations

from collections.abc import Iterable


def item_name(experiment_name: str, case_id: str) -> str:
    """The item's name (the last part of its node id)."""
    return f"{experiment_name}[{case_id}]"


def case_id_of(nodeid: str, experiment_name: str) -> str | None:
    """The case id in an experiment item's node id, or None for any other node id."""
    _, sep, rest = nodeid.partition(f"::{experiment_name}[")
    if not sep or not rest.endswith("]"):
        return None
    return rest[:-1]


def count_cases(nodeids: Iterable[str], experiment_name: str) -> int:
    """How many of ``nodeids`` are items of the experiment."""
    return sum(case_id_of(nodeid, experiment_name) is not None for nodeid in nodeids)
