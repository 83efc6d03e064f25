"""JSON extraction and pydantic parse functions of the llm layer (no server)."""

from __future__ import annotations

import json

import pytest
from support.judge_model import Score

from pytest_fluxloop.llm import InvalidOutput, RawOutput, load_json, output_json, parse_model


@pytest.mark.parametrize(
    ("text", "data", "loose"),
    [
        ('{"score": 3}', {"score": 3}, False),
        ("  [1, 2]\n", [1, 2], False),
        ('```json\n{"score": 3}\n```', {"score": 3}, True),
        ('```\n{"score": 4}\n```', {"score": 4}, True),
        ('My answer: {"score": 2} -- hope that helps', {"score": 2}, True),
    ],
)
def test_load_json(text: str, data: object, loose: bool) -> None:
    assert load_json(text) == (data, loose)


@pytest.mark.parametrize("text", ["no json here", "{broken", "} backwards {"])
def test_load_json_rejects_non_json_as_a_schema_problem(text: str) -> None:
    with pytest.raises(InvalidOutput, match="not JSON") as info:
        load_json(text)
    assert info.value.schema is True


def test_output_json_prefers_parsed_data_and_rejects_empty_text() -> None:
    assert output_json(RawOutput(data={"a": 1}, text="ignored")) == ({"a": 1}, False)
    assert output_json(RawOutput(text='x {"a": 1}')) == ({"a": 1}, True)
    for empty in (None, "", "  \n"):
        with pytest.raises(InvalidOutput, match="empty"):
            output_json(RawOutput(text=empty))


def test_parse_model_returns_the_model_and_the_loose_flag() -> None:
    parse = parse_model(Score)
    value, loose = parse(RawOutput(text=json.dumps({"score": 4})))
    assert isinstance(value, Score) and value.score == 4 and loose is False
    value, loose = parse(RawOutput(text='Score: {"score": 5}'))
    assert value.score == 5 and loose is True


@pytest.mark.parametrize(
    ("raw", "message", "schema"),
    [
        (RawOutput(text="[3]"), "expected a JSON object, got list", True),
        (RawOutput(data={"score": "3"}), "score: Input should be a valid integer", True),
        (RawOutput(data={"score": 3, "verdict": "PASS"}), "verdict: Extra inputs", True),
        (RawOutput(data={}), "score: Field required", True),
        (RawOutput(data={"score": 9}), "score: score must be between 1 and 5", False),
    ],
)
def test_parse_model_problems_name_the_field_and_kind(
    raw: RawOutput, message: str, schema: bool
) -> None:
    with pytest.raises(InvalidOutput) as info:
        parse_model(Score)(raw)
    assert message in str(info.value)
    assert info.value.schema is schema
