"""``import fluxloop``: the FluxLoop SDK names from the product documents, unchanged.

A thin facade over :mod:`pytest_fluxloop` so agents instrumented as the FluxLoop documents
show (``@fluxloop.agent()``) run under pytest-fluxloop without edits.

PYTEST_DONT_REWRITE: the CLI imports this package before pytest starts, and the plugin
needs no assertion rewriting.
"""

from __future__ import annotations

from pytest_fluxloop.cases import Case
from pytest_fluxloop.config import load_config
from pytest_fluxloop.engine import Experiment
from pytest_fluxloop.records import ExperimentSummary, Observation, TraceRecord
from pytest_fluxloop.tracing import agent, current_trace, event, tool, trace

__all__ = [
    "Case",
    "Experiment",
    "ExperimentSummary",
    "Observation",
    "TraceRecord",
    "agent",
    "current_trace",
    "event",
    "load_config",
    "tool",
    "trace",
]
