"""The engine's driver seam and the plugin's node ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.engine_helpers import make_case, target_of

from pytest_fluxloop.engine import CaseExecutor, RunSettings
from pytest_fluxloop.engine.binding import BindingPlan
from pytest_fluxloop.engine.drivers import DriverOutcome, Resolve, SingleTurnDriver
from pytest_fluxloop.plan import Case
from pytest_fluxloop.plugin.nodeids import case_id_of, count_cases, item_name
from pytest_fluxloop.records import ErrorInfo, MultiTurnInfo


class TwiceDriver:
    """A driver of its own (as a replay driver would be): calls the agent twice."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def run(
        self,
        agent: Callable[..., Any],
        case: Case,
        binding: BindingPlan,
        values: dict[str, Any],
        resolve: Resolve,
    ) -> DriverOutcome:
        self.seen.append((case.case_id, values))
        first = resolve(agent(case.input))
        second = resolve(agent(first))
        return DriverOutcome(
            output=second,
            multi_turn=MultiTurnInfo(enabled=True, turn_count=2, termination_reason="twice"),
            conversation_state={"turns": [first, second]},
            token_usage={"agent": {"total_tokens": 7}},
            persona="played",
        )


def echo(input_text: str) -> str:
    return input_text + "!"


def test_a_custom_driver_plugs_into_the_executor() -> None:
    driver = TwiceDriver()
    executor = CaseExecutor(target_of(echo), RunSettings(max_retries=0), driver=driver)
    case = make_case("hi", persona="novice")
    result = executor.run(case)
    record = result.record
    assert record.success and record.output == "hi!!"
    assert result.output == "hi!!"
    assert record.multi_turn is not None and record.multi_turn.termination_reason == "twice"
    assert record.conversation_state == {"turns": ["hi!", "hi!!"]}
    # A driver's own counts join the trace's by-role sums (a count it did not give is null).
    assert record.token_usage == {
        "agent": {
            "input_tokens": None,
            "output_tokens": None,
            "cached_tokens": None,
            "reasoning_tokens": None,
            "total_tokens": 7,
            "calls": 1,
            "calls_without_usage": 0,
        }
    }
    assert record.persona == "played"  # the persona the driver actually played
    assert driver.seen[0][0] == case.case_id and driver.seen[0][1]["seed"] == case.seed


def test_single_turn_is_the_default_driver() -> None:
    executor = CaseExecutor(target_of(echo), RunSettings())
    assert isinstance(executor.driver, SingleTurnDriver)
    assert executor.run(make_case("a")).record.output == "a!"


class FailingDriver:
    def __init__(self, outcome: DriverOutcome) -> None:
        self.outcome = outcome

    def run(self, *args: Any) -> DriverOutcome:
        return self.outcome


def test_agent_and_simulator_errors_from_a_driver_are_kept_apart() -> None:
    agent_failed = FailingDriver(DriverOutcome(agent_error=ValueError("agent broke")))
    executor = CaseExecutor(target_of(echo), RunSettings(max_retries=0), driver=agent_failed)
    record = executor.run(make_case()).record
    assert record.status == "error" and record.error is not None
    assert (record.error.kind, record.error.type) == ("agent", "ValueError")

    info = ErrorInfo(kind="supervisor", type="SupervisorError.auth", message="401")
    sim_failed = FailingDriver(DriverOutcome(output="partial", supervisor_error=info, fatal=True))
    executor = CaseExecutor(target_of(echo), RunSettings(max_retries=0), driver=sim_failed)
    result = executor.run(make_case())
    assert result.record.status == "supervisor_error" and result.fatal
    assert result.record.output == "partial" and result.output is None


@pytest.mark.parametrize("case_id", ["in00-hi-novice-it0", "in01-a[b]-x-it2", "in02--it0"])
def test_node_ids_round_trip(case_id: str) -> None:
    nodeid = f"configs/simulation.yaml::{item_name('exp', case_id)}"
    assert case_id_of(nodeid, "exp") == case_id
    assert case_id_of(nodeid, "other") is None
    assert case_id_of("tests/test_x.py::test_y[exp]", "exp") is None
    assert count_cases([nodeid, "tests/test_x.py::test_y", nodeid], "exp") == 2
