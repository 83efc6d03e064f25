"""``@pytest.mark.fluxloop(config=...)``: parametrize a user's test over the cases.

The test receives ``fluxloop_case`` (the Case) and/or ``fluxloop_result`` (the finished
trace). A failing assertion fails that case's item only; the trace is still recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..config.overrides import MARKER_FIELDS
from .collection import describe_failure, keep_result
from .keys import STATE_KEY

if TYPE_CHECKING:
    from ..plan.cases import Case
    from ..records import CaseEvaluation, ErrorInfo, Observation, TraceRecord
    from ..run.experiment import Experiment

MARKER = "fluxloop"
MARKER_HELP = (
    "fluxloop(config=PATH, allow_errors=False, **overrides): run this test once per case of "
    "the FluxLoop experiment in PATH; request the fluxloop_result / fluxloop_case fixtures. "
    f"overrides: {', '.join(MARKER_FIELDS)}."
)
_MARKER_OVERRIDES = frozenset(MARKER_FIELDS)  # from the override table (config/overrides.py)
_FIXTURES = ("fluxloop_case", "fluxloop_result")


@dataclass
class FluxloopResult:
    """The finished trace of one case, as the test sees it.

    ``output`` is the agent's return value as returned (not JSON-converted).
    """

    output: Any
    success: bool
    error: ErrorInfo | None
    duration_ms: float
    input: str
    persona: str | None
    iteration: int
    trace_id: str
    status: str
    attempts: int
    observations: list[Observation]
    record: TraceRecord
    experiment: Experiment | None = field(default=None, repr=False)

    def evaluate(self) -> CaseEvaluation:
        """Run the experiment's evaluation.yaml evaluators on this trace (once) and return
        the verdict (``passed``, ``failed``, ``unscored`` or ``skipped``) with each
        evaluator's result. The evaluation is written with the trace; judge tokens count
        under the role ``judge``."""
        from ..records import CaseEvaluation

        record = self.record
        if record.evaluation is None and self.experiment is not None:
            self.experiment.evaluator().apply(record)
        if record.evaluation is None:
            return CaseEvaluation(
                verdict="skipped", reason="the experiment's evaluation.yaml has no evaluators"
            )
        return record.evaluation


def assert_eval(result: FluxloopResult, *, allow_unscored: bool = True) -> CaseEvaluation:
    """Fail the test, with each failing evaluator's score and reason, unless ``result``'s
    trace passes its evaluation (see :meth:`FluxloopResult.evaluate`).

    An ``unscored`` verdict (a judge could not give one) passes unless ``allow_unscored`` is
    false. Returns the evaluation.
    """
    from .collection import describe_evaluation_failure

    evaluation = result.evaluate()
    bad = evaluation.verdict == "failed" or (
        evaluation.verdict == "unscored" and not allow_unscored
    )
    if bad:
        redactor = result.experiment.redactor if result.experiment is not None else None
        __tracebackhide__ = True
        pytest.fail(describe_evaluation_failure(result.record, redactor), pytrace=False)
    return evaluation


def marker_experiment(
    config: pytest.Config, marker: pytest.Mark, test_path: Path | None = None
) -> Experiment:
    """Load (once) the experiment named by a fluxloop marker; usage errors name the problem."""
    kwargs = dict(marker.kwargs)
    path = kwargs.pop("config", None) or (marker.args[0] if marker.args else None)
    if not path:
        raise pytest.UsageError(
            "pytest-fluxloop: @pytest.mark.fluxloop needs config='path/to/simulation.yaml'"
        )
    kwargs.pop("allow_errors", None)
    unknown = sorted(set(kwargs) - _MARKER_OVERRIDES)
    if unknown:
        raise pytest.UsageError(
            f"pytest-fluxloop: unknown @pytest.mark.fluxloop argument(s) {', '.join(unknown)}; "
            f"valid: config, allow_errors, {', '.join(sorted(_MARKER_OVERRIDES))}"
        )
    test_dir = test_path.parent if test_path is not None else None
    return config.stash[STATE_KEY].experiment_for_marker(str(path), kwargs, test_dir)


def generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize marked tests over the experiment's cases (ids are the case ids)."""
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    if not any(name in metafunc.fixturenames for name in _FIXTURES):
        raise pytest.UsageError(
            f"pytest-fluxloop: {metafunc.definition.nodeid} is marked fluxloop but requests "
            "neither fluxloop_result nor fluxloop_case"
        )
    experiment = marker_experiment(metafunc.config, marker, metafunc.definition.path)
    cases = experiment.cases
    metafunc.parametrize("fluxloop_case", cases, ids=[case.case_id for case in cases])


@pytest.fixture
def fluxloop_case(request: pytest.FixtureRequest) -> Case:
    """The case this test runs (only in tests marked ``@pytest.mark.fluxloop``)."""
    raise pytest.UsageError(
        f"pytest-fluxloop: {request.node.nodeid} uses fluxloop_case without "
        "@pytest.mark.fluxloop(config=...)"
    )


@pytest.fixture
def fluxloop_result(request: pytest.FixtureRequest, fluxloop_case: Case) -> FluxloopResult:
    """Run the agent for this test's case and return the finished trace.

    If the agent raised or timed out, the test fails with the agent's error, unless the
    marker says ``allow_errors=True`` (then inspect ``success``/``error`` yourself).
    """
    marker = request.node.get_closest_marker(MARKER)
    assert marker is not None
    experiment = marker_experiment(request.config, marker, request.node.path)
    executor = experiment.prepare(chdir=False)
    with experiment.workspace().active():
        result = executor.run(fluxloop_case)
    keep_result(request.node, result, experiment.key)
    record = result.record
    if not record.success and not marker.kwargs.get("allow_errors", False):
        pytest.fail(describe_failure(record, experiment.redactor), pytrace=False)
    return FluxloopResult(
        output=result.output,
        success=record.success,
        error=record.error,
        duration_ms=record.duration_ms,
        input=record.input,
        persona=record.persona,
        iteration=record.iteration,
        trace_id=record.trace_id,
        status=record.status,
        attempts=record.attempts,
        observations=list(record.observations),
        record=record,
        experiment=experiment,
    )
