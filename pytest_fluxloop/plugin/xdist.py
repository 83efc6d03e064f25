"""pytest-xdist glue: worker detection, the seed handoff, worksteal, the queue peek.

Everything that knows how xdist works lives here, so the rest of the plugin only asks
"am I a worker?" and "which cases come next in this process?".
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any

import pytest

from .nodeids import count_cases

SEED_KEY = "fluxloop_seed"
"""``workerinput`` key carrying the controller's run seed to each worker."""


def is_worker(config: pytest.Config) -> bool:
    """True inside a pytest-xdist worker process."""
    return hasattr(config, "workerinput")


def is_distributing(config: pytest.Config) -> bool:
    """True in an xdist controller that sends items to workers (it runs none itself)."""
    return not is_worker(config) and config.pluginmanager.hasplugin("dsession")


def worker_id(config: pytest.Config) -> str | None:
    """This worker's id (``gw0`` ...), or None outside a worker."""
    workerinput = getattr(config, "workerinput", None)
    return workerinput.get("workerid") if isinstance(workerinput, dict) else None


def report_worker(report: pytest.TestReport) -> str | None:
    """The id of the worker that sent ``report`` (on the controller), if known."""
    gateway = getattr(getattr(report, "node", None), "gateway", None)
    return getattr(gateway, "id", None)


def run_seed(config: pytest.Config, fallback: int | None = None) -> int:
    """The seed for ``seed: null``: the controller's, handed to every worker.

    Every xdist worker must collect the same cases in the same order, so a "random" order
    has to be the same random order everywhere. ``fallback`` (a resumed run's seed) wins on
    the controller; otherwise a fresh one is drawn.
    """
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, dict) and SEED_KEY in workerinput:
        return int(workerinput[SEED_KEY])
    return fallback if fallback is not None else secrets.randbits(31)


def prefer_worksteal(config: pytest.Config) -> None:
    """Under ``-n`` without ``--dist``, schedule an experiment with xdist's ``worksteal``.

    xdist's default ``load`` mode feeds each worker 2-4 items at a time, too few for
    ``parallel_runs`` to schedule ahead; worksteal hands each worker its share up front (and
    rebalances), which also suits agents whose latencies vary. Call before xdist sets its
    own default.
    """
    numprocesses = getattr(config.option, "numprocesses", None)
    if numprocesses and getattr(config.option, "dist", None) == "no":
        config.option.dist = "worksteal"


def queued_indices(config: pytest.Config, limit: int) -> list[int]:
    """Indices of the items this xdist worker will run next (its own queue, in order).

    Reads pytest-xdist's private ``WorkerInteractor`` state, the one place that does: only
    the head of the queue is used, so cases that worksteal may move to another worker are
    rarely run ahead. Empty if xdist changes shape or isn't there.
    """
    for plugin in config.pluginmanager.get_plugins():
        torun = getattr(plugin, "torun", None)
        if torun is None or not hasattr(plugin, "nextitem_index"):
            continue
        with torun.lock() as pending:
            queued = [i for i in itertools.islice(pending, limit) if isinstance(i, int)]
        head = plugin.nextitem_index
        return ([head] if isinstance(head, int) else []) + queued
    return []


class ControllerHooks:
    """xdist-only hooks of the controller, registered only when pytest-xdist is active."""

    def __init__(self, seed: int, experiment_name: str | None, on_selected: Any) -> None:
        self.seed = seed
        self.experiment_name = experiment_name
        self.on_selected = on_selected

    def pytest_configure_node(self, node: Any) -> None:
        """Send the run seed to each worker so ``seed: null`` orders cases identically."""
        node.workerinput[SEED_KEY] = self.seed

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Count the selected cases from a worker's collection (all workers agree)."""
        if self.experiment_name is not None:
            self.on_selected(count_cases(ids, self.experiment_name))
