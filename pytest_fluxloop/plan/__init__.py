"""The experiment plan: inputs files, personas and iterations expanded into ordered cases;
and the recorded calls ``replay_args`` replays (:mod:`.recordings`)."""

from __future__ import annotations

from .cases import Case, ExperimentPlan, plan_experiment
from .inputs import InputSet, load_inputs
from .recordings import ArgPath, RecordedCall, Recordings, read_recordings

__all__ = [
    "ArgPath",
    "Case",
    "ExperimentPlan",
    "InputSet",
    "RecordedCall",
    "Recordings",
    "load_inputs",
    "plan_experiment",
    "read_recordings",
]
