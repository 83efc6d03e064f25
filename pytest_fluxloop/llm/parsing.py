"""From a raw output to data: JSON extraction and validation against a pydantic model.

Whatever a provider claims about structured output, the output is checked here, on the
client. A parse function takes a :class:`~.types.RawOutput` and returns ``(value, loose)``:
the parsed value, and whether the JSON had to be dug out of prose or code fences (the
server ignored the requested format, worth a warning). It raises :class:`InvalidOutput`
when the output is unusable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .types import RawOutput

__all__ = ["InvalidOutput", "ParseFn", "load_json", "output_json", "parse_model"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

ParseFn = Callable[[RawOutput], tuple[T, bool]]
"""A parse function: ``raw -> (value, loose)``; raises :class:`InvalidOutput`."""

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
# pydantic error types raised by a model's own validators (rules beyond the JSON schema).
_RULE_ERRORS = frozenset({"value_error", "assertion_error"})


class InvalidOutput(Exception):
    """The output is not valid; ``schema`` is False for rule-only violations.

    A schema violation suggests the server ignores the requested format (warned once);
    a rule violation (say, an empty message where one is needed) is just a bad answer.
    """

    def __init__(self, message: str, *, schema: bool) -> None:
        super().__init__(message)
        self.schema = schema


def load_json(text: str) -> tuple[Any, bool]:
    """Parse ``text``; the flag says whether the JSON had to be dug out of prose or fences.

    Tried in order: the whole text, the inside of a fenced code block, and the span from
    the first ``{`` to the last ``}``.

    Raises:
        InvalidOutput: none of these is JSON.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped), False
    except ValueError:
        pass
    fenced = _FENCE.match(stripped)
    candidates = [fenced.group(1)] if fenced else []
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate), True
        except ValueError:
            continue
    raise InvalidOutput("the output is not JSON", schema=True)


def output_json(raw: RawOutput) -> tuple[Any, bool]:
    """The JSON of ``raw``: its already-parsed ``data``, else its text through :func:`load_json`.

    Raises:
        InvalidOutput: the output is empty or not JSON.
    """
    if raw.data is not None:
        return raw.data, False
    if not raw.text or not raw.text.strip():
        raise InvalidOutput("the output is empty", schema=True)
    return load_json(raw.text)


def parse_model(model: type[M]) -> ParseFn[M]:
    """A parse function validating the output as a JSON object of ``model``.

    Type and shape errors count as schema violations; errors from the model's own validators
    (``ValueError`` / ``assert``) as rule violations. Messages name the field.
    """

    def parse(raw: RawOutput) -> tuple[M, bool]:
        data, loose = output_json(raw)
        if not isinstance(data, dict):
            raise InvalidOutput(f"expected a JSON object, got {type(data).__name__}", schema=True)
        try:
            return model.model_validate(data), loose
        except ValidationError as exc:
            errors = exc.errors()
            problems = "; ".join(_problem(error) for error in errors)
            schema = any(error["type"] not in _RULE_ERRORS for error in errors)
            raise InvalidOutput(problems, schema=schema) from None

    return parse


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
