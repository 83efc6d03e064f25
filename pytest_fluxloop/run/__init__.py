"""Running an experiment: the ``Experiment`` and the recorder that owns its results."""

from __future__ import annotations

from .experiment import Experiment

__all__ = ["Experiment"]
