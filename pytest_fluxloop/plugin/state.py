"""What the plugin keeps for one pytest run (in ``config.stash``): the loaded experiments.

The configured experiment (``--fluxloop-config``) and the experiments of
``@pytest.mark.fluxloop`` markers are loaded here, once each, with config problems turned into
usage errors. Running cases is :mod:`.runner`'s job; writing results is :mod:`.controller`'s.
"""

from __future__ import annotations

import ast
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import FluxloopWarning
from .options import config_path, overrides_from_options
from .signals import ProcessGuard
from .usage import usage_errors
from .xdist import is_worker, locate_config, plan_mismatch, run_seed

CONFIGURED_KEY = "config"
"""Experiment key of the ``--fluxloop-config`` experiment (there is one per run).

Keys travel with each record from xdist workers to the controller, which writes the record
to the experiment with the same key: a key must not depend on where a host keeps its copy of
the project (a worker on another machine has its own checkout), so no absolute path in it.
"""

if TYPE_CHECKING:
    from ..artifacts.resume import ResumeState
    from ..run import Experiment
    from .controller import Controller
    from .runner import CaseRunner


class PluginState:
    """The experiments of this pytest run and the objects that run and record them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.experiment: Experiment | None = None
        """The ``--fluxloop-config`` experiment, if any."""
        self.marker_experiments: dict[tuple[Any, ...], Experiment] = {}
        self.resume: ResumeState | None = None
        self.collected = False
        """Whether the configured experiment's file node was collected."""
        self.frozen = False
        """Whether this session froze the collected objects out of the cycle collector."""
        self.conflicts_warned = False
        """Whether the other-FluxLoop-installation check has run (it warns once)."""
        self.selected: int | None = None
        """Experiment items selected to run (after -k / --lf / deselection), once known."""
        self.runner: CaseRunner | None = None
        self.controller: Controller | None = None
        """The writer of results; None in an xdist worker."""
        self.plan_error: str | None = None
        """In an xdist worker: why its experiment is not the controller's (a collection
        error of its file node)."""
        self.guard = ProcessGuard()
        self._seed: int | None = None

    @property
    def is_controller(self) -> bool:
        """True in the process that writes artifacts (not an xdist worker)."""
        return not is_worker(self.config)

    @property
    def seed(self) -> int:
        """The run seed for ``seed: null`` (drawn once; the same in every xdist worker)."""
        if self._seed is None:
            resumed = self.resume.seed if self.resume is not None else None
            self._seed = run_seed(self.config, fallback=resumed)
        return self._seed

    # ------------------------------------------------------------------ loading

    def load_configured(self) -> None:
        """Load the ``--fluxloop-config`` experiment; config problems are usage errors."""
        path = config_path(self.config)
        if path is None:
            return
        resume_dir = self.config.getoption("fluxloop_resume")
        if resume_dir:
            self._read_resume(Path(resume_dir))
        # A worker on another host loads its own copy of the project.
        path = locate_config(self.config, path)
        self.experiment = self._load(path, {})
        self.experiment.key = CONFIGURED_KEY
        if not self.is_controller:
            self.plan_error = plan_mismatch(
                self.config, self.experiment.name, (c.case_id for c in self.experiment.cases)
            )
        if self.resume is not None:
            from ..artifacts.resume import check_matches

            with usage_errors("--fluxloop-resume: "):
                check_matches(self.resume, {case.case_id for case in self.experiment.cases})
        if self.is_controller:
            self.guard.install_sigterm()

    def _read_resume(self, directory: Path) -> None:
        from ..artifacts.resume import read_resume_state

        if not directory.is_absolute():
            directory = self.config.invocation_params.dir / directory
        with usage_errors("--fluxloop-resume: "):
            self.resume = read_resume_state(directory)

    def experiment_for_marker(
        self, path_value: str, kwargs: dict[str, Any], test_dir: Path | None = None
    ) -> Experiment:
        """The experiment of a ``@pytest.mark.fluxloop(config=...)`` marker (cached).

        A relative path is taken from the rootdir; if no file is there, from the test
        file's folder (so a project's tests work wherever the rootdir is).
        """
        path = Path(path_value).expanduser()
        if not path.is_absolute():
            candidates = [self.config.rootpath / path]
            if test_dir is not None:
                candidates.append(test_dir / path)
            path = next((c for c in candidates if c.is_file()), candidates[0])
        path = path.resolve()
        key = (str(path), tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key not in self.marker_experiments:
            experiment = self._load(path, kwargs)
            # Its own folder, apart from a --fluxloop-config run of the same file; named by
            # its place in the project, the same on every host (see CONFIGURED_KEY).
            experiment.key = marker_key(path, self.config.rootpath, kwargs)
            self.marker_experiments[key] = experiment
        return self.marker_experiments[key]

    def _load(self, path: Path, marker_kwargs: dict[str, Any]) -> Experiment:
        from ..run import Experiment

        try:
            with usage_errors():
                overrides = overrides_from_options(self.config, **marker_kwargs)
                experiment = Experiment.load(
                    path,
                    overrides,
                    run_seed=self.seed,
                    supervisor_hook=self._supervisor_hook,
                    gates=self.config.getoption("fluxloop_gate") or (),
                    strict_judges=bool(self.config.getoption("fluxloop_strict_judges")),
                    evaluate=not self.config.getoption("fluxloop_no_evaluate"),
                )
                if not self.is_controller:
                    # Each xdist worker spends its share of the judge budget (limits).
                    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
                    experiment.budget_share = 1.0 / max(1, int(workers or 1))
        except (TypeError, ValueError) as exc:  # bad marker keyword arguments
            raise pytest.UsageError(f"pytest-fluxloop: {path}: {exc}") from None
        self.config.hook.pytest_fluxloop_modify_cases(config=self.config, cases=experiment.cases)
        for notice in experiment.notices:
            warnings.warn(FluxloopWarning(notice), stacklevel=1)
        if not hasattr(self.config, "workerinput"):  # said once, by the controller
            self._warn_conflicts()
        return experiment

    def _warn_conflicts(self) -> None:
        """Warn when the earlier FluxLoop SDK or CLI is installed beside us (same names)."""
        from ..distributions import conflict_report, conflicting_distributions

        if self.conflicts_warned:
            return
        self.conflicts_warned = True
        # Distributions only: a foreign `import fluxloop` is the engine's notice, said once
        # the agent's module has run its imports.
        report = conflict_report(None, conflicting_distributions(commands=False))
        if report is not None:
            warnings.warn(FluxloopWarning(report), stacklevel=1)

    def _supervisor_hook(self, settings: Any) -> Any:
        return self.config.hook.pytest_fluxloop_supervisor(config=self.config, settings=settings)

    def experiment_by_key(self, key: str) -> Experiment | None:
        """The experiment with this key (configured or marker), if any.

        A marker experiment the controller has not loaded is loaded from its key: under
        xdist the controller collects nothing, so the first it hears of a marker experiment
        is a worker's record, and without this the record would have nowhere to go.
        """
        if self.experiment is not None and self.experiment.key == key:
            return self.experiment  # every report of a --fluxloop-config run
        candidates = [self.experiment, *self.marker_experiments.values()]
        found = next((e for e in candidates if e is not None and e.key == key), None)
        if found is None and key.startswith(MARKER_PREFIX):
            found = self._marker_from_key(key)
        return found

    def _marker_from_key(self, key: str) -> Experiment | None:
        try:
            where, arguments = ast.literal_eval(key[len(MARKER_PREFIX) :])
            kwargs = {str(name): ast.literal_eval(text) for name, text in arguments}
        except (ValueError, SyntaxError, TypeError):
            return None  # arguments whose repr is not a literal: not rebuildable
        experiment = self.experiment_for_marker(str(where), kwargs)
        return experiment if experiment.key == key else None


MARKER_PREFIX = "marker:"


def marker_key(path: Path, rootpath: Path, kwargs: dict[str, Any]) -> str:
    """A marker experiment's key: its config relative to the rootdir (absolute if outside),
    and the marker's arguments."""
    try:
        where = path.relative_to(rootpath).as_posix()
    except ValueError:
        where = path.as_posix()
    arguments = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
    return f"{MARKER_PREFIX}{(where, arguments)!r}"
