"""The same experiment as a regular pytest test with assertions of your own.

Run with:  pytest examples/support_agent
"""

from __future__ import annotations

import pytest

from pytest_fluxloop import assert_eval


@pytest.mark.fluxloop(config="configs/simulation.yaml", iterations=1)
def test_support_agent_answers(fluxloop_result, fluxloop_case):
    assert fluxloop_result.success
    assert "not sure" not in fluxloop_result.output, fluxloop_case.input
    if fluxloop_case.persona == "novice_user":
        assert fluxloop_result.output.startswith("Happy to help")
    assert_eval(fluxloop_result)  # configs/evaluation.yaml's evaluators, as the items use
