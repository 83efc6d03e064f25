"""Exceptions shared by the engine, the pytest layer and the CLI.

None of these import pytest: the pytest layer turns ``ConfigError`` into ``pytest.UsageError``
(exit code 4) and the CLI prints it.
"""

from __future__ import annotations


class FluxloopError(Exception):
    """Base class of every error raised on purpose by pytest-fluxloop."""


class ConfigError(FluxloopError):
    """Bad configuration, inputs or target: the message names the file, key or value and a fix."""


class TargetError(ConfigError):
    """The runner target can't be imported, found, called or bound."""
