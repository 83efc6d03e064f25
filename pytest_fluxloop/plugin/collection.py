"""Collector and items: one pytest item per case of a ``--fluxloop-config`` experiment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..plan.cases import Case
    from ..records import TraceRecord
    from .state import FluxloopSession

RESULT_KEY = pytest.StashKey["CaseResult"]()
EXPERIMENT_KEY = pytest.StashKey[str]()


class CaseFailed(Exception):
    """Raised by an item whose case did not succeed; rendered without a plugin traceback."""

    def __init__(self, record: TraceRecord) -> None:
        super().__init__(record.error.message if record.error else record.status)
        self.record = record


def describe_failure(record: TraceRecord) -> str:
    """Readable failure text: what failed, for which input/persona, and the agent's traceback."""
    error = record.error
    head = {
        "timeout": "timed out",
        "error": "agent raised",
        "crashed": "crashed",
        "supervisor_error": "supervisor failed",
    }.get(record.status, record.status)
    lines = [
        f"FluxLoop case {record.case_id} {head}: "
        f"{error.type + ': ' if error and record.status == 'error' else ''}"
        f"{error.message if error else ''}"
    ]
    lines.append(f"  input: {record.input!r}")
    lines.append(
        f"  persona: {record.persona or '-'}, iteration: {record.iteration}, "
        f"attempts: {record.attempts}, duration: {record.duration_ms:.0f} ms"
    )
    if error and error.traceback:
        lines.append("")
        lines.append(error.traceback.rstrip())
    return "\n".join(lines)


class FluxloopFile(pytest.File):
    """The experiment config file as a collector; yields one item per case."""

    session_state: FluxloopSession

    def collect(self) -> Iterator[FluxloopItem]:
        """Items in the experiment's (seeded) case order."""
        from .state import SESSION_KEY

        state = self.config.stash[SESSION_KEY]
        experiment = state.experiment
        assert experiment is not None
        for case in experiment.cases:
            name = f"{experiment.name}[{case.case_id}]"
            # An explicit nodeid string lets pytest >= 9.2 parse "[case_id]" as the params
            # part of its structured ids (as for parametrized functions), so --lf matches.
            yield FluxloopItem.from_parent(
                self, name=name, nodeid=f"{self.nodeid}::{name}", case=case
            )


class FluxloopItem(pytest.Item):
    """Runs one case of the experiment; fails when the agent errors or times out."""

    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.add_marker("fluxloop")
        if case.persona:
            self.extra_keyword_matches.add(case.persona)

    def runtest(self) -> None:
        """Run the case in the engine and fail the item if it did not succeed."""
        from .state import SESSION_KEY

        state = self.config.stash[SESSION_KEY]
        assert state.experiment is not None and state.scheduler is not None
        result = state.scheduler.result(self.case, ahead=state.upcoming(self))
        self.stash[RESULT_KEY] = result
        self.stash[EXPERIMENT_KEY] = state.experiment.key
        if result.fatal:
            # A configuration problem every case would hit (bad API key, unknown model):
            # report it once and stop, rather than fail every remaining case the same way.
            error = result.record.error
            reason = f"{error.type}: {error.message}" if error else result.record.status
            self.session.shouldfail = f"pytest-fluxloop: stopping the run: {reason}"
        if not result.record.success:
            raise CaseFailed(result.record)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        """The agent's error as short readable text, not a plugin traceback."""
        if isinstance(excinfo.value, CaseFailed):
            return describe_failure(excinfo.value.record)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """Location shown in reports: the config file and the case id."""
        return self.path, None, f"fluxloop case {self.case.case_id}"
