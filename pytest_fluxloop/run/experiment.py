"""An experiment: validated config + planned cases + resolved target. No pytest here.

The pytest layer drives one ``Experiment`` per config; plain Python can too::

    from pytest_fluxloop import Experiment
    summary = Experiment.load("configs/simulation.yaml").run()
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.loader import LoadedConfig, Overrides, load_config
from ..config.models import CaptureConfig, SupervisorConfig
from ..engine.drivers import SingleTurnDriver
from ..engine.environment import apply_environment, restore_environment
from ..engine.executor import CaseExecutor, CaseResult, RunSettings
from ..engine.replay import ReplayDriver, ReplayPlan
from ..engine.target import Target, TargetOptions, Workspace, resolve_target
from ..errors import ConfigError, FluxloopWarning
from ..integrations import install as install_capture
from ..plan.cases import Case, ExperimentPlan, plan_experiment
from ..plan.recordings import read_recordings
from ..records import ExperimentSummary
from ..redact import Redactor, install_log_redaction
from ..sdk.context import CaptureSettings
from .cassettes import keys_for
from .status import EXIT_USAGE_ERROR

if TYPE_CHECKING:
    from ..engine.drivers import Driver
    from ..engine.drivers.conversation import MultiTurnConversation
    from ..evaluation.case import CaseEvaluator
    from ..evaluation.run_stats import RunEvaluation
    from ..evaluation.spec import EvaluationSpec
    from .cassettes import ExperimentCassettes
    from .recorder import RunListener


def capture_settings(capture: CaptureConfig) -> CaptureSettings:
    """The engine's per-trace capture settings from ``capture:`` in simulation.yaml."""
    return CaptureSettings(
        llm=capture.llm,
        content=capture.content,
        langchain=capture.langchain,
        langchain_hidden=capture.langchain_hidden,
        max_observations=capture.max_observations,
    )


def experiment_cassettes(cfg: LoadedConfig) -> ExperimentCassettes | None:
    """The run's LLM-call cassettes (``cassettes:``), or None when they are off."""
    from .cassettes import ExperimentCassettes

    settings = cfg.simulation.cassettes
    expected: dict[str, set[str]] = {}
    supervisor = cfg.simulation.multi_turn.supervisor
    if cfg.simulation.multi_turn.enabled and supervisor.provider != "mock":
        expected["supervisor"] = {supervisor.model}
    return ExperimentCassettes.create(
        settings.mode,
        cfg.resolve(settings.dir),
        cfg.experiment_name,
        cfg.redactor(),
        expected,
    )


def check_supported(cfg: LoadedConfig) -> list[str]:
    """Refuse settings whose feature is not built yet or cannot be used (a collector URL
    or token: :func:`~pytest_fluxloop.sinks.http.collector_target_for`); return notices
    for partial ones.

    Nothing is ignored silently: a setting that would change results is an error, one that
    only changes speed or extra outputs is a notice the caller must show.
    """
    sim = cfg.simulation
    # replay_args: read and checked by load_replay (every case depends on it).
    notices: list[str] = []
    multi_turn = sim.multi_turn
    if multi_turn.persona_override and not multi_turn.enabled:
        notices.append(
            f"multi_turn.persona_override ({multi_turn.persona_override!r}) applies only to "
            "multi-turn conversations, and multi_turn.enabled is false; cases keep their "
            "own personas"
        )
    # The collector's URL and token are checked now, before any case runs (a bad one is a
    # ConfigError naming the setting); the HTTP sink builds the same target at the run.
    from ..sinks.http import collector_target_for

    collector_target_for(cfg)
    return notices


def load_replay(cfg: LoadedConfig) -> tuple[ReplayPlan | None, list[str]]:
    """With ``replay_args.enabled``: the recorded calls for the runner's target, read once
    (before any case runs; each xdist worker reads the file itself, as it plans the cases)
    with ``override_param_path`` checked in every one; plus the reader's notices (a
    skipped last line, calls for other targets, ``__main__`` recordings). (None, []) when
    replay is off.

    Raises:
        ConfigError: naming the config, the recording file and the line (see
            :func:`~pytest_fluxloop.plan.recordings.read_recordings`,
            :meth:`~pytest_fluxloop.engine.replay.ReplayPlan.build`).
    """
    settings = cfg.simulation.replay_args
    if not settings.enabled:
        return None, []
    runner = cfg.simulation.runner
    spec = runner.target_spec
    assert spec is not None  # the loader guarantees a target
    path = cfg.resolve(settings.recording_file)
    try:
        recordings = read_recordings(path).calls_for(spec)
        plan = ReplayPlan.build(recordings, settings.override_param_path, runner.args or {})
    except ConfigError as exc:
        message = str(exc)
        where = f"{cfg.config_path}: "
        if not message.startswith("replay_args"):  # the path's own errors name the setting
            where += "replay_args"
            if not path.exists():
                where += (
                    f" (recording_file {settings.recording_file!r}, relative to the project "
                    f"root {cfg.project_root})"
                )
            where += ": "
        raise ConfigError(f"{where}{message}") from None
    return plan, recordings.warnings


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
    replay: ReplayPlan | None = None
    """The recorded calls the cases replay (``replay_args.enabled``), or None."""
    evaluation: EvaluationSpec | None = None
    """evaluation.yaml compiled (plus command-line gates); None before :meth:`load`."""
    strict_judges: bool = False
    """``--fluxloop-strict-judges``: an unscored judge result fails the run."""
    budget_share: float = 1.0
    """The share of the judge budget this process may spend (1 / xdist workers)."""
    cassettes: ExperimentCassettes | None = None
    """The LLM-call cassettes of this run (None: ``cassettes.mode`` off)."""
    _target: Target | None = None
    _evaluator: CaseEvaluator | None = None
    _executor: CaseExecutor | None = None
    _env_keys: list[str] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        path: Path | str,
        overrides: Overrides | None = None,
        run_seed: int | None = None,
        supervisor_hook: Callable[[SupervisorConfig], Any] | None = None,
        *,
        gates: Sequence[str] = (),
        strict_judges: bool = False,
        evaluate: bool = True,
    ) -> Experiment:
        """Load and validate config and inputs, plan the cases and compile the evaluation
        (with ``gates``, e.g. ``"pass^3>=0.8"``; ``evaluate=False`` leaves evaluation.yaml's
        evaluators out of this run); ConfigError on problems."""
        from ..evaluation.judge import JudgeSettings
        from ..evaluation.spec import compile_evaluation

        cfg = load_config(path, overrides)
        # From here on, our log lines (in this process) never show the config's keys.
        install_log_redaction(cfg.secrets())
        notices = check_supported(cfg)
        replay, replay_notices = load_replay(cfg)
        plan = plan_experiment(cfg, run_seed)
        if replay is not None and plan.total < len(replay.calls):
            replay_notices.append(
                f"replay_args: the {plan.total} case(s) replay {plan.total} of the "
                f"{len(replay.calls)} calls recorded in {replay.source}; add inputs or "
                "iterations to replay them all"
            )
        cassettes = experiment_cassettes(cfg)
        with keys_for(cassettes):
            evaluation = compile_evaluation(cfg, gates=gates, cases=plan.cases, evaluate=evaluate)
        if cassettes is not None:
            judges = {e.model for e in evaluation.evaluators if isinstance(e, JudgeSettings)}
            if judges:
                cassettes.expected_models["judge"] = judges
            cassettes.check(plan.cases)  # every unusable cassette, before any case runs
        return cls(
            cfg=cfg,
            plan=plan,
            notices=[*notices, *replay_notices, *cfg.notices, *evaluation.notices],
            supervisor_hook=supervisor_hook,
            replay=replay,
            evaluation=evaluation,
            strict_judges=strict_judges,
            cassettes=cassettes,
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
        return self.cfg.redactor()

    def settings(self) -> RunSettings:
        """Execution settings from the config."""
        sim = self.cfg.simulation
        runner = sim.runner
        backoff: dict[str, float] = {}
        if runner.retry_delay is not None:
            # The configured delay is the first retry's; a long one raises the cap with it.
            base = float(runner.retry_delay)
            backoff = {"backoff_base": base, "backoff_max": max(RunSettings.backoff_max, base)}
        return RunSettings(
            timeout_seconds=float(runner.timeout_seconds),
            max_retries=runner.max_retries,
            retry_on=tuple(runner.retry_on),
            run_delay_seconds=sim.run_delay_seconds,
            auto_approve_tools=sim.multi_turn.auto_approve_tools,
            service_context=self.cfg.service_context,
            stream_output_path=runner.stream_output_path,
            capture=capture_settings(sim.capture),
            **backoff,
        )

    def workspace(self) -> Workspace:
        """The runner's working directory and import paths."""
        return Workspace.from_runner(self.cfg.simulation.runner, self.cfg.project_root)

    def prepare(self, chdir: bool = True) -> CaseExecutor:
        """Set ``runner.environment_vars``, activate the workspace (sys.path, and cwd unless
        ``chdir`` is false) and resolve the target; the target's notices join
        :attr:`notices` (and are warned as :class:`FluxloopWarning`). Idempotent."""
        self._apply_environment()
        if self._executor is None:
            workspace = self.workspace()
            workspace.activate(chdir=chdir)
            self._target = self._resolve_target(warn=True)
            if self.replay is not None:
                self.replay.check_target(self._target)
            cassettes = self.cassettes
            if cassettes is not None:
                cassettes.activate()
            # Replaying cassettes, the supervisor needs no API key.
            with keys_for(cassettes):
                driver = self._driver(self._target)
            self._executor = CaseExecutor(
                self._target,
                self.settings(),
                driver=driver,
                # Put back around every case: an agent's os.chdir must not move the others.
                workdir=workspace.working_directory,
            )
        return self._executor

    def _resolve_target(self, warn: bool) -> Target:
        """Resolve the runner's target; its notices join :attr:`notices` (and, with ``warn``,
        are warned: the run has shown the load-time notices by then, and only a warning
        reaches pytest's output and the console of a plain-Python run)."""
        runner = self.cfg.simulation.runner
        spec = runner.target_spec
        assert spec is not None  # the loader guarantees a target
        options = TargetOptions.from_runner(runner)
        if self.replay is not None:
            options = replace(options, replay=True)
        target = resolve_target(spec, options)
        notices = list(target.notices)
        if self.cfg.simulation.capture.llm:
            # Hooked now, once the agent's module has imported its provider SDK, so what
            # the hooks find (another instrumentation) is said before the first case.
            notices += install_capture()
        for notice in notices:
            if notice not in self.notices:
                self.notices.append(notice)
                if warn:
                    warnings.warn(FluxloopWarning(notice), stacklevel=2)
        return target

    def _apply_environment(self) -> list[str]:
        """Set ``runner.environment_vars`` (before any import of the target); returns the
        names newly set, which :meth:`run` puts back when it ends."""
        added = apply_environment(self.cfg.simulation.runner.environment_vars or {})
        self._env_keys.extend(k for k in added if k not in self._env_keys)
        return added

    def _driver(self, target: Target) -> Driver | None:
        """The driver of every case: the conversation (multi-turn) or None (single turn),
        wrapped in the replay driver with ``replay_args``."""
        conversation = self._conversation()
        if self.replay is None:
            return conversation
        return ReplayDriver(
            self.replay,
            conversation or SingleTurnDriver(),
            cases=self.cases,
            signature=target.signature,
            timeout_seconds=float(self.cfg.simulation.runner.timeout_seconds),
        )

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
            override_profile=self._persona_profile(multi_turn.persona_override),
        )

    def _persona_profile(self, name: str | None) -> dict[str, Any] | None:
        """The configured profile of persona ``name`` (input.yaml), if any."""
        if not name:
            return None
        for persona in (self.cfg.input.personas if self.cfg.input else None) or []:
            if persona.name == name:
                return persona.model_dump()
        return None

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
        (imported and inspected as :meth:`prepare` would, with ``runner.environment_vars``
        set; the cwd, ``sys.path`` and environment are restored afterwards; the module stays
        imported, so a run in this process does not import it twice; the target's notices,
        such as ``runner.args`` the agent does not take, join :attr:`notices` for the caller
        to show; with ``replay_args``, the agent must take every recorded call), and, with
        multi-turn on, the supervisor settings (API key, SDK,
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
        saved_path = list(sys.path)
        # Set as for the run (the module reads them at import), then put back.
        added = apply_environment(self.cfg.simulation.runner.environment_vars or {})
        try:
            with self.workspace().active():
                # Not warned: check()'s caller shows notices (the CLI prints them).
                target = self._resolve_target(warn=False)
                if self.replay is not None:
                    self.replay.check_target(target)
        finally:
            sys.path[:] = saved_path
            restore_environment(added)

    def _check_supervisor(self) -> None:
        multi_turn = self.cfg.simulation.multi_turn
        if not multi_turn.enabled or self.supervisor_hook is not None:
            return
        from ..supervisors import create_supervisor

        # Replaying cassettes, the supervisor needs no key (as in the run itself).
        with warnings.catch_warnings(), keys_for(self.cassettes):
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

    def evaluator(self) -> CaseEvaluator:
        """The evaluator of this experiment's traces (one per process, made on first use)."""
        if self._evaluator is None:
            from ..evaluation.case import CaseEvaluator
            from ..evaluation.spec import EvaluationSpec

            spec = self.evaluation if self.evaluation is not None else EvaluationSpec()
            self._evaluator = CaseEvaluator(spec, budget_share=self.budget_share)
        return self._evaluator

    def run_evaluation(self) -> RunEvaluation:
        """A fresh accumulator of this run's evaluation figures (for its recorder)."""
        from ..evaluation.run_stats import RunEvaluation
        from ..evaluation.spec import EvaluationSpec

        spec = self.evaluation if self.evaluation is not None else EvaluationSpec()
        return RunEvaluation(spec, strict_judges=self.strict_judges)

    def case_function(self, run: Callable[[Case], CaseResult]) -> Callable[[Case], CaseResult]:
        """``run`` followed by the evaluation of its trace (in the same thread, so cases run
        ahead with ``parallel_runs`` are judged concurrently too)."""
        evaluator = self.evaluator()
        case_run = run
        if evaluator.spec.evaluates_traces:

            def run_and_evaluate(case: Case) -> CaseResult:
                result = run(case)
                evaluator.apply(result.record)
                return result

            case_run = run_and_evaluate
        # The tape covers the judges too: their calls are replayed like the agent's.
        return self.cassettes.wrap(case_run) if self.cassettes is not None else case_run

    def run_case(self, case: Case) -> CaseResult:
        """Run one case and evaluate its trace (prepares on first use)."""
        return self.case_function(self.prepare().run)(case)

    def run(
        self, output_root: Path | None = None, listener: RunListener | None = None
    ) -> ExperimentSummary:
        """Run every case in this process and write artifacts; returns the summary.

        Records go through the same :class:`~.recorder.RunRecorder` as under pytest: a
        fatal provider error (bad key, unknown model) stops the run once, and the summary
        says ``interrupted`` when cases were left unrun. ``listener`` is told about each
        record and the final summary.
        """
        try:
            return self._run(self.prepare(), output_root, listener)
        finally:
            # runner.environment_vars are for the run: the process goes on as it was.
            self._restore_environment()

    def _restore_environment(self) -> None:
        """Put back the variables this experiment's ``runner.environment_vars`` set."""
        restore_environment(self._env_keys)
        self._env_keys.clear()

    def _run(
        self, executor: CaseExecutor, output_root: Path | None, listener: RunListener | None
    ) -> ExperimentSummary:
        from ..engine.scheduler import CaseScheduler
        from .recorder import RunRecorder

        recorder = RunRecorder.for_experiment(self, output_root=output_root, listener=listener)
        recorder.open()
        scheduler = CaseScheduler(
            self.case_function(executor.run), self.cfg.simulation.parallel_runs
        )
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
