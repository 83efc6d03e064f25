"""``runner.environment_vars``: environment variables set for a run, and put back after it.

They are set before the target module is imported (modules commonly read the environment
at import: API keys, feature flags) and override what the environment already has, since
they are explicit config. Every variable set is recorded in :data:`ENVIRONMENT_SET` with
the value it had before, so the run's end (``Experiment.run``, the pytest adapter's process
guard) can restore it. The environment is process-wide: two experiments in one process
that set the same variable differently see the last one applied.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass
class _Set:
    value: str
    """What we set."""
    previous: str | None
    """What the variable was before the first time we set it (None: not set)."""


ENVIRONMENT_SET: dict[str, _Set] = {}
"""Variables :func:`apply_environment` set and have not been restored yet."""


def apply_environment(variables: Mapping[str, str]) -> list[str]:
    """Set ``variables`` in ``os.environ``; returns the names not already set by us (those a
    matching :func:`restore_environment` call should put back)."""
    added: list[str] = []
    for key, value in variables.items():
        text = str(value)
        entry = ENVIRONMENT_SET.get(key)
        if entry is None:
            ENVIRONMENT_SET[key] = _Set(text, os.environ.get(key))
            added.append(key)
        else:
            entry.value = text  # keep the value from before the first set
        os.environ[key] = text
    return added


def restore_environment(keys: Iterable[str] | None = None) -> None:
    """Put back the variables we set (only ``keys``, or all): the previous value, or unset.

    A variable something else changed since we set it is left as it is now.
    """
    names = list(ENVIRONMENT_SET) if keys is None else list(keys)
    for key in names:
        entry = ENVIRONMENT_SET.pop(key, None)
        if entry is None or os.environ.get(key) != entry.value:
            continue
        if entry.previous is None:
            del os.environ[key]
        else:
            os.environ[key] = entry.previous
