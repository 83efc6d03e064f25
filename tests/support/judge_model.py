"""A judge-like output model (``{"score": 1..5}``): a role other than the supervisor, used to
show that the LLM layer serves any structured output."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


class Score(BaseModel):
    """A 1-5 score, strictly typed, no other keys."""

    model_config = ConfigDict(extra="forbid", strict=True)

    score: int

    @field_validator("score")
    @classmethod
    def _in_range(cls, value: int) -> int:
        if not 1 <= value <= 5:
            raise ValueError("score must be between 1 and 5")
        return value
