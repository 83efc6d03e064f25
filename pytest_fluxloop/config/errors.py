"""Turn pydantic validation errors into messages that name the file, line, key and a fix."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from .yaml_io import KeyPath, YamlDocument, dotted


def format_validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    doc: YamlDocument | None,
    override_labels: Mapping[KeyPath, str] | None = None,
    source: str = "",
) -> str:
    """One line per problem: ``where: key: what is wrong (how to fix)``."""
    labels = dict(override_labels or {})
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        label = _override_label(loc, labels)
        if label:
            where = label
        elif doc is not None:
            where = doc.where(loc)
        else:
            where = source or model.__name__
        key = dotted(loc) or "(top level)"
        lines.append(f"{where}: {key}: {_describe(err, loc, model)}")
    header = "invalid configuration" if len(lines) == 1 else f"{len(lines)} configuration errors"
    origin = str(doc.path) if doc is not None else (source or model.__name__)
    return f"{origin}: {header}:\n  " + "\n  ".join(lines)


def suggest_key(bad: str, valid: Iterable[str]) -> str | None:
    """The valid key ``bad`` is most likely a typo of, or None when none is close enough.

    A suggestion needs real similarity, not just a shared prefix: at most one edit
    (insert, delete, replace, or swap of neighbours) per three characters of the shorter
    key, ignoring case and ``-``/``_``; or ``bad`` is the first half or more of the key
    (an abbreviation: ``output_dir``). So ``iteratons`` -> ``iterations`` and
    ``timeout_secs`` -> ``timeout_seconds``, but ``generated_at`` suggests nothing (six
    edits from ``generated_inputs``, and not its abbreviation). Ties go to the higher
    difflib ratio.
    """
    norm = _normalized_key(bad)
    best: tuple[int, float, str] | None = None
    for candidate in valid:
        other = _normalized_key(candidate)
        distance = _edit_distance(norm, other)
        abbreviation = other.startswith(norm) and len(norm) >= max(4, (len(other) + 1) // 2)
        if distance > max(1, min(len(norm), len(other)) // 3) and not abbreviation:
            continue
        ratio = difflib.SequenceMatcher(None, norm, other).ratio()
        rank = (distance, -ratio, candidate)
        if best is None or rank < best:
            best = rank
    return best[2] if best else None


def _normalized_key(key: str) -> str:
    return key.lower().replace("-", "_")


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein plus swaps of neighbouring letters)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, 1):
            cost = 0 if char_a == char_b else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def _override_label(loc: KeyPath, labels: Mapping[KeyPath, str]) -> str | None:
    for end in range(len(loc), 0, -1):
        if tuple(loc[:end]) in labels:
            return labels[tuple(loc[:end])]
    return None


def _clean_loc(loc: tuple[Any, ...]) -> KeyPath:
    # pydantic adds union-member tags (e.g. 'str', 'function-after[...]') to locations.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and not _is_tag(part)):
            out.append(part)
    return tuple(out)


def _is_tag(part: str) -> bool:
    return (
        part in {"str", "int", "float", "bool", "list", "dict", "none"}
        or "[" in part
        or part.startswith(("function-", "literal", "list["))
    )


def _describe(err: Mapping[str, Any], loc: KeyPath, model: type[BaseModel]) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        valid = sorted(_fields_at(model, loc[:-1]))
        bad = str(loc[-1]) if loc else ""
        close = suggest_key(bad, valid)
        hint = f" (did you mean '{close}'?)" if close else ""
        return f"unknown key{hint}; valid keys here: {', '.join(valid)}"
    if kind == "missing":
        return "required key is missing"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        rng = _range_text(model, loc)
        return f"{value!r} is out of range{rng}"
    if kind in {"string_type", "string_too_short"} and isinstance(value, bool):
        return (
            f"expected a string, got the boolean {value!r} (YAML reads yes/no/on/off/true/false "
            "as booleans: put the value in quotes)"
        )
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_unicode":
        # pydantic's "unable to parse raw data as a unicode string" names neither cause nor fix.
        return (
            'holds a lone surrogate (half of a UTF-16 pair, e.g. from a "\\ud800" escape or '
            "an undecodable byte on the command line), which is not text; write the "
            "character itself as UTF-8, or remove it"
        )
    if kind.endswith("_type") or kind in {"literal_error", "enum"}:
        msg = str(err["msg"])
        hint = ""
        if kind in {"literal_error", "enum"} and isinstance(value, str):
            choices = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
            close = suggest_key(value, choices)
            hint = f" (did you mean '{close}'?)" if close else ""
        return f"{msg}, got {type(value).__name__} {_short(value)}{hint}"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _range_text(model: type[BaseModel], loc: KeyPath) -> str:
    info = _field_info_at(model, loc)
    if info is None:
        return ""
    low = high = None
    for meta in info.metadata:
        if isinstance(meta, (Ge, Gt)):
            low = meta.ge if isinstance(meta, Ge) else meta.gt
        if isinstance(meta, (Le, Lt)):
            high = meta.le if isinstance(meta, Le) else meta.lt
    if low is not None and high is not None:
        return f" {low}-{high}"
    if low is not None:
        return f" (must be at least {low})"
    if high is not None:
        return f" (must be at most {high})"
    return ""


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list) or origin is not None:
        for arg in get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _model_at(model: type[BaseModel], loc: KeyPath) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None:
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _inner_model(info.annotation)
    return current


def _field_info_at(model: type[BaseModel], loc: KeyPath) -> FieldInfo | None:
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return None
    parent = _model_at(model, tuple(names[:-1]))
    return parent.model_fields.get(names[-1]) if parent else None


def _fields_at(model: type[BaseModel], loc: KeyPath) -> list[str]:
    parent = _model_at(model, loc)
    return list(parent.model_fields) if parent else []
