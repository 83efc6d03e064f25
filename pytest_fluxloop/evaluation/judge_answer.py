"""What a judge answers and how it is read: the answer schemas and the parse functions.

The default ``structured`` answer is a verdict JSON (``verdict``, ``score``, ``reason``,
``evidence``); the earlier tool's parsers read a score out of freer answers:
``first_number_1_10`` (the first number of the text, or the ``score`` of a JSON answer),
``json_score`` (``{"score": N}``) and ``regex_score`` (a user pattern). Whatever the server
claims about structured output, the answer is checked here, on the client: a score outside
``0..max_score`` is invalid output, which the LLM layer retries within its bounds.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from ..llm.parsing import InvalidOutput, ParseFn, output_json, parse_model
from ..llm.types import RawOutput

__all__ = [
    "ANSWER_SCHEMA",
    "PARSERS",
    "SCORE_SCHEMA",
    "VERDICT_SCHEMA",
    "Judgement",
    "answer_schema",
    "verdict_parser",
]

PARSERS = ("structured", "first_number_1_10", "json_score", "regex_score")
"""How a judge's answer is read: the verdict JSON (default), or one of the earlier tool's
score parsers."""

# Cited turns are for a reader of the results: a handful of short quotes is enough.
_MAX_EVIDENCE = 10
_MAX_QUOTE_CHARS = 500
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# Where a first_number_1_10 judge states its score: "Score: 8/10", "score = 7.5", or a reply
# that starts with the number ("8", "8/10 - clear"). A number anywhere else (an echoed rubric
# saying "rate from 1-10") is not a score: that answer is invalid, never a 1/10.
_SCORE_LABEL = re.compile(r"\bscore\b\s*(?:is|of)?\s*[:=]?\s*\**\s*(-?\d+(?:\.\d+)?)", re.I)
_LEADING_NUMBER = re.compile(r"\s*\**\s*(-?\d+(?:\.\d+)?)\s*(?:/|\b|$)")


@dataclass(frozen=True)
class Judgement:
    """A judge's parsed answer: the score on its own scale, the verdict (structured answers
    only), the reason and the cited turns."""

    raw_score: float
    verdict: Literal["pass", "fail"] | None = None
    reason: str = ""
    evidence: tuple[dict[str, Any], ...] = ()


class _Evidence(BaseModel):
    turn: int | None = None
    quote: str = ""


class _Verdict(BaseModel):
    # Extra keys are ignored rather than rejected: only these fields carry meaning.
    model_config = ConfigDict(extra="ignore")

    verdict: Literal["pass", "fail"]
    score: float
    reason: str = ""
    evidence: list[_Evidence] = []

    @field_validator("verdict", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


def _evidence_schema() -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "turn": {"type": "integer", "description": "the [turn N] number cited"},
            "quote": {"type": "string", "description": "a short exact quote of that turn"},
        },
        "required": ["turn", "quote"],
        "additionalProperties": False,
    }
    return {"type": "array", "items": item}


def _schema(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


VERDICT_SCHEMA = _schema(
    {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "score": {"type": "number", "description": "0..max_score, higher is better"},
        "reason": {"type": "string"},
        "evidence": _evidence_schema(),
    }
)
SCORE_SCHEMA = _schema(
    {"score": {"type": "number"}, "reason": {"type": "string"}},
)
ANSWER_SCHEMA = _schema({"answer": {"type": "string"}})
_SCHEMAS = {"json_score": SCORE_SCHEMA, "regex_score": ANSWER_SCHEMA}


def answer_schema(parser: str) -> dict[str, Any]:
    """The JSON schema a judge with ``parser`` asks for: ``{score, reason}`` for
    ``json_score``, ``{answer}`` for ``regex_score`` (the pattern reads the answer text), the
    verdict otherwise (``first_number_1_10`` reads its score)."""
    return _SCHEMAS.get(parser, VERDICT_SCHEMA)


def _in_range(score: float, max_score: float) -> float:
    if not math.isfinite(score) or not 0.0 <= score <= max_score:
        raise InvalidOutput(f"score {score:g} is outside 0..{max_score:g}", schema=False)
    return score


def _evidence(items: list[_Evidence]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"turn": item.turn, "quote": item.quote[:_MAX_QUOTE_CHARS]}
        for item in items[:_MAX_EVIDENCE]
    )


def _text(raw: RawOutput) -> str:
    if raw.data is not None:
        return json.dumps(raw.data, ensure_ascii=False)
    return raw.text or ""


def verdict_parser(parser: str, max_score: float, pattern: str | None = None) -> ParseFn[Judgement]:
    """The parse function of ``parser`` (one of :data:`PARSERS`) on a ``0..max_score`` scale.

    A score outside the scale is invalid output (retried). ``first_number_1_10`` reads a
    JSON answer's ``score`` when the answer is JSON, else the first number of the text
    (``"Score: 8/10"`` → 8); ``json_score`` reads ``{"score": N}``; ``regex_score`` searches
    ``pattern`` in the answer (its ``answer`` field when it is JSON) and reads group 1, or
    the whole match without groups.
    """
    structured = parse_model(_Verdict)

    def parse_structured(raw: RawOutput) -> tuple[Judgement, bool]:
        value, loose = structured(raw)
        score = _in_range(value.score, max_score)
        judgement = Judgement(score, value.verdict, value.reason, _evidence(value.evidence))
        return judgement, loose

    def parse_first_number(raw: RawOutput) -> tuple[Judgement, bool]:
        try:
            data, _loose = output_json(raw)
        except InvalidOutput:
            data = None
        if isinstance(data, dict) and "score" in data:
            score = _number(data["score"], max_score)
            reason = data.get("reason")
            return Judgement(score, reason=reason if isinstance(reason, str) else ""), False
        text = _text(raw)
        match = _SCORE_LABEL.search(text) or _LEADING_NUMBER.match(text)
        if match is None:
            raise InvalidOutput(
                'no score in the output (expected "Score: <number>" or a reply starting with '
                "the number)",
                schema=False,
            )
        return Judgement(_in_range(float(match.group(1)), max_score), reason=text.strip()), False

    def parse_json_score(raw: RawOutput) -> tuple[Judgement, bool]:
        data, loose = output_json(raw)
        if not isinstance(data, dict) or "score" not in data:
            raise InvalidOutput('expected a JSON object with "score"', schema=True)
        reason = data.get("reason")
        score = _number(data["score"], max_score)
        return Judgement(score, reason=reason if isinstance(reason, str) else ""), loose

    compiled = re.compile(pattern or r"-?\d+(?:\.\d+)?")

    def parse_regex(raw: RawOutput) -> tuple[Judgement, bool]:
        text = _text(raw)
        try:
            data, _loose = output_json(raw)
        except InvalidOutput:
            data = None
        if isinstance(data, dict) and isinstance(data.get("answer"), str):
            text = data["answer"]
        match = compiled.search(text)
        if match is None:
            raise InvalidOutput(f"parser_pattern {compiled.pattern!r} does not match", schema=False)
        found = match.group(1) if compiled.groups else match.group(0)
        return Judgement(_number(found, max_score), reason=text.strip()), False

    parsers: dict[str, ParseFn[Judgement]] = {
        "structured": parse_structured,
        "first_number_1_10": parse_first_number,
        "json_score": parse_json_score,
        "regex_score": parse_regex,
    }
    if parser not in parsers:
        raise ValueError(f"unknown parser {parser!r}; use {', '.join(PARSERS)}")
    return parsers[parser]


def _number(value: Any, max_score: float) -> float:
    if isinstance(value, bool):
        raise InvalidOutput(f"score {value!r} is not a number", schema=False)
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise InvalidOutput(f"score {value!r} is not a number", schema=False) from None
    return _in_range(score, max_score)
