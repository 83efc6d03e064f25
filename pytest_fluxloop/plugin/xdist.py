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
- **Remote workers** (``--tx ssh=...``, ``--tx socket=...``, any ``//chdir=``). xdist rewrites
  every command-line word that names an existing file relative to an ``--rsyncdir`` root, and
  stops with an INTERNALERROR on one outside them: our ``--fluxloop-config PATH`` is joined
  into one ``--fluxloop-config=PATH`` word first (:func:`remote_args`). Each worker loads the
  experiment from its own host's copy of the project (:func:`locate_config`), checks that it
  plans the controller's cases (:func:`plan_digest`), and tags its records with a key that
  does not depend on where that copy lives, so the controller matches every one of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from .keys import RECORD_ATTR
from .nodeids import case_id_of, count_cases
from .options import value_options

if TYPE_CHECKING:
    from ..plan import Case

R = TypeVar("R")

SEED_KEY = "fluxloop_seed"
"""``workerinput`` key carrying the controller's run seed to each worker."""
CONFIG_PATHS_KEY = "fluxloop_config_paths"
"""``workerinput`` key: where else a worker may find the config, relative to its project."""
PLAN_KEY = "fluxloop_plan"
"""``workerinput`` key: :func:`plan_digest` of the controller's experiment."""


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
    if fallback is not None:
        return fallback
    import secrets  # here, not at import: the plugin's start-up stays small

    return secrets.randbits(31)


def guard_steal_requests(node: Any) -> None:
    """Make worksteal's steal request to a worker that has just died a no-op.

    xdist's worksteal scheduler may ask a worker for items in the moment between the
    worker's process dying (an agent calling ``os._exit``, a segfault) and the controller
    reading the crash; sending on the closed channel then raises ``OSError`` and ends the
    whole session with an INTERNALERROR. Nothing can reach that worker any more, and xdist's
    crash handling, which follows, gives its unfinished items to the others, so the request
    is dropped instead.
    """
    send = getattr(node, "send_steal", None)
    if not callable(send):
        return

    def send_steal(indices: Any) -> None:
        try:
            send(indices)
        except OSError:  # a broken pipe to the worker: it is gone, not merely busy
            return  # its crash report, which follows, reschedules its items

    node.send_steal = send_steal


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


# ---------------------------------------------------------------------- remote workers


def is_remote(spec: Any) -> bool:
    """Whether xdist treats the gateway ``spec`` as remote: not a local ``popen``, or one with
    ``//chdir=`` (xdist's own test before it rewrites path arguments for rsync)."""
    return not getattr(spec, "popen", False) or bool(getattr(spec, "chdir", None))


REMOTE_VALUE_OPTIONS = frozenset({"--rsyncdir", "--rsyncignore"})
"""xdist's own path options, which its rsync rewriting trips over just like ours."""


def remote_args(args: Sequence[str]) -> list[str]:
    """``args`` with each ``--fluxloop-... VALUE`` pair joined into ``--fluxloop-...=VALUE``.

    For remote workers xdist makes every word that names an existing path relative to an
    rsync root, and fails on any other (even a relative one inside the project, even ``.``).
    The value of an option is no test path: as one word it is passed on untouched, and the
    worker resolves it on its own host (:func:`locate_config`).
    """
    joined = value_options() | REMOTE_VALUE_OPTIONS
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in joined and index + 1 < len(args):
            out.append(f"{arg}={args[index + 1]}")
            index += 2
        else:
            out.append(arg)
            index += 1
    return out


def rewrite_for_remote(config: pytest.Config, specs: Iterable[Any]) -> None:
    """Before xdist sets up remote workers, give it our option values as single words.

    xdist reads the words from ``config.invocation_params.args`` (a frozen dataclass, so it is
    replaced, with the same meaning: argparse reads ``--opt=value`` as ``--opt value``).
    """
    if not any(is_remote(spec) for spec in specs):
        return
    params = config.invocation_params
    args = remote_args([str(arg) for arg in params.args])
    if args != list(params.args):
        config.invocation_params = dataclasses.replace(params, args=tuple(args))


def project_relative(path: Path, roots: Iterable[Path]) -> list[str]:
    """``path`` relative to each of ``roots`` that holds it (POSIX form, for another host)."""
    found: list[str] = []
    for root in roots:
        try:
            relative = path.relative_to(root).as_posix()
        except ValueError:
            continue
        if relative not in found:
            found.append(relative)
    return found


def config_hints(
    path: Path, rootpath: Path, rsync_roots: Iterable[Path]
) -> dict[str, str | list[str] | None]:
    """Where a worker may find the controller's config ``path`` in its host's copy:
    ``project``, relative to the rootdir (None if outside it), and ``rsync``, the
    ``<root name>/...`` places xdist's rsync gives it in the worker's working folder."""
    inside = project_relative(path, [rootpath])
    rsync = [f"{root.name}/{rel}" for root in rsync_roots for rel in project_relative(path, [root])]
    return {"project": inside[0] if inside else None, "rsync": rsync}


def locate_config(config: pytest.Config, given: Path) -> Path:
    """The experiment config a worker loads: the controller's config at its place in this
    host's copy of the project, else ``given`` (the option resolved on this host), else
    where xdist's rsync put it.

    A worker on another host has its own checkout (``//chdir=``): its own copy is loaded even
    when an absolute ``--fluxloop-config`` also exists there, so node ids are relative to its
    rootdir like the controller's. With xdist's rsync the copy is ``<root name>/...`` in the
    worker's working folder.
    """
    if not is_worker(config):
        return given
    workerinput = getattr(config, "workerinput", {})
    hints = workerinput.get(CONFIG_PATHS_KEY) or {}
    project = hints.get("project")
    candidates = [config.rootpath / project] if project else []
    candidates.append(given)
    candidates += [config.invocation_params.dir / hint for hint in hints.get("rsync") or []]
    tried: list[Path] = []
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_file():
            return resolved
        if resolved not in tried:
            tried.append(resolved)
    listed = ", ".join(str(path) for path in tried)
    raise pytest.UsageError(
        f"pytest-fluxloop: worker {worker_id(config)} found no experiment config on its host "
        f"(tried {listed}); install or check out the project there and point --tx ...//chdir= "
        "at it, or use a --fluxloop-config path that is valid on every host"
    )


def plan_digest(experiment_name: str, case_ids: Iterable[str]) -> str:
    """A fingerprint of the cases an experiment plans: every worker must plan the same."""
    digest = hashlib.sha256(experiment_name.encode())
    for case_id in sorted(case_ids):
        digest.update(b"\0" + case_id.encode())
    return digest.hexdigest()[:16]


def plan_mismatch(
    config: pytest.Config, experiment_name: str, case_ids: Iterable[str]
) -> str | None:
    """In a worker: why its copy of the project plans other cases than the controller's
    (another config or inputs version on that host), or None if it plans the same.

    Its records would describe cases the controller never planned. The worker reports this
    as a collection error, which stops xdist cleanly; an error while it configures would
    count as a crash, and xdist would start the worker again and again.
    """
    workerinput = getattr(config, "workerinput", None)
    expected = workerinput.get(PLAN_KEY) if isinstance(workerinput, dict) else None
    if expected is None or plan_digest(experiment_name, case_ids) == expected:
        return None
    return (
        f"pytest-fluxloop: worker {worker_id(config)} (in {config.invocation_params.dir}) "
        f"plans other cases for experiment {experiment_name!r} than the controller: its copy "
        "of the project (config, inputs) differs; give every host the same version"
    )


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

    def __init__(
        self,
        seed: int,
        experiment_name: str | None,
        on_selected: Any,
        *,
        config: pytest.Config | None = None,
        config_path: Path | None = None,
        plan: str | None = None,
    ) -> None:
        self.seed = seed
        self.experiment_name = experiment_name
        self.on_selected = on_selected
        self.config = config
        self.config_path = config_path
        """The configured experiment's file on this (the controller's) host."""
        self.plan = plan
        """:func:`plan_digest` of the configured experiment, checked by every worker."""
        self.ledger: CrashLedger | None = None
        self._recorded: set[str] = set()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: Sequence[Any]) -> None:
        """Join our option values into single words before xdist sends the arguments to
        remote workers (see :func:`rewrite_for_remote`)."""
        rewrite_for_remote(config, specs)

    def pytest_configure_node(self, node: Any) -> None:
        """Send each worker the run seed (so ``seed: null`` orders cases identically), the
        folder where it marks the cases it has in flight, and where the config sits in the
        project and which cases it plans (so a worker on another host loads the same
        experiment from its own copy)."""
        node.workerinput[SEED_KEY] = self.seed
        if self.experiment_name is not None:
            if self.ledger is None:
                self.ledger = CrashLedger(Path(tempfile.mkdtemp(prefix="fluxloop-xdist-")))
            node.workerinput[INFLIGHT_KEY] = str(self.ledger.root)
        if self.config_path is not None and self.config is not None:
            roots = getattr(getattr(node, "nodemanager", None), "roots", None) or []
            node.workerinput[CONFIG_PATHS_KEY] = config_hints(
                self.config_path, self.config.rootpath, [Path(root) for root in roots]
            )
        if self.plan is not None:
            node.workerinput[PLAN_KEY] = self.plan
        guard_steal_requests(node)

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
