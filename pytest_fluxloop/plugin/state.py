"""What the plugin keeps for one pytest run (in ``config.stash``): the loaded experiments.

The configured experiment (``--fluxloop-config``) and the experiments of
``@pytest.mark.fluxloop`` markers are loaded here, once each, with config problems turned into
usage errors. Running cases is :mod:`.runner`'s job; writing results is :mod:`.controller`'s.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import FluxloopWarning
from .options import config_path, overrides_from_options
from .signals import ProcessGuard
from .usage import usage_errors
from .xdist import is_worker, run_seed

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
        self.conflicts_warned = False
        """Whether the other-FluxLoop-installation check has run (it warns once)."""
        self.selected: int | None = None
        """Experiment items selected to run (after -k / --lf / deselection), once known."""
        self.runner: CaseRunner | None = None
        self.controller: Controller | None = None
        """The writer of results; None in an xdist worker."""
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
        self.experiment = self._load(path, {})
        self.experiment.key = f"config:{path}"
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
            # Its own folder, apart from a --fluxloop-config run of the same file.
            experiment.key = f"marker:{key!r}"
            self.marker_experiments[key] = experiment
        return self.marker_experiments[key]

    def _load(self, path: Path, marker_kwargs: dict[str, Any]) -> Experiment:
        from ..run import Experiment

        try:
            with usage_errors():
                overrides = overrides_from_options(self.config, **marker_kwargs)
                experiment = Experiment.load(
                    path, overrides, run_seed=self.seed, supervisor_hook=self._supervisor_hook
                )
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
        from ..distributions import conflict_advice, conflicting_distributions

        if self.conflicts_warned:
            return
        self.conflicts_warned = True
        found = conflicting_distributions(commands=False)
        if found:
            listed = "; ".join(found)
            message = f"another FluxLoop installation conflicts with pytest-fluxloop: {listed}"
            warnings.warn(FluxloopWarning(f"{message}\n{conflict_advice()}"), stacklevel=1)

    def _supervisor_hook(self, settings: Any) -> Any:
        return self.config.hook.pytest_fluxloop_supervisor(config=self.config, settings=settings)

    def experiment_by_key(self, key: str) -> Experiment | None:
        """The loaded experiment with this key (configured or marker), if any."""
        candidates = [self.experiment, *self.marker_experiments.values()]
        return next((e for e in candidates if e is not None and e.key == key), None)
