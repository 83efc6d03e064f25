"""The implementation of the earlier FluxLoop fixtures (see :mod:`.legacy_runner`).

Kept apart from the fixtures so that a pytest session that uses none of them does not
import it (the plugin's start-up stays small).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from ..config.overrides import OVERRIDES, OverrideSpec, split_names
from ..errors import FluxloopWarning
from .keys import STATE_KEY

if TYPE_CHECKING:
    from ..records import ExperimentSummary, TraceRecord
    from ..run import Experiment

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "FluxLoopTestResult",
    "FluxloopRunError",
    "FluxloopRunResult",
]

PathLike = str | os.PathLike[str]

DEFAULT_TIMEOUT_SECONDS = 600.0
"""The earlier fixtures' default ``timeout`` for one call."""

MODES = ("sdk", "cli")

MAX_LISTED_FAILURES = 10
"""Failed cases named in a ``require_success`` message; the rest are counted."""

# An override that the fixture cannot honour, and why (everything else in the table is
# applied through the same Overrides model as the CLI and pytest options).
_REFUSED = {
    "resume": "resuming an earlier experiment folder is not available from the fixture; "
    "run `fluxloop run experiment --resume DIR` instead",
}

# Older simulation.yaml spellings the loader still reads, as override keys.
_LEGACY_KEYS = {"runner.iterations": "iterations", "output.directory": "output_directory"}


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class FluxloopRunError:
    """One failed case of a run, as ``trace_summary.jsonl`` lists it."""

    case_id: str
    status: str
    """``error``, ``timeout``, ``crashed`` or ``supervisor_error``."""
    message: str
    kind: str | None
    """Who is to blame: ``agent``, ``timeout``, ``infrastructure`` or ``supervisor``."""
    input: str
    persona: str | None
    iteration: int | None

    @property
    def input_text(self) -> str:
        """The case's input (the earlier ``FluxLoopTestError`` name)."""
        return self.input

    @property
    def first_line(self) -> str:
        """The message's first line, for one-line listings."""
        lines = self.message.strip().splitlines()
        return lines[0] if lines else self.status


@dataclass(frozen=True)
class FluxloopRunResult:
    """What one ``fluxloop_runner(...)`` call ran, read back from its artifact folder.

    Field names follow the earlier ``FluxLoopTestResult``; ``summary`` is the run's
    ``summary.json``. Assert with :meth:`require_success`, :meth:`require_min_runs` and
    :meth:`require_max_duration`, or read ``trace_summary_path`` yourself.
    """

    total_runs: int
    """Cases that ran (one line each in ``trace_summary.jsonl``)."""
    successful_runs: int
    failed_runs: int
    success_rate: float
    """``successful_runs / total_runs`` (0.0 when nothing ran)."""
    avg_duration_ms: float
    status: str
    """``summary.json``'s final status: ``complete``, ``interrupted`` or ``failed``."""
    output_dir: Path
    """The experiment folder (``exp_<timestamp>...``)."""
    summary_path: Path
    trace_summary_path: Path
    errors: tuple[FluxloopRunError, ...] = ()
    """The failed cases, in run order."""
    summary: dict[str, Any] = field(default_factory=dict, repr=False)
    """``summary.json`` as written (the in-memory summary when it is not written)."""
    mode: str = "sdk"
    cli_command: str | None = None
    """``mode="cli"``: the command that ran."""
    stdout_path: Path | None = None
    """``mode="cli"``: the command's output, kept next to the experiment folder."""
    stderr_path: Path | None = None
    per_trace_path: Path | None = None
    """Always None: the earlier ``parse experiment`` step that wrote ``per_trace.jsonl``
    does not exist here; ``trace_summary.jsonl`` has each trace."""

    @property
    def experiment_dir(self) -> Path:
        """The experiment folder (same as ``output_dir``)."""
        return self.output_dir

    @property
    def succeeded(self) -> bool:
        """True when cases ran, all succeeded, and the run completed."""
        return self.total_runs > 0 and self.failed_runs == 0 and self.status == "complete"

    def require_success(
        self,
        label: str | None = None,
        min_success_rate: float = 1.0,
        *,
        threshold: float | None = None,
        message: str | None = None,
    ) -> None:
        """Fail (AssertionError) unless at least ``min_success_rate`` of the cases succeeded.

        The message starts with ``label`` (default "FluxLoop experiment") and lists the failed
        cases: case id, status and the first line of each error, then the results folder.
        ``threshold`` and ``message`` are the earlier names of ``min_success_rate`` and
        ``label``. A run that ran no case, or did not complete, fails too.
        """
        __tracebackhide__ = True  # the failure is the run's, not this method's
        rate = min_success_rate if threshold is None else threshold
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"min_success_rate must be between 0 and 1, got {rate!r}")
        head = label or message or "FluxLoop experiment"
        if self.total_runs == 0:
            raise AssertionError(f"{head}: no case ran (results: {self.output_dir})")
        problems = []
        # Compared in counts, so 1.0 means every case and no float rounding gets in the way.
        if self.successful_runs < rate * self.total_runs - 1e-9:
            problems.append(
                f"{self.failed_runs} of {self.total_runs} cases failed (success rate "
                f"{self.success_rate:.1%}, required {rate:.1%})"
            )
        if self.status != "complete":
            problems.append(f"the run did not complete (status: {self.status})")
        if not problems:
            return
        raise AssertionError(self._report(head, "; ".join(problems)))

    def require_min_runs(self, min_runs: int, *, label: str | None = None) -> None:
        """Fail (AssertionError) when fewer than ``min_runs`` cases ran."""
        __tracebackhide__ = True
        if self.total_runs < min_runs:
            head = label or "FluxLoop experiment"
            raise AssertionError(
                f"{head}: {self.total_runs} case(s) ran, fewer than the required {min_runs} "
                f"(results: {self.output_dir})"
            )

    def require_max_duration(self, max_ms: float, *, label: str | None = None) -> None:
        """Fail (AssertionError) when the average case took longer than ``max_ms``."""
        __tracebackhide__ = True
        if self.avg_duration_ms > max_ms:
            head = label or "FluxLoop experiment"
            raise AssertionError(
                f"{head}: average case duration {self.avg_duration_ms:.1f} ms is over the "
                f"limit of {max_ms:g} ms (results: {self.output_dir})"
            )

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (paths as text)."""
        data: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Path):
                value = str(value)
            elif name == "errors":
                value = [{**error.__dict__} for error in value]
            data[name] = value
        return data

    def _report(self, head: str, problem: str) -> str:
        lines = [f"{head}: {problem}"]
        for error in self.errors[:MAX_LISTED_FAILURES]:
            lines.append(f"  - {error.case_id} [{error.status}]: {error.first_line[:300]}")
        more = len(self.errors) - MAX_LISTED_FAILURES
        if more > 0:
            lines.append(f"  ... and {more} more (see {self.trace_summary_path})")
        lines.append(f"results: {self.output_dir}")
        return "\n".join(lines)


FluxLoopTestResult = FluxloopRunResult
"""The earlier name of :class:`FluxloopRunResult`."""


class _Runner:
    """The function a fixture returns, bound to the test that requested it."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        tmp_path: Path,
        name: str,
        *,
        multi_turn: bool = False,
        mode: str = "sdk",
    ) -> None:
        self.config = request.config
        self.tmp_path = tmp_path
        self.name = name
        self.multi_turn = multi_turn
        self.mode = mode
        self.calls = 0

    def __call__(
        self,
        *,
        project_root: PathLike,
        simulation_config: PathLike | None = None,
        overrides: Mapping[str, Any] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        env: Mapping[str, Any] | None = None,
        mode: str | None = None,
        max_turns: int | None = None,
        auto_approve_tools: bool | None = None,
    ) -> FluxloopRunResult:
        __tracebackhide__ = True
        started = time.monotonic()
        self.calls += 1
        if not self.multi_turn and (max_turns is not None or auto_approve_tools is not None):
            self._fail(
                "max_turns and auto_approve_tools are arguments of fluxloop_runner_multi_turn; "
                'here use overrides={"max_turns": ...}'
            )
        run_mode = (mode or self.mode).lower()
        if run_mode not in MODES:
            self._fail(f"mode={mode!r} is not one of {', '.join(map(repr, MODES))}")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            self._fail(f"timeout={timeout!r} must be a positive number of seconds, or None")
        root = Path(project_root).expanduser().resolve()
        if not root.is_dir():
            self._fail(f"project_root {str(root)!r} is not a directory")
        config_path = self._config_path(root, simulation_config)
        fields = self._fields(root, overrides or {}, max_turns, auto_approve_tools)
        run = _Run(
            fixture=self,
            call=self.calls,
            root=root,
            config_path=config_path,
            fields=fields,
            env={str(key): str(value) for key, value in (env or {}).items()},
            timeout=None if timeout is None else float(timeout),
            deadline=None if timeout is None else started + float(timeout),
            # A fresh folder per call keeps several calls of one test apart.
            output_root=None
            if "output_directory" in fields
            else self.tmp_path / "fluxloop" / f"run{self.calls}",
        )
        return run.in_subprocess() if run_mode == "cli" else run.in_process()

    # ---------------------------------------------------------------- arguments

    def _fail(self, message: str) -> NoReturn:
        pytest.fail(f"pytest-fluxloop: {self.name}: {message}", pytrace=False)

    def _config_path(self, root: Path, given: PathLike | None) -> Path:
        if given is not None:
            path = Path(given).expanduser()
            path = path if path.is_absolute() else root / path
            if path.is_dir():
                path = path / "simulation.yaml"
            if not path.is_file():
                self._fail(f"simulation_config {os.fspath(given)!r}: no such file ({path})")
            return path
        # The earlier fixture's order: the configs/ folder, then the older single file.
        for candidate in (root / "configs" / "simulation.yaml", root / "setting.yaml"):
            if candidate.is_file():
                return candidate
        self._fail(
            f"no configs/simulation.yaml under {root}; pass simulation_config=PATH, or "
            "create a project with `fluxloop init project NAME`"
        )

    def _fields(
        self,
        root: Path,
        overrides: Mapping[str, Any],
        max_turns: int | None,
        auto_approve_tools: bool | None,
    ) -> dict[str, Any]:
        """``Overrides`` field values from the ``overrides`` mapping (and the multi-turn
        arguments), checked against the override table; the test fails naming bad keys."""
        if not isinstance(overrides, Mapping):
            self._fail(f"overrides must be a mapping, got {type(overrides).__name__}")
        specs = _specs_by_key()
        fields: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        problems: list[str] = []
        for key, value in _flatten(overrides):
            spec = specs.get(key)
            if spec is None:
                problems.append(f"{key!r} is not a setting the fixture can override")
                continue
            if spec.name in _REFUSED:
                problems.append(f"{key!r}: {_REFUSED[spec.name]}")
                continue
            if value is None:
                problems.append(
                    f"{key!r}: None cannot be applied (an override sets a value; leave the "
                    "key out to keep the config's)"
                )
                continue
            if spec.kind == "list" and isinstance(value, str):
                value = split_names(value)
            elif spec.kind == "path" and isinstance(value, (str, os.PathLike)):
                # Relative to the project, like the paths inside its config files.
                value = str(root / Path(value).expanduser())
            if spec.name in fields and fields[spec.name] != value:
                problems.append(
                    f"{key!r} and {given_as[spec.name]!r} set the same setting to different values"
                )
                continue
            fields[spec.name] = value
            given_as[spec.name] = key
        extra = {"max_turns": max_turns, "auto_approve_tools": auto_approve_tools}
        if self.multi_turn:
            extra["multi_turn"] = True
        for name, value in extra.items():
            if value is None:
                continue
            if name in fields and fields[name] != value:
                what = f"the {name} argument" if name != "multi_turn" else self.name
                problems.append(f"overrides {given_as[name]!r} contradicts {what}")
                continue
            fields[name] = value
            given_as.setdefault(name, name)
        if problems:
            known = ", ".join(sorted(k for k, s in specs.items() if s.name not in _REFUSED))
            self._fail(
                "overrides cannot be applied:\n"
                + "\n".join(f"  - {problem}" for problem in problems)
                + f"\naccepted keys: {known}"
            )
        self._check_values(fields, given_as)
        return fields

    def _check_values(self, fields: dict[str, Any], given_as: dict[str, str]) -> None:
        """Type-check the values with the Overrides model the CLI and options use."""
        from pydantic import ValidationError

        from ..config import Overrides

        problems = []
        try:
            Overrides(**fields)
        except ValidationError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else "?"
                problems.append(f"  - {given_as.get(name, name)!r}: {error['msg']}")
        if problems:  # failed outside the except block: no chained traceback in the report
            self._fail("invalid overrides:\n" + "\n".join(problems))


def _specs_by_key() -> dict[str, OverrideSpec]:
    """Every key an ``overrides`` mapping may use -> its row of the override table."""
    specs: dict[str, OverrideSpec] = {}
    for spec in OVERRIDES:
        specs[spec.name] = spec
        if spec.yaml is not None:
            specs[".".join(spec.yaml)] = spec
    for key, name in _LEGACY_KEYS.items():
        specs.setdefault(key, next(spec for spec in OVERRIDES if spec.name == name))
    return specs


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``{"multi_turn": {"max_turns": 3}}`` -> ``("multi_turn.max_turns", 3)``."""
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{dotted}.")
        else:
            yield dotted, value


# --------------------------------------------------------------------------- one run


class _OutOfTime(Exception):
    """Raised by the listener to stop ``Experiment.run`` once the call's timeout passed."""


class _Listener:
    """Told about each record by the run: notes where results go; stops an overdue run."""

    def __init__(self, deadline: float | None, planned: int) -> None:
        self.deadline = deadline
        self.planned = planned
        self.records = 0
        self.last_failure: TraceRecord | None = None
        self.location: Path | None = None
        self.summary: ExperimentSummary | None = None

    def record_written(self, record: TraceRecord, location: Path | None) -> None:
        self.records += 1
        self.location = location
        if not record.success:
            self.last_failure = record
        # No case starts after the deadline; the run's summary then says 'interrupted'.
        overdue = self.deadline is not None and time.monotonic() > self.deadline
        if overdue and self.records < self.planned:
            raise _OutOfTime

    def experiment_finished(self, summary: ExperimentSummary, location: Path | None) -> None:
        self.summary = summary
        self.location = location


@dataclass
class _Run:
    """One call of a fixture's function."""

    fixture: _Runner
    call: int
    root: Path
    config_path: Path
    fields: dict[str, Any]
    env: dict[str, str]
    timeout: float | None
    deadline: float | None
    output_root: Path | None

    def _fail(self, message: str) -> NoReturn:
        self.fixture._fail(message)

    def _timed_out(self, what: str, folder: Path | None) -> NoReturn:
        __tracebackhide__ = True
        where = f"; results so far: {folder}" if folder is not None else ""
        raise AssertionError(
            f"{self.fixture.name}: the FluxLoop experiment exceeded its timeout of "
            f"{self.timeout:g}s ({what}){where}"
        )

    # ---------------------------------------------------------------- in this process

    def in_process(self) -> FluxloopRunResult:
        __tracebackhide__ = True  # failures name the run's problem; our frames are noise
        from ..errors import FluxloopError

        state = _ProcessState.capture()
        listener: _Listener | None = None
        summary: ExperimentSummary | None = None
        experiment: Experiment | None = None
        problem: str | None = None
        try:
            self._apply_env()
            experiment = self._load()
            listener = _Listener(self.deadline, len(experiment.cases))
            summary = experiment.run(output_root=self.output_root, listener=listener)
        except _OutOfTime:
            summary = None
        except FluxloopError as exc:
            problem = str(exc)  # failed below, outside this block: no chained traceback
        finally:
            state.restore(self.root)
        if problem is not None:
            self._fail(problem)
        assert listener is not None and experiment is not None
        folder = listener.location
        if summary is None or self._overdue():
            self._timed_out(f"{listener.records} of {listener.planned} cases finished", folder)
        if summary.exit_code == 4 and listener.last_failure is not None:
            # A bad key, no quota or an unknown model: every case would fail the same way.
            error = listener.last_failure.error
            reason = f"{error.type}: {error.message}" if error else listener.last_failure.status
            self._fail(
                "the run stopped on a configuration error every case would hit: "
                f"{experiment.redactor.redact_text(reason)} (results: {folder})"
            )
        if folder is None:
            self._fail("the run wrote no results")
        return _read_result(folder, summary.model_dump(mode="json"), mode="sdk")

    def _overdue(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def _apply_env(self) -> None:
        os.environ.update(self.env)
        pythonpath = self.env.get("PYTHONPATH")
        if pythonpath:
            for entry in reversed(pythonpath.split(os.pathsep)):
                if entry and entry not in sys.path:
                    sys.path.insert(0, entry)

    def _load(self) -> Experiment:
        """Load, plan and check the experiment, as the CLI does before it runs anything."""
        from ..config import Overrides
        from ..run import Experiment

        config = self.fixture.config
        experiment = Experiment.load(
            self.config_path,
            Overrides(**self.fields),
            run_seed=config.stash[STATE_KEY].seed,
            supervisor_hook=lambda settings: config.hook.pytest_fluxloop_supervisor(
                config=config, settings=settings
            ),
        )
        config.hook.pytest_fluxloop_modify_cases(config=config, cases=experiment.cases)
        for notice in experiment.notices:
            # stacklevel 4: the user's call of the fixture function, where the setting applies.
            warnings.warn(FluxloopWarning(notice), stacklevel=4)
        experiment.check()
        return experiment

    # ---------------------------------------------------------------- in a subprocess

    def in_subprocess(self) -> FluxloopRunResult:
        __tracebackhide__ = True
        from ..config import Overrides

        output_root = self.output_root or Path(self.fields["output_directory"])
        output_root.mkdir(parents=True, exist_ok=True)
        before = set(output_root.glob("exp_*"))
        args, secret_env = _cli_arguments(Overrides(**self.fields))
        command = [
            sys.executable,
            "-m",
            "pytest_fluxloop.cli",
            "run",
            "experiment",
            "--yes",
            "--config",
            str(self.config_path),
            *args,
            *(["--output-dir", str(self.output_root)] if self.output_root else []),
            # The inner pytest must not leave a .pytest_cache in the user's project.
            "--",
            "-p",
            "no:cacheprovider",
        ]
        env = {
            key: value
            for key, value in os.environ.items()
            # They describe this pytest process, not the one the command starts.
            if key != "PYTEST_CURRENT_TEST" and not key.startswith("PYTEST_XDIST")
        }
        env.update(self.env)
        env.update(secret_env)
        logs = self.fixture.tmp_path / "fluxloop"
        logs.mkdir(parents=True, exist_ok=True)
        stdout_path = logs / f"run{self.call}.stdout.log"
        stderr_path = logs / f"run{self.call}.stderr.log"
        remaining = None if self.deadline is None else max(self.deadline - time.monotonic(), 0.1)
        try:
            proc = subprocess.run(
                command,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=remaining,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it by now
            _write_log(stdout_path, exc.stdout)
            _write_log(stderr_path, exc.stderr)
            proc = None
        if proc is None:  # reported outside the except block: no chained traceback
            self._timed_out("the command was stopped", _new_folder(output_root, before))
        _write_log(stdout_path, proc.stdout)
        _write_log(stderr_path, proc.stderr)
        folder = _new_folder(output_root, before)
        # pytest's exit codes: 0 every case passed, 1 some failed; anything else is no result.
        if proc.returncode not in (0, 1) or folder is None:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-15:]
            self._fail(
                f"`fluxloop run experiment` exited with code {proc.returncode}:\n"
                + "\n".join(tail)
                + f"\n(full output: {stdout_path}, {stderr_path})"
            )
        return _read_result(
            folder,
            None,
            mode="cli",
            cli_command=shlex.join(command),
            stdout_path=stdout_path,
            stderr_path=stderr_path,
        )


def _cli_arguments(overrides: Any) -> tuple[list[str], dict[str, str]]:
    """``fluxloop run experiment`` options for the given overrides, and the environment
    variables of those that must not be on a command line (the supervisor's API key)."""
    args: list[str] = []
    env: dict[str, str] = {}
    for spec in OVERRIDES:
        value = overrides.get(spec.name)
        if value is None or spec.name == "output_directory":
            continue  # the output directory is passed apart, as --output-dir
        if not spec.forwarded and spec.env:
            env[spec.env] = str(value)
        elif spec.kind == "bool":
            on, off = spec.cli[0].split("/")
            args.append(on if value else off)
        elif spec.kind == "list":
            args += [spec.cli_flag, ",".join(value)]
        else:
            args += [spec.cli_flag, str(value)]
    if overrides.get("output_directory") is not None:
        args += ["--output-dir", str(overrides.get("output_directory"))]
    return args, env


def _new_folder(root: Path, before: set[Path]) -> Path | None:
    created = sorted(set(root.glob("exp_*")) - before)
    return created[-1] if created else None


def _write_log(path: Path, text: str | bytes | None) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    path.write_text(text or "", encoding="utf-8")


def _read_result(
    folder: Path,
    summary: dict[str, Any] | None,
    *,
    mode: str,
    cli_command: str | None = None,
    stdout_path: Path | None = None,
    stderr_path: Path | None = None,
) -> FluxloopRunResult:
    """The result of the run in ``folder``, from its (redacted) artifact files.

    ``summary`` is the in-memory summary of an in-process run, used when ``summary.json``
    is not written (``save_aggregated_metrics: false``).
    """
    from ..artifacts.writer import SUMMARY_FILE, TRACE_SUMMARY_FILE

    summary_path = folder / SUMMARY_FILE
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    summary = summary or {}
    trace_summary_path = folder / TRACE_SUMMARY_FILE
    lines = [
        json.loads(line)
        for line in trace_summary_path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    total = len(lines)
    successful = sum(1 for line in lines if line.get("success"))
    durations = [float(line.get("duration_ms") or 0.0) for line in lines]
    errors = tuple(
        FluxloopRunError(
            case_id=str(line.get("case_id")),
            status=str(line.get("status")),
            message=str(line.get("error") or line.get("status")),
            kind=line.get("error_kind"),
            input=str(line.get("input") or ""),
            persona=line.get("persona"),
            iteration=line.get("iteration"),
        )
        for line in lines
        if not line.get("success")
    )
    avg = summary.get("avg_duration_ms")
    return FluxloopRunResult(
        total_runs=total,
        successful_runs=successful,
        failed_runs=total - successful,
        success_rate=successful / total if total else 0.0,
        avg_duration_ms=float(avg if avg is not None else sum(durations) / max(total, 1)),
        # Without summary.json the run itself said nothing: it finished, since we're here.
        status=str(summary.get("status") or "complete"),
        output_dir=folder,
        summary_path=summary_path,
        trace_summary_path=trace_summary_path,
        errors=errors,
        summary=summary,
        mode=mode,
        cli_command=cli_command,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
    )


@dataclass
class _ProcessState:
    """What an in-process run changes for good, captured before it and put back after: the
    working directory, ``sys.path``, the environment (the project's ``.env`` included) and
    the project's own modules the run imported."""

    cwd: str
    path: list[str]
    environ: dict[str, str]
    added_paths: int
    dotenv_keys: frozenset[str]
    modules: frozenset[str]

    @classmethod
    def capture(cls) -> _ProcessState:
        return cls(
            cwd=os.getcwd(),
            path=list(sys.path),
            environ=dict(os.environ),
            added_paths=len(_added_paths()),
            dotenv_keys=frozenset(_dotenv_set()),
            modules=frozenset(sys.modules),
        )

    def restore(self, project_root: Path) -> None:
        with contextlib.suppress(OSError):  # the directory is gone: nowhere better to go
            os.chdir(self.cwd)
        roots = [project_root, *(Path(p) for p in sys.path if p and p not in self.path)]
        self._forget_modules(roots)
        sys.path[:] = self.path
        # The plugin's end-of-session cleanup reads these lists: they must not name what
        # is already undone here.
        del _added_paths()[self.added_paths :]
        for key in list(os.environ):
            if key not in self.environ:
                del os.environ[key]
        for key, value in self.environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        dotenv = _dotenv_set()
        for key in [k for k in dotenv if k not in self.dotenv_keys]:
            del dotenv[key]

    def _forget_modules(self, roots: list[Path]) -> None:
        """Drop the modules the run imported from the project (or from import paths the run
        added): projects made from the earlier template all name their agent
        ``examples.simple_agent``, and a second project's run must not get the first one's
        module from ``sys.modules``. Installed packages and ours stay loaded."""
        folders = [root.resolve() for root in roots]
        for name in [n for n in sys.modules if n not in self.modules]:
            if name.split(".")[0] in ("pytest_fluxloop", "fluxloop"):
                continue
            module = sys.modules.get(name)
            file = getattr(module, "__file__", None)
            places = [file] if file else list(getattr(module, "__path__", None) or [])
            if places and all(_in_project(Path(place), folders) for place in places):
                del sys.modules[name]


def _in_project(path: Path, folders: list[Path]) -> bool:
    try:
        resolved = path.resolve()
    except OSError:
        return False
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return False  # a virtual environment inside the project: installed, not the project
    return any(resolved.is_relative_to(folder) for folder in folders)


def _added_paths() -> list[str]:
    # Only a module that was loaded can have added anything; never import it just to look.
    target = sys.modules.get("pytest_fluxloop.engine.target")
    paths: list[str] = getattr(target, "ADDED_PATHS", [])
    return paths


def _dotenv_set() -> dict[str, str]:
    loader = sys.modules.get("pytest_fluxloop.config.loader")
    values: dict[str, str] = getattr(loader, "DOTENV_SET", {})
    return values
