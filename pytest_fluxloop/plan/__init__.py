"""The experiment plan: inputs files, personas and iterations expanded into ordered cases;
the recorded calls ``replay_args`` replays (:mod:`.recordings`); CI shards (:mod:`.shards`)."""

from __future__ import annotations

from .cases import Case, ExperimentPlan, plan_experiment
from .inputs import InputSet, load_inputs
from .recordings import ArgPath, RecordedCall, Recordings, read_recordings
from .shards import Shard, parse_shard, select_shard

__all__ = [
    "ArgPath",
    "Case",
    "ExperimentPlan",
    "InputSet",
    "RecordedCall",
    "Recordings",
    "Shard",
    "load_inputs",
    "parse_shard",
    "plan_experiment",
    "read_recordings",
    "select_shard",
]
