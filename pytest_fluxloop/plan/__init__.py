"""The experiment plan: inputs files, personas and iterations expanded into ordered cases."""

from __future__ import annotations

from .cases import Case, ExperimentPlan, plan_experiment
from .inputs import InputSet, load_inputs

__all__ = ["Case", "ExperimentPlan", "InputSet", "load_inputs", "plan_experiment"]
