"""Every error pytest-fluxloop raises on purpose, and its warning class.

All derive from :class:`FluxloopError`, so a caller can catch them apart from bugs. None of
these import pytest: each boundary translates them once (the pytest adapter into
``pytest.UsageError``, exit code 4; the CLI into an ``Error:`` line and exit code 4).
"""

from __future__ import annotations

from pathlib import Path


class FluxloopError(Exception):
    """Base class of every error raised on purpose by pytest-fluxloop."""


class ConfigError(FluxloopError):
    """Bad configuration, inputs or target: the message names the file, key or value and a fix."""


class TargetError(ConfigError):
    """The runner target can't be imported, found, called or bound."""


class OutputPathError(ConfigError, ValueError):
    """An experiment name or output directory that cannot be used safely."""


class ResumeError(ConfigError, ValueError):
    """The folder can't be resumed (missing, not an experiment, another config)."""


class ConfigNotFoundError(ConfigError):
    """The simulation config does not exist; ``str(err)`` says where it looked and what to do."""


class ScaffoldError(FluxloopError):
    """A project cannot be scaffolded; ``str(err)`` is the user-facing message."""


class ArtifactWriteError(FluxloopError, RuntimeError):
    """Writing an artifact file failed (disk full, permissions, I/O error).

    Lines written before the failure are left intact.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"could not write artifact file {str(path)!r}: {reason}; lines already written are "
            "kept. Free disk space or choose another output_directory / --output-dir"
        )


class AgentTimeout(FluxloopError):
    """The agent did not finish within ``timeout_seconds`` (recorded, never raised to users)."""


class FluxloopWarning(UserWarning):
    """A FluxLoop setting that is accepted but only partly in effect, or a server quirk."""
