"""The multi-turn experiment as a regular pytest test with assertions of your own.

Run with:  pytest examples/support_agent_multi_turn
"""

from __future__ import annotations

import pytest


@pytest.mark.fluxloop(config="configs/simulation.yaml")
def test_every_question_gets_an_answer(fluxloop_result, fluxloop_case):
    record = fluxloop_result.record
    assert record.multi_turn.termination_reason == "script_complete"
    replies = [t["content"] for t in record.conversation_state["turns"] if t["role"] == "assistant"]
    assert len(replies) == record.multi_turn.turn_count
    assert not any("not sure" in reply for reply in replies), fluxloop_case.input
