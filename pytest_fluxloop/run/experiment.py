"""An experiment: validated config + planned cases + resolved target. No pytest here.

The pytest layer drives one ``Experiment`` per config; plain Python can too::

    from pytest_fluxloop import Experiment
    summary = Experiment.load("configs/simulation.yaml").run()
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.loader import LoadedConfig, Overrides, load_config
from ..config.models import SupervisorConfig
from ..engine.executor import CaseExecutor, CaseResult, RunSettings
from ..engine.target import Target, Workspace, resolve_target
from ..errors import ConfigError
from ..plan.cases import Case, ExperimentPlan, plan_experiment
from ..records import ExperimentSummary
from ..redact import Redactor, install_log_redaction
from .status import EXIT_USAGE_ERROR

if TYPE_CHECKING:
    from ..engine.drivers.conversation import MultiTurnConversation
    from .recorder import RunListener


def check_supported(cfg: LoadedConfig) -> list[str]:
    """Refuse settings whose feature is not built yet; return notices for partial ones.

    Nothing is ignored silently: a setting that would change results is an error, one that
    only changes speed or extra outputs is a notice the caller must show.
    """
    sim = cfg.simulation
    where = cfg.config_path
    if sim.replay_args.enabled:
        raise ConfigError(
            f"{where}: replay_args.enabled is true, but argument replay is not available in "
            "this version of pytest-fluxloop yet; set replay_args.enabled: false"
        )
    notices: list[str] = []
    multi_turn = sim.multi_turn
    if multi_turn.persona_override and not multi_turn.enabled:
        notices.append(
            f"multi_turn.persona_override ({multi_turn.persona_override!r}) applies only to "
            "multi-turn conversations, and multi_turn.enabled is false; cases keep their "
            "own personas"
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
    key: str = ""
    """Identifies this experiment's artifact folder within a session (set by the caller)."""
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
        # From here on, our log lines (in this process) never show the config's keys.
        install_log_redaction(cfg.secrets())
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

    @functools.cached_property
    def redactor(self) -> Redactor:
        """Scrubs this run's secrets from text we print (failure reports, stop reasons): the
        config's keys (``cfg.secrets()``), the environment's, and every credential shape."""
        return Redactor(extra_secrets=self.cfg.secrets())

    def settings(self) -> RunSettings:
        """Execution settings from the config."""
        sim = self.cfg.simulation
        return RunSettings(
            timeout_seconds=float(sim.runner.timeout_seconds),
            max_retries=sim.runner.max_retries,
            retry_on=tuple(sim.runner.retry_on),
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
            self._executor = CaseExecutor(
                self._target,
                self.settings(),
                driver=self._conversation(),
                # Put back around every case: an agent's os.chdir must not move the others.
                workdir=workspace.working_directory,
            )
        return self._executor

    def _conversation(self) -> MultiTurnConversation | None:
        """The multi-turn runner, with one supervisor for the whole experiment (or None)."""
        multi_turn = self.cfg.simulation.multi_turn
        if not multi_turn.enabled:
            return None
        from ..engine.drivers.conversation import MultiTurnConversation
        from ..supervisors import create_supervisor

        settings = multi_turn.supervisor
        supervisor = self.supervisor_hook(settings) if self.supervisor_hook else None
        if supervisor is None:
            supervisor = create_supervisor(settings)  # ConfigError: bad provider setup
        elif not callable(getattr(supervisor, "decide", None)):
            raise ConfigError(
                f"the pytest_fluxloop_supervisor hook returned {type(supervisor).__name__!r}, "
                "which has no decide(request) method; return a Supervisor or None"
            )
        return MultiTurnConversation(
            multi_turn,
            supervisor,
            self.cfg.service_context,
            override_description=self._persona_description(multi_turn.persona_override),
            timeout_seconds=float(self.cfg.simulation.runner.timeout_seconds),
        )

    def _persona_description(self, name: str | None) -> str | None:
        """The description of persona ``name`` from input.yaml or the cases, if any."""
        if not name:
            return None
        for persona in (self.cfg.input.personas if self.cfg.input else None) or []:
            if persona.name == name and persona.description:
                return persona.description
        return next((c.persona_description for c in self.cases if c.persona == name), None)

    def check(self) -> None:
        """Check everything that can go wrong before a case runs, changing nothing for good.

        The output location (:meth:`check_output`), the runner's workspace and target
        (imported and inspected as :meth:`prepare` would, with the cwd and ``sys.path``
        restored afterwards; the module stays imported, so a run in this process does not
        import it twice), and, with multi-turn on, the supervisor settings (API key, SDK,
        mock settings) unless a ``supervisor_hook`` provides the supervisor. Every problem
        found is reported at once.

        Raises:
            ConfigError: one problem as it is, several in one message (TargetError for a
                target problem alone).
        """
        problems: list[ConfigError] = []
        for step in (self.check_output, self._check_target, self._check_supervisor):
            try:
                step()
            except ConfigError as exc:
                problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise ConfigError(
                f"{len(problems)} problems:\n" + "\n".join(f"- {exc}" for exc in problems)
            )

    def _check_target(self) -> None:
        spec = self.cfg.simulation.runner.target_spec
        assert spec is not None  # the loader guarantees a target
        saved_path = list(sys.path)
        try:
            with self.workspace().active():
                resolve_target(spec)
        finally:
            sys.path[:] = saved_path

    def _check_supervisor(self) -> None:
        multi_turn = self.cfg.simulation.multi_turn
        if not multi_turn.enabled or self.supervisor_hook is not None:
            return
        from ..supervisors import create_supervisor

        with warnings.catch_warnings():
            # Setting warnings (e.g. an unsent temperature) are shown once, by the run.
            warnings.simplefilter("ignore")
            create_supervisor(multi_turn.supervisor)

    def check_output(self) -> None:
        """Check, creating nothing, that results can be written where the config says
        (a safe experiment name; no symlink or ``..`` leading the output directory out of
        where it was given); ConfigError."""
        from ..sinks.files import check_output

        check_output(self.cfg)

    @property
    def leaked_threads(self) -> int:
        """Agents still running after their timeout (0 before any case ran)."""
        return self._executor.leaked_threads if self._executor is not None else 0

    def run_case(self, case: Case) -> CaseResult:
        """Run one case (prepares on first use)."""
        return self.prepare().run(case)

    def run(
        self, output_root: Path | None = None, listener: RunListener | None = None
    ) -> ExperimentSummary:
        """Run every case in this process and write artifacts; returns the summary.

        Records go through the same :class:`~.recorder.RunRecorder` as under pytest: a
        fatal provider error (bad key, unknown model) stops the run once, and the summary
        says ``interrupted`` when cases were left unrun. ``listener`` is told about each
        record and the final summary.
        """
        from ..engine.scheduler import CaseScheduler
        from .recorder import RunRecorder

        executor = self.prepare()
        recorder = RunRecorder.for_experiment(self, output_root=output_root, listener=listener)
        recorder.open()
        scheduler = CaseScheduler(executor.run, self.cfg.simulation.parallel_runs)
        ahead = scheduler.parallel_runs - 1
        cut_off = True
        stopped = False
        try:
            cases = self.cases
            for index, case in enumerate(cases):
                # Up to parallel_runs in flight; records still written in case order.
                result = scheduler.result(case, ahead=cases[index + 1 : index + 1 + ahead])
                recorder.append(result.record)
                if result.fatal:  # stop once, as under pytest (run.status)
                    stopped = True
                    break
            cut_off = False
        finally:
            scheduler.cancel_pending()
            # A fatal stop is a configuration error: exit code 4 in the summary, as under
            # pytest, so both say the same status (run.status.final_status).
            code = EXIT_USAGE_ERROR if stopped else None
            summary = recorder.finish(code, cut_off=cut_off, stopped=stopped)
        assert summary is not None  # the files sink always aggregates
        return summary
