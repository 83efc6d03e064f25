"""FluxLoop artifact files: safe paths, JSON coercion, secret redaction and the writer.

The controller process creates one :class:`ExperimentWriter` per run and appends every
:class:`~pytest_fluxloop.records.TraceRecord` to it; nothing else writes artifact files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..jsonsafe import dumps_line, to_jsonable
from ..redact import REDACTED, Redactor, is_secret_key, redact
from .paths import (
    OutputPathError,
    check_writable,
    make_experiment_dir,
    resolve_output_root,
    slugify_suffix,
    validate_experiment_name,
)
from .writer import (
    CONFIG_FILE,
    METADATA_FILE,
    OBSERVATIONS_FILE,
    SUMMARY_FILE,
    TRACE_SUMMARY_FILE,
    TRACES_FILE,
    ArtifactWriteError,
    ExperimentWriter,
    write_atomic,
)

if TYPE_CHECKING:
    from .schemas import generate_schemas, load_schema

__all__ = [
    "CONFIG_FILE",
    "METADATA_FILE",
    "OBSERVATIONS_FILE",
    "REDACTED",
    "SUMMARY_FILE",
    "TRACES_FILE",
    "TRACE_SUMMARY_FILE",
    "ArtifactWriteError",
    "ExperimentWriter",
    "OutputPathError",
    "Redactor",
    "check_writable",
    "dumps_line",
    "generate_schemas",
    "is_secret_key",
    "load_schema",
    "make_experiment_dir",
    "redact",
    "resolve_output_root",
    "slugify_suffix",
    "to_jsonable",
    "validate_experiment_name",
    "write_atomic",
]


def __getattr__(name: str) -> Any:
    # The schema helpers are imported lazily so `python -m pytest_fluxloop.artifacts.schemas`
    # does not find its own module already imported by this package (runpy warns then).
    if name in {"generate_schemas", "load_schema"}:
        from . import schemas

        return getattr(schemas, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
