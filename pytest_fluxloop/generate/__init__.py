"""Input generation: ``fluxloop generate inputs`` writes the inputs file experiments run.

Two modes, one output: *deterministic* (rule-based operators, :mod:`.operators`, offline and
byte-for-byte reproducible from a seed) and *llm* (the shared LLM layer, structured output).
Both turn ``base_inputs`` × ``personas`` × ``variation_strategies`` from ``input.yaml`` into
entries of the inputs-file shape ``inputs: [{input, persona, persona_description, strategy,
base_index, metadata}]`` with provenance, plus a ``generation_config`` block.

Sits beside ``supervisors/`` (above the LLM layer and the config): it never imports the
engine, the run, pytest or click.

Public names (imported lazily, so importing :mod:`.operators` stays cheap)::

    from pytest_fluxloop.generate import (
        GenerationOptions, generate_inputs, write_inputs_file, GenerationError,
    )
    options = GenerationOptions.from_config(cfg, mode="deterministic", limit=50)
    result = generate_inputs(cfg, options, progress=lambda done, total: ...)
    write_inputs_file(result, options.output, overwrite=False)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import BASE_STRATEGY, GenerationResult, generate_inputs
    from .errors import GenerationError, GeneratorOutputWarning, OutputExistsError
    from .jobs import Job, JobOutcome, job_seed, plan_jobs
    from .options import GenerationOptions, LLMOptions
    from .output import check_output_path, render_inputs_file, write_inputs_file

_EXPORTS = {
    "BASE_STRATEGY": "core",
    "GenerationResult": "core",
    "generate_inputs": "core",
    "GenerationError": "errors",
    "GeneratorOutputWarning": "errors",
    "OutputExistsError": "errors",
    "Job": "jobs",
    "JobOutcome": "jobs",
    "job_seed": "jobs",
    "plan_jobs": "jobs",
    "GenerationOptions": "options",
    "LLMOptions": "options",
    "check_output_path": "output",
    "render_inputs_file": "output",
    "write_inputs_file": "output",
}

__all__ = [
    "BASE_STRATEGY",
    "GenerationError",
    "GenerationOptions",
    "GenerationResult",
    "GeneratorOutputWarning",
    "Job",
    "JobOutcome",
    "LLMOptions",
    "OutputExistsError",
    "check_output_path",
    "generate_inputs",
    "job_seed",
    "plan_jobs",
    "render_inputs_file",
    "write_inputs_file",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
