"""The LLM-call cassettes of one experiment run: the mode, the folder, a tape per case.

``cassettes.mode`` (or ``--fluxloop-cassettes`` / ``--cassettes``) chooses the mode; unset,
it is ``replay`` when the ``CI`` variable is set and the experiment already has cassettes,
else ``off``. Every cassette a run will read is checked before the first case (corrupt,
truncated, another format version, another supervisor or judge model: one error naming
each file and what to do). Each case runs with its tape current; at its end the tape's
recordings are written (the case's own file only, so xdist workers and ``parallel_runs``
never write the same file) and its figures go on the record. A call no recording matched,
or a recording the secret scan refused, makes the case an infrastructure error: the harness
could not reproduce it, the agent is not to blame.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..artifacts.paths import folder_inside, validate_experiment_name
from ..cassettes.errors import CassetteError
from ..cassettes.files import read_cassette, write_cassette
from ..cassettes.model import Cassette
from ..cassettes.session import CaseTape, Mode, current_tape
from ..engine.executor import CaseResult
from ..errors import OutputPathError
from ..integrations import install_on_import
from ..llm.connect import keys_not_needed
from ..plan import Case
from ..records import ErrorInfo, TraceRecord
from ..redact import Redactor

__all__ = ["ExperimentCassettes", "ci_is_set", "keys_for", "resolve_mode"]

_SDKS = ("openai", "anthropic")


def ci_is_set(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``CI`` variable says this is a CI run (set, and not 0/false/no/off)."""
    value = (environ if environ is not None else os.environ).get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def resolve_mode(
    configured: str | None, folder: Path, environ: Mapping[str, str] | None = None
) -> tuple[Mode, str]:
    """The run's mode and why: the configured one, else ``replay`` in CI when ``folder``
    holds cassettes, else ``off``."""
    if configured is not None:
        return configured, "set"  # type: ignore[return-value]  # validated by the config
    if ci_is_set(environ) and folder.is_dir() and any(folder.glob("*.json")):
        return "replay", "CI is set and the experiment has cassettes"
    return "off", "default"


def _versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("pytest-fluxloop", *_SDKS):
        try:
            found[name.replace("-", "_")] = version(name)
        except PackageNotFoundError:
            continue
    return found


def keys_for(cassettes: ExperimentCassettes | None) -> Any:
    """The context clients are made in: no API key needed while cassettes replay."""
    return cassettes.keys() if cassettes is not None else nullcontext()


@dataclass
class ExperimentCassettes:
    """The cassettes of one experiment (never made for mode ``off``)."""

    mode: Mode
    folder: Path
    experiment: str
    redactor: Redactor
    reason: str = "set"
    expected_models: dict[str, set[str]] = field(default_factory=dict)
    """Role -> the models this run's config asks for (supervisor, judges): a cassette
    recorded with another is refused before the run."""
    _loaded: dict[str, Cassette] = field(default_factory=dict)
    _recorded_with: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        configured: str | None,
        base: Path,
        experiment: str,
        redactor: Redactor,
        expected_models: Mapping[str, set[str]] | None = None,
    ) -> ExperimentCassettes | None:
        """The experiment's cassettes under ``base`` (``cassettes.dir`` resolved), or None
        when the mode is ``off``."""
        if configured == "off" or (configured is None and not ci_is_set()):
            return None
        try:
            validate_experiment_name(experiment)
        except OutputPathError:
            # The results folder's own check refuses this name, naming the option that set
            # it; that message is the one to show.
            return None
        folder = folder_inside(base, experiment, "cassettes.dir", inside="the cassettes folder")
        mode, reason = resolve_mode(configured, folder)
        if mode == "off":
            return None
        return cls(
            mode=mode,
            folder=folder,
            experiment=experiment,
            redactor=redactor,
            reason=reason,
            expected_models=dict(expected_models or {}),
        )

    def path_for(self, case_id: str) -> Path:
        """The cassette file of ``case_id`` (inside the experiment's folder)."""
        return folder_inside(self.folder, f"{case_id}.json", "case id")

    # ------------------------------------------------------------------ before the run

    def check(self, cases: Sequence[Case]) -> None:
        """Read the cassette of every case that has one; one error listing every file that
        cannot be used (``rewrite`` reads none: it replaces them)."""
        if self.mode == "rewrite":
            return
        problems: list[str] = []
        for case in cases:
            path = self.path_for(case.case_id)
            if not path.is_file():
                continue
            try:
                cassette = read_cassette(path)
            except CassetteError as exc:
                problems.append(str(exc))
                continue
            problem = self._model_problem(path, cassette)
            if problem:
                problems.append(problem)
                continue
            self._loaded[case.case_id] = cassette
        if problems:
            head = f"{len(problems)} cassette(s) cannot be used:\n" if len(problems) > 1 else ""
            raise CassetteError(head + "\n".join(f"- {p}" if head else p for p in problems))

    def _model_problem(self, path: Path, cassette: Cassette) -> str | None:
        for role, models in cassette.models().items():
            expected = self.expected_models.get(role)
            if not expected:
                continue
            other = sorted(set(models) - expected)
            if other:
                return (
                    f"cassette {path}: recorded with {role} model {', '.join(other)}, this run "
                    f"uses {', '.join(sorted(expected))}; re-record it with "
                    "--fluxloop-cassettes rewrite (fluxloop run experiment --cassettes rewrite)"
                )
        return None

    def activate(self) -> None:
        """Hook the provider SDKs imported, and each other one the moment it is imported,
        so every role's calls reach the tape (the agent may import one inside a function,
        or not before a judge or the supervisor uses it)."""
        self._recorded_with = _versions()
        install_on_import()

    # ------------------------------------------------------------------ each case

    def keys(self) -> Any:
        """While replaying, clients need no API key (a missing one gets a placeholder)."""
        if self.mode == "replay":
            return keys_not_needed("cassettes replay every call")
        return nullcontext()

    def tape(self, case: Case) -> CaseTape:
        """A fresh tape for ``case``, with its cassette as read before the run."""
        return CaseTape(
            self.mode,
            self.path_for(case.case_id),
            case_id=case.case_id,
            iteration=case.iteration,
            experiment=self.experiment,
            loaded=self._loaded.get(case.case_id),
        )

    @contextmanager
    def current(self, tape: CaseTape) -> Iterator[CaseTape]:
        """Make ``tape`` the current one for the block (the case and its evaluation)."""
        token = current_tape.set(tape)
        try:
            with self.keys():
                yield tape
        finally:
            current_tape.reset(token)

    def finish(self, tape: CaseTape, record: TraceRecord) -> None:
        """Write what the case recorded and put the tape's figures (and any miss) on its
        record."""
        written = False
        cassette = tape.result(self._recorded_with)
        if cassette is not None:
            try:
                write_cassette(tape.path, cassette, self.redactor)
                written = True
            except CassetteError as exc:
                tape.fail(str(exc))
        record.cassette = tape.use(written)
        problems = [*tape.misses, *tape.failures]
        if problems and record.status != "crashed":
            record.status = "error"
            record.success = False
            record.error = ErrorInfo(
                kind="infrastructure",
                type="CassetteMiss" if tape.misses else "CassetteError",
                message=self.redactor.redact_text("\n\n".join(problems)),
            )

    def wrap(self, run: Callable[[Case], CaseResult]) -> Callable[[Case], CaseResult]:
        """``run`` with each case's tape current, and its cassette written after it."""

        def run_with_tape(case: Case) -> CaseResult:
            tape = self.tape(case)
            with self.current(tape):
                result = run(case)
            self.finish(tape, result.record)
            return result

        return run_with_tape
