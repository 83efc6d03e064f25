"""JSON Schemas of the config files, for editors (``fluxloop config schema``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .models import EvaluationConfig, InputConfig, InputsFile, ProjectConfig, SimulationConfig

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_MODELS: dict[str, type[BaseModel]] = {
    "simulation": SimulationConfig,
    "project": ProjectConfig,
    "input": InputConfig,
    "evaluation": EvaluationConfig,
    "inputs": InputsFile,
}


def config_json_schema(kind: str = "simulation") -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one config file kind.

    ``kind`` is one of ``simulation``, ``project``, ``input``, ``evaluation``, ``inputs``.
    """
    try:
        model = _MODELS[kind]
    except KeyError:
        raise ValueError(
            f"unknown schema kind {kind!r}; choose one of {', '.join(_MODELS)}"
        ) from None
    schema = model.model_json_schema()
    schema["$schema"] = SCHEMA_DIALECT
    schema.setdefault("title", f"FluxLoop {kind} config")
    return schema


def schema_kinds() -> list[str]:
    """The kinds ``config_json_schema`` knows."""
    return list(_MODELS)
