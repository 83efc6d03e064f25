"""The errors of LLM-call cassettes."""

from __future__ import annotations

from ..errors import ConfigError, FluxloopError

__all__ = ["CassetteError", "CassetteMiss"]


class CassetteError(ConfigError):
    """A cassette file that cannot be used (corrupt, truncated, another format version,
    recorded for another model): the message names the file and what to do."""


class CassetteMiss(FluxloopError):
    """An LLM call that no recording matches while replaying (or a recording refused).

    Raised to the caller of the SDK (the agent, the supervisor, a judge) instead of making
    the call; the case's tape remembers it too, so the case ends as an infrastructure
    error even when the agent catches it. The message holds the unified diff of the request
    recorded at the same position against the one made.
    """
