"""Where the plugin keeps its state on pytest objects (stash keys, report attributes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..engine.executor import CaseResult
    from .state import PluginState

STATE_KEY: pytest.StashKey[PluginState] = pytest.StashKey()
"""``config.stash``: the plugin's state for this pytest run."""
RESULT_KEY: pytest.StashKey[CaseResult] = pytest.StashKey()
"""``item.stash``: the finished case of an item, until its report carries the record."""
EXPERIMENT_KEY = pytest.StashKey[str]()
"""``item.stash``: the key of the experiment the item's case belongs to."""
RECORD_ATTR = "fluxloop_record"
"""Report attribute: the trace record (an object in-process, JSON data across xdist)."""
EXPERIMENT_ATTR = "fluxloop_experiment"
"""Report attribute: the experiment key of the record."""
