"""Drivers: how one attempt of a case talks to the agent.

The executor owns everything around an attempt (the worker thread, the deadline, retries,
the record); a driver owns what happens inside it. :class:`SingleTurnDriver` sends the input
once; :class:`~.conversation.MultiTurnConversation` lets a supervisor play the user for
several turns. A new way of driving an agent is one more module here implementing
:class:`Driver`. Replaying recorded calls (:mod:`..replay`) wraps either of these: its
:class:`Binder` rebuilds the recorded call for each call of the agent.
"""

from __future__ import annotations

from .base import Binder, Driver, DriverOutcome, Resolve
from .single_turn import SingleTurnDriver

__all__ = ["Binder", "Driver", "DriverOutcome", "Resolve", "SingleTurnDriver"]
