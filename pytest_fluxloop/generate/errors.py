"""The errors of input generation.

All derive from :class:`~pytest_fluxloop.errors.FluxloopError`, so the CLI's one error
boundary shows them as an ``Error:`` line with exit code 4, never as a traceback.
"""

from __future__ import annotations

from ..errors import FluxloopError
from ..llm.errors import LLMError, LLMOutputWarning

__all__ = ["GenerationError", "GeneratorOutputWarning", "OutputExistsError"]


class GenerationError(FluxloopError):
    """Inputs cannot be generated; ``str(err)`` says why and what to change.

    ``llm_error`` is the LLM layer's error when a fatal one (bad key, no quota, unknown
    model) stopped an LLM-mode generation, else None.
    """

    def __init__(self, message: str, *, llm_error: LLMError | None = None) -> None:
        super().__init__(message)
        self.llm_error = llm_error


class OutputExistsError(GenerationError):
    """The inputs file exists and overwriting was not asked for (it is left unchanged)."""


class GeneratorOutputWarning(LLMOutputWarning):
    """The generator's LLM server did not follow the requested output format."""
