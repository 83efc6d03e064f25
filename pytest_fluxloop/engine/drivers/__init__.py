"""Drivers: how one attempt of a case talks to the agent.

The executor owns everything around an attempt (the worker thread, the deadline, retries,
the record); a driver owns what happens inside it. :class:`SingleTurnDriver` sends the input
once; :class:`~.conversation.MultiTurnConversation` lets a supervisor play the user for
several turns. A new way of driving an agent (e.g. replaying recorded arguments) is one more
module here implementing :class:`Driver`.
"""

from __future__ import annotations

from .base import Driver, DriverOutcome, Resolve
from .single_turn import SingleTurnDriver

__all__ = ["Driver", "DriverOutcome", "Resolve", "SingleTurnDriver"]
