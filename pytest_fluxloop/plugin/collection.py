"""Collector and items: one pytest item per case of a ``--fluxloop-config`` experiment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import FluxloopError
from . import report_hooks
from .keys import EXPERIMENT_KEY, RESULT_KEY, STATE_KEY
from .nodeids import item_name

if TYPE_CHECKING:
    from ..engine.executor import CaseResult
    from ..plan import Case
    from ..records import TraceRecord
    from ..redact import Redactor
    from ..run import Experiment


class CaseFailed(FluxloopError):
    """Raised by an item whose case did not succeed; rendered without a plugin traceback."""

    def __init__(self, record: TraceRecord) -> None:
        super().__init__(record.error.message if record.error else record.status)
        self.record = record


class EvaluationFailed(FluxloopError):
    """Raised by an item whose trace failed its evaluation; rendered like an assertion diff."""

    def __init__(self, record: TraceRecord) -> None:
        evaluation = record.evaluation
        super().__init__(evaluation.reason if evaluation is not None else "evaluation failed")
        self.record = record


def describe_evaluation_failure(record: TraceRecord, redactor: Redactor | None = None) -> str:
    """The failing evaluation of ``record`` as readable, redacted text (see
    :func:`~pytest_fluxloop.evaluation.verdict.describe_evaluation`)."""
    from ..evaluation.verdict import describe_evaluation
    from ..redact import redact

    assert record.evaluation is not None
    text = describe_evaluation(record, record.evaluation)
    return redactor.redact_text(text) if redactor is not None else str(redact(text))


def evaluation_properties(record: TraceRecord) -> list[tuple[str, object]]:
    """JUnit ``<property>`` pairs of a trace's evaluation: the verdict, the score and each
    evaluator's status and score (``item.user_properties``; they survive xdist)."""
    evaluation = record.evaluation
    if evaluation is None:
        return []
    properties: list[tuple[str, object]] = [("fluxloop.verdict", evaluation.verdict)]
    if evaluation.score is not None:
        properties.append(("fluxloop.score", round(evaluation.score, 4)))
    for result in evaluation.evaluators:
        value = result.status if result.score is None else f"{result.status} {result.score:.4f}"
        if result.unscored_reason:
            value += f" ({result.unscored_reason})"
        properties.append((f"fluxloop.eval.{result.name}", value))
    return properties


def describe_failure(record: TraceRecord, redactor: Redactor | None = None) -> str:
    """Readable failure text: what failed, for which input/persona, and the agent's traceback.

    It reaches the console and the JUnit XML, so it is redacted: by ``redactor`` (the
    experiment's, which knows the config's keys), else by the environment's keys and shapes.
    """
    from ..redact import redact

    text = _failure_text(record)
    return redactor.redact_text(text) if redactor is not None else str(redact(text))


def experiment_redactor(item: pytest.Item, experiment_key: str | None = None) -> Redactor | None:
    """The redactor of the item's experiment (by key; else the configured one), if loaded."""
    state = item.config.stash[STATE_KEY]
    experiment: Experiment | None = (
        state.experiment_by_key(experiment_key) if experiment_key else state.experiment
    )
    return experiment.redactor if experiment is not None else None


def _failure_text(record: TraceRecord) -> str:
    error = record.error
    head = {
        "timeout": "timed out",
        "error": "agent raised",
        "crashed": "crashed",
        "supervisor_error": "supervisor failed",
    }.get(record.status, record.status)
    if record.status == "error" and error is not None and error.kind == "infrastructure":
        head = "could not be run (infrastructure error)"  # not the agent's fault
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

    def collect(self) -> Iterator[FluxloopItem]:
        """Items in the experiment's (seeded) case order."""
        state = self.config.stash[STATE_KEY]
        experiment = state.experiment
        assert experiment is not None
        if state.plan_error is not None:
            raise self.CollectError(state.plan_error)
        mark = pytest.mark.fluxloop  # looked up once, not once per item
        for case in experiment.cases:
            name = item_name(experiment.name, case.case_id)
            # An explicit nodeid string lets pytest >= 9.2 parse "[case_id]" as the params
            # part of its structured ids (as for parametrized functions), so --lf matches.
            yield FluxloopItem.from_parent(
                self, name=name, nodeid=f"{self.nodeid}::{name}", case=case, mark=mark
            )


class FluxloopItem(pytest.Item):
    """Runs one case of the experiment; fails when the agent errors or times out."""

    def __init__(
        self, *, case: Case, mark: pytest.MarkDecorator | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.add_marker(mark or "fluxloop")
        if case.persona:
            self.extra_keyword_matches.add(case.persona)

    def runtest(self) -> None:
        """Run the case in the engine and fail the item if it did not succeed."""
        state = self.config.stash[STATE_KEY]
        assert state.experiment is not None and state.runner is not None
        result = state.runner.result(self)
        keep_result(self, result, state.experiment.key)
        record = result.record
        self.user_properties.extend(evaluation_properties(record))
        if not record.success:
            raise CaseFailed(record)
        if record.evaluation is not None and record.evaluation.verdict == "failed":
            raise EvaluationFailed(record)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        """The agent's error as short readable text, not a plugin traceback."""
        if isinstance(excinfo.value, CaseFailed):
            return describe_failure(excinfo.value.record, experiment_redactor(self))
        if isinstance(excinfo.value, EvaluationFailed):
            return describe_evaluation_failure(excinfo.value.record, experiment_redactor(self))
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """Location shown in reports: the config file and the case id."""
        return self.path, None, f"{report_hooks.ITEM_DOMAIN}{self.case.case_id}"


def keep_result(item: pytest.Item, result: CaseResult, experiment_key: str) -> None:
    """Stash a finished case on its item (the report will carry the record) and, if the
    failure is one every case would hit, stop the session once."""
    report_hooks.activate(item.config)  # before the report that will carry the record
    item.stash[RESULT_KEY] = result
    item.stash[EXPERIMENT_KEY] = experiment_key
    if not result.fatal:
        return  # the common case: no import, no redactor to look up
    # Imported here, only when needed: an import statement run for every case costs
    # ~10 us in a busy process, more than the rest of this function.
    from ..run.status import fatal_reason

    reason = fatal_reason(result, experiment_redactor(item, experiment_key))
    if reason is not None:
        item.session.shouldfail = reason
