"""An experiment: validated config + planned cases + resolved target. No pytest here.

The pytest layer drives one ``Experiment`` per config; plain Python can too::

    from pytest_fluxloop import Experiment
    summary = Experiment.load("configs/simulation.yaml").run()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cases import Case, ExperimentPlan, plan_experiment
from ..config.loader import LoadedConfig, Overrides, load_config
from ..config.models import SupervisorConfig
from ..errors import ConfigError
from ..records import ExperimentSummary
from .executor import CaseExecutor, CaseResult, RunSettings
from .target import Target, Workspace, resolve_target


def check_supported(cfg: LoadedConfig) -> list[str]:
    """Refuse settings whose feature is not built yet; return notices for partial ones.

    Nothing is ignored silently: a setting that would change results is an error, one that
    only changes speed or extra outputs is a notice the caller must show.
    """
    sim = cfg.simulation
    where = cfg.config_path
    if sim.multi_turn.enabled:
        raise ConfigError(
            f"{where}: multi_turn.enabled is true, but multi-turn conversations are not "
            "available in this version of pytest-fluxloop yet; set multi_turn.enabled: false "
            "(or drop --multi-turn) to run single-turn"
        )
    if sim.replay_args.enabled:
        raise ConfigError(
            f"{where}: replay_args.enabled is true, but argument replay is not available in "
            "this version of pytest-fluxloop yet; set replay_args.enabled: false"
        )
    if cfg.overrides.resume:
        raise ConfigError(
            f"{cfg.overrides.option('resume')}: resuming an experiment is not available in this "
            "version of pytest-fluxloop yet"
        )
    notices: list[str] = []
    if sim.parallel_runs > 1:
        notices.append(
            f"parallel_runs: {sim.parallel_runs}: cases run one at a time within a process in "
            "this version; for parallel cases use pytest-xdist (pytest -n N)"
        )
    if cfg.project and cfg.project.collector_url:
        notices.append(
            f"{cfg.sources['project']}: collector_url is set, but the HTTP collector sink is not "
            "available in this version; traces are written to files only"
        )
    if cfg.evaluation and cfg.evaluation.evaluators:
        notices.append(
            f"{cfg.sources['evaluation']}: {len(cfg.evaluation.evaluators)} evaluator(s) were "
            "validated but are not run in this version; traces are not scored"
        )
    return notices


@dataclass
class Experiment:
    """Everything needed to run the cases of one config."""

    cfg: LoadedConfig
    plan: ExperimentPlan
    notices: list[str] = field(default_factory=list)
    supervisor_hook: Callable[[SupervisorConfig], Any] | None = None
    """Returns a custom supervisor for the settings, or None (the pytest hook, via the plugin)."""
    _target: Target | None = None
    _executor: CaseExecutor | None = None

    @classmethod
    def load(
        cls,
        path: Path | str,
        overrides: Overrides | None = None,
        run_seed: int | None = None,
        supervisor_hook: Callable[[SupervisorConfig], Any] | None = None,
    ) -> Experiment:
        """Load and validate config and inputs and plan the cases (ConfigError on problems)."""
        cfg = load_config(path, overrides)
        notices = check_supported(cfg)
        plan = plan_experiment(cfg, run_seed)
        return cls(
            cfg=cfg,
            plan=plan,
            notices=[*notices, *cfg.notices],
            supervisor_hook=supervisor_hook,
        )

    @property
    def name(self) -> str:
        """The experiment name."""
        return self.cfg.experiment_name

    @property
    def cases(self) -> list[Case]:
        """Cases in run order."""
        return self.plan.cases

    def settings(self) -> RunSettings:
        """Execution settings from the config."""
        sim = self.cfg.simulation
        return RunSettings(
            timeout_seconds=float(sim.runner.timeout_seconds),
            max_retries=sim.runner.max_retries,
            run_delay_seconds=sim.run_delay_seconds,
            auto_approve_tools=sim.multi_turn.auto_approve_tools,
            service_context=self.cfg.service_context,
        )

    def workspace(self) -> Workspace:
        """The runner's working directory and import paths."""
        return Workspace.from_runner(self.cfg.simulation.runner, self.cfg.project_root)

    def prepare(self, chdir: bool = True) -> CaseExecutor:
        """Activate the workspace (sys.path, and cwd unless ``chdir`` is false) and resolve
        the target. Idempotent."""
        if self._executor is None:
            workspace = self.workspace()
            workspace.activate(chdir=chdir)
            spec = self.cfg.simulation.runner.target_spec
            assert spec is not None  # the loader guarantees a target
            self._target = resolve_target(spec)
            self._executor = CaseExecutor(self._target, self.settings())
        return self._executor

    def run_case(self, case: Case) -> CaseResult:
        """Run one case (prepares on first use)."""
        return self.prepare().run(case)

    def run(self, output_root: Path | None = None) -> ExperimentSummary:
        """Run every case in this process and write artifacts; returns the summary."""
        from ..artifacts.writer import ExperimentWriter
        from .output import open_writer

        writer: ExperimentWriter = open_writer(self, output_root)
        status = "interrupted"
        try:
            for case in self.cases:
                writer.append(self.run_case(case).record)
            status = "complete"
        finally:
            summary = writer.finish(status)  # type: ignore[arg-type]
        return summary
