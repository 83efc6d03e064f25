"""pytest-xdist glue: worker detection, the seed handoff, worksteal, the worker's queue, and
who is to blame when a worker dies.

Everything that knows how xdist works lives here, so the rest of the plugin only asks
"am I a worker?" and "which cases come next in this process?".

With ``parallel_runs: N`` a worker runs the cases of its next items ahead of them, which
xdist knows nothing about. Two consequences are handled here:

- **Stealing.** worksteal takes items from the tail of a worker's queue and hands them to an
  idle worker. An item whose case already started here must not be run there too, so the
  worker's ``steal`` command is wrapped: it gives away only items whose case has not started
  (cancelling them here), and keeps the rest (:meth:`WorkerQueue.keep_claimed`).
- **Crashes.** When a worker dies, xdist blames the item it was *running*, but the case that
  killed it may be one running ahead. Each worker marks the cases it has in flight in a
  folder the controller shares with it (:class:`CrashLedger`); on a crash the controller
  compares: xdist's item alone in flight is blamed as usual; otherwise that item is run again
  (reported as ``rerun``, no record), a case that was alone in flight is recorded
  ``crashed`` by whichever worker gets it (without running it again), and when several were
  in flight each of them runs again on its own, so a second crash names the culprit.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from .keys import RECORD_ATTR
from .nodeids import case_id_of, count_cases

if TYPE_CHECKING:
    from ..plan import Case

R = TypeVar("R")

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


STEAL_REFUSAL_DELAY = 0.25
"""Seconds before answering a steal request this worker refuses entirely (every item asked
for has its case running here). Answering at once would make worksteal ask again at once, a
busy loop between controller and worker for as long as those cases run."""


class WorkerQueue:
    """This xdist worker's queue of item indices: pytest-xdist's private ``WorkerInteractor``.

    The one place that reads it. ``nextitem_index`` (the item after the running one) has
    left the queue and is this worker's for sure; items still in ``torun`` can be stolen
    unless :meth:`keep_claimed` guards them.
    """

    def __init__(self, interactor: Any) -> None:
        self._interactor = interactor
        self._torun = interactor.torun
        self.guarded = False
        """Steals give away only unstarted cases; else only ``nextitem_index`` is ours."""
        self._refusal: threading.Timer | None = None
        self._refusal_lock = threading.Lock()

    @classmethod
    def find(cls, config: pytest.Config) -> WorkerQueue | None:
        """The queue of this worker, or None if xdist isn't there or changed shape."""
        for plugin in config.pluginmanager.get_plugins():
            torun = getattr(plugin, "torun", None)
            if torun is not None and hasattr(plugin, "nextitem_index") and hasattr(torun, "lock"):
                return cls(plugin)
        return None

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        """Hold the queue still: no item is stolen (or added) until the block ends."""
        return self._torun.lock()

    def upcoming(self, limit: int) -> list[int]:
        """Indices of the items this worker will run next, in order (call under :meth:`lock`).

        Only those it is sure to run: the next item, plus the head of its queue if stealing
        is guarded.
        """
        head = self._interactor.nextitem_index
        indices = [head] if isinstance(head, int) else []
        if self.guarded:
            with self._torun.lock() as pending:
                indices += [i for i in itertools.islice(pending, limit) if isinstance(i, int)]
        return indices

    def keep_claimed(self, release: Callable[[int], bool]) -> bool:
        """Wrap the worker's ``steal`` command so it gives away an item only if
        ``release(index)`` is True (its case has not started here; it is cancelled here).

        Returns False (and changes nothing) if xdist's worker doesn't look as expected.
        """
        interactor, torun = self._interactor, self._torun
        if not (
            callable(getattr(interactor, "steal", None))
            and callable(getattr(interactor, "sendevent", None))
            and callable(getattr(torun, "replace", None))
        ):
            return False

        def steal(indices: Any) -> None:
            requested = set(indices)
            with torun.lock() as pending:
                queued = [i for i in pending if i in requested]
                given = [i for i in queued if release(i)]
                if given:
                    gone = set(given)
                    torun.replace(i for i in pending if i not in gone)
            # xdist's own steal is all or nothing; its scheduler takes any subset back.
            if queued and not given:
                self._defer_refusal()
            else:
                _reply(interactor, given)

        interactor.steal = steal  # handle_command looks the method up on each command
        self.guarded = True
        return True

    def _defer_refusal(self) -> None:
        with self._refusal_lock:
            if self._refusal is not None:
                return  # xdist sends one steal at a time: cannot happen, but never two
            timer = threading.Timer(STEAL_REFUSAL_DELAY, self.flush)
            timer.daemon = True
            self._refusal = timer
        timer.start()

    def flush(self) -> None:
        """Send a refusal held back by :data:`STEAL_REFUSAL_DELAY` now (at the latest when the
        session finishes: xdist's controller must get it before the worker's goodbye)."""
        with self._refusal_lock:
            timer, self._refusal = self._refusal, None
        if timer is not None:
            timer.cancel()
            _reply(self._interactor, [])


def _reply(interactor: Any, indices: list[int]) -> None:
    with contextlib.suppress(Exception):  # the session ended in between: nobody listens
        interactor.sendevent("unscheduled", indices=indices)


INFLIGHT_KEY = "fluxloop_inflight_dir"
"""``workerinput`` key: the folder where workers mark the cases they have in flight."""
SUSPECT = "suspect"
CRASHED = "crashed"
NO_CRASH_RECORD_ATTR = "fluxloop_no_crash_record"
"""Report attribute: xdist blamed an item that already has its record; write no other."""


class CrashLedger:
    """Files the controller shares with its workers (on one host): ``<worker>/<case id>``
    exists while that worker runs that case; ``verdicts`` lists, one per line, cases to run
    alone (``suspect <case id>``) or to record as crashed without running (``crashed <case
    id> <worker>``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._verdicts: dict[str, tuple[str, str]] = {}
        self._read_size = -1

    @classmethod
    def for_worker(cls, config: pytest.Config) -> CrashLedger | None:
        """The ledger this worker was given, if its folder is reachable (not a remote host)."""
        workerinput = getattr(config, "workerinput", None)
        path = workerinput.get(INFLIGHT_KEY) if isinstance(workerinput, dict) else None
        return cls(Path(path)) if path and os.path.isdir(path) else None

    # ---------------------------------------------------------------- worker side

    def tracking(self, worker: str, run: Callable[[Case], R]) -> Callable[[Case], R]:
        """``run`` that marks each case in flight for as long as it runs."""
        folder = self.root / worker
        folder.mkdir(exist_ok=True)

        def tracked(case: Case) -> R:
            marker = os.path.join(folder, case.case_id)
            with contextlib.suppress(OSError):
                os.close(os.open(marker, os.O_CREAT | os.O_WRONLY, 0o600))
            try:
                return run(case)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(marker)

        return tracked

    def verdict(self, case_id: str) -> tuple[str, str] | None:
        """``(SUSPECT or CRASHED, worker)`` for ``case_id``, if the controller gave one."""
        return self.verdicts().get(case_id)

    def verdicts(self) -> dict[str, tuple[str, str]]:
        """Every verdict so far, by case id (the file is read again only once it grew)."""
        path = self.root / "verdicts"
        try:
            size = path.stat().st_size
        except OSError:
            return self._verdicts
        if size != self._read_size:
            verdicts: dict[str, tuple[str, str]] = {}
            with contextlib.suppress(OSError):
                for line in path.read_text(encoding="utf-8").splitlines():
                    kind, _, rest = line.partition(" ")
                    case, _, worker = rest.partition(" ")
                    if kind in (SUSPECT, CRASHED) and case:
                        verdicts[case] = (kind, worker)
            self._verdicts, self._read_size = verdicts, size
        return self._verdicts

    # ---------------------------------------------------------------- controller side

    def in_flight(self, worker: str) -> set[str] | None:
        """Cases ``worker`` had in flight (None if it never tracked any)."""
        folder = self.root / worker
        try:
            return set(os.listdir(folder))
        except OSError:
            return None

    def add(self, kind: str, case_id: str, worker: str) -> None:
        """Append a verdict (only the controller writes this file)."""
        with (self.root / "verdicts").open("a", encoding="utf-8") as fh:
            fh.write(f"{kind} {case_id} {worker}\n")


class ControllerHooks:
    """xdist-only hooks of the controller, registered only when pytest-xdist is active."""

    def __init__(self, seed: int, experiment_name: str | None, on_selected: Any) -> None:
        self.seed = seed
        self.experiment_name = experiment_name
        self.on_selected = on_selected
        self.ledger: CrashLedger | None = None
        self._recorded: set[str] = set()

    def pytest_configure_node(self, node: Any) -> None:
        """Send the run seed to each worker so ``seed: null`` orders cases identically, and
        the folder where it marks the cases it has in flight."""
        node.workerinput[SEED_KEY] = self.seed
        if self.experiment_name is not None:
            if self.ledger is None:
                self.ledger = CrashLedger(Path(tempfile.mkdtemp(prefix="fluxloop-xdist-")))
            node.workerinput[INFLIGHT_KEY] = str(self.ledger.root)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Remember which items have their record (before the controller takes it off)."""
        if self.ledger is not None and getattr(report, RECORD_ATTR, None) is not None:
            self._recorded.add(report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """Blame a dead worker's crash on the case that was running, not on xdist's item.

        xdist names the item the worker was running; with cases run ahead, the process may
        have died in another one. See the module docstring for the rules.
        """
        ledger, name = self.ledger, self.experiment_name
        worker = report_worker(report)
        if ledger is None or name is None or worker is None:
            return
        case_id = case_id_of(crashitem, name)  # None: a plain test was xdist's current item
        reported = crashitem in self._recorded
        if reported:
            # It had reported (the worker died during its teardown): no second record.
            setattr(report, NO_CRASH_RECORD_ATTR, True)
        running = ledger.in_flight(worker)
        suspects = {c for c, (kind, _) in ledger.verdicts().items() if kind == SUSPECT}
        if not running or running == {case_id} or case_id in suspects:
            return  # xdist's item was the one running (or nothing is known): blame it
        if not reported:
            try:
                sched.mark_test_pending(crashitem)
            except Exception:  # a scheduler that can't run an item again (loadscope)
                return
            setattr(report, "outcome", "rerun")  # noqa: B010 - not one of pytest's outcomes
            report.longrepr = (
                f"worker {worker!r} crashed with {len(running)} case(s) in flight "
                f"({', '.join(sorted(running))}); {crashitem!r} is run again"
            )
        if len(running) == 1:
            (culprit,) = running
            ledger.add(CRASHED, culprit, worker)
        else:
            for suspect in sorted(running | ({case_id} if case_id and not reported else set())):
                ledger.add(SUSPECT, suspect, worker)

    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        """An item run again after another case crashed its worker: ``R``, not ``F``."""
        if getattr(report, "outcome", None) == "rerun":
            return "rerun", "R", ("RERUN", {"yellow": True})
        return None

    def pytest_unconfigure(self) -> None:
        """Remove the in-flight folder."""
        if self.ledger is not None:
            shutil.rmtree(self.ledger.root, ignore_errors=True)

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Count the selected cases from a worker's collection (all workers agree)."""
        if self.experiment_name is not None:
            self.on_selected(count_cases(ids, self.experiment_name))
