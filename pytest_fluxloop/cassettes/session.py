"""One case's cassette while the case runs: the tape every LLM call of the case goes through.

The run makes a :class:`CaseTape` per case and makes it current (:data:`current_tape`)
around the case and its evaluation; the capture hooks of the ``openai`` and ``anthropic``
SDKs (:mod:`pytest_fluxloop.integrations.cassette_tape`) ask it, before each call, whether to
replay a recording, record the call, or refuse it. Modes:

* ``replay``: never the network; a call no recording matches is a miss.
* ``new``: replay what matches, record what does not.
* ``record``: a case without a cassette records every call; a case with one replays it
  (as ``replay``), so re-running a recording command never rewrites reviewed files.
* ``rewrite``: record every call; the case's cassette is replaced by this run's calls.

A recording answers exactly one call (the same request asked twice in a turn needs two
recordings, used in order). Nothing here touches the network or the SDKs.
"""

from __future__ import annotations

import difflib
import threading
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ..records import CassetteUse
from ..sdk.context import current_role, current_turn
from .errors import CassetteMiss
from .keys import canonical, match_key, normalise_request, request_diff
from .model import Cassette, Interaction

__all__ = ["MODES", "CallPlan", "CaseTape", "Mode", "current_tape"]

Mode = Literal["off", "record", "replay", "new", "rewrite"]
MODES: tuple[Mode, ...] = ("off", "record", "replay", "new", "rewrite")

NEAREST_CANDIDATES = 200
"""Recordings compared when a miss has no recording at its own position."""

current_tape: ContextVar[CaseTape | None] = ContextVar("fluxloop_cassette", default=None)
"""The tape of the case running in this context (None: cassettes off, or no case)."""


@dataclass
class CallPlan:
    """What to do with one call: replay :attr:`interaction`, or record :attr:`call`."""

    tape: CaseTape
    call: Interaction
    """The call as it is recorded (its ``response`` filled in by :meth:`record`)."""
    interaction: Interaction | None = None
    """The recording that answers it, when replaying."""
    done: bool = False

    @property
    def replay(self) -> bool:
        """True: answer from :attr:`interaction`, without the network."""
        return self.interaction is not None

    def record(self, response: dict[str, Any]) -> None:
        """The call's response (a cassette ``response`` object): keep it, once."""
        if self.done or self.replay:
            return
        self.done = True
        self.tape.add(replace(self.call, response=response))


class CaseTape:
    """The cassette of one case in one run (thread-safe: an async agent may call at once).

    Args:
        mode: the run's mode (never ``off``: no tape is made then).
        path: the case's cassette file (named in messages).
        case_id, iteration, experiment: the case (part of every key).
        loaded: the cassette read before the case ran, if the file exists.
    """

    def __init__(
        self,
        mode: Mode,
        path: Path,
        *,
        case_id: str,
        iteration: int,
        experiment: str,
        loaded: Cassette | None = None,
    ) -> None:
        self.path = path
        self.case_id = case_id
        self.iteration = iteration
        self.experiment = experiment
        self.loaded = loaded
        recorded_before = loaded is not None and bool(loaded.interactions)
        self.mode: Mode = "replay" if mode == "record" and recorded_before else mode
        """The effective mode: ``record`` on a case that has a cassette replays it."""
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        old = self.loaded.interactions if self.loaded and self.mode != "rewrite" else []
        self._available: dict[str, deque[Interaction]] = {}
        for interaction in old:
            self._available.setdefault(interaction.key, deque()).append(interaction)
        self._by_position = {(i.role, i.turn, i.index): i for i in old}
        self._used: set[int] = set()
        self._recorded: list[Interaction] = []
        self._counters: dict[tuple[str, int], int] = {}
        self.replayed = 0
        self.misses: list[str] = []
        self.failures: list[str] = []
        """Cassette problems other than misses (a recording refused by the secret scan)."""

    def begin_attempt(self) -> None:
        """A new attempt of the case starts (a retry): only its calls count."""
        with self._lock:
            self._reset()

    # ------------------------------------------------------------------ per call

    def plan(self, provider: str, endpoint: str, body: Mapping[str, Any]) -> CallPlan:
        """Decide one call: a plan to replay or to record.

        Raises:
            CassetteMiss: replaying, and no unused recording matches (the tape keeps the
                message, with the diff against the recording at the same position).
        """
        role, turn = current_role.get(), current_turn.get()
        request = normalise_request(body)
        key = match_key(
            provider=provider,
            endpoint=endpoint,
            request=request,
            role=role,
            case_id=self.case_id,
            turn=turn,
            iteration=self.iteration,
        )
        with self._lock:
            index = self._counters.get((role, turn), 0)
            self._counters[(role, turn)] = index + 1
            call = Interaction(key, role, turn, index, provider, endpoint, request, {})
            plan = CallPlan(self, call)
            if self.mode == "rewrite":
                return plan
            queue = self._available.get(key)
            if queue:
                plan.interaction = queue.popleft()
                self._used.add(id(plan.interaction))
                self.replayed += 1
                return plan
            # The effective mode is ``record`` only when nothing was recorded before (no
            # cassette, or one with no interactions left): every call records.
            if self.mode in ("new", "record"):
                return plan
            message = self._miss_message(plan)
            self.misses.append(message)
        raise CassetteMiss(message)

    def _miss_message(self, plan: CallPlan) -> str:
        call = plan.call
        where = f"{call.role} call #{call.index + 1} of turn {call.turn}"
        recorded = self._by_position.get((call.role, call.turn, call.index))
        head = (
            f"no recording in cassette {self.path} matches the {where} "
            f"({call.provider} {call.endpoint}); replay never calls the network. "
            "Re-record the changed calls with --fluxloop-cassettes new (or rewrite)."
        )
        if recorded is not None:
            diff = request_diff(recorded.request, call.request, recorded.position)
            return f"{head}\nRecorded request vs actual request:\n{diff}"
        count = len(self.loaded.interactions) if self.loaded else 0
        text = (
            f"{head}\nNothing was recorded at that position "
            f"(the cassette has {count} interactions for this case)."
        )
        nearest = self._nearest(call)
        if nearest is not None:
            diff = request_diff(nearest.request, call.request, nearest.position)
            text += f"\nThe nearest recorded {call.role} request vs the actual one:\n{diff}"
        return text

    def _nearest(self, call: Interaction) -> Interaction | None:
        """The recording of the same role whose request reads most like ``call``'s."""
        candidates = [
            i for i in (self.loaded.interactions if self.loaded else []) if i.role == call.role
        ][:NEAREST_CANDIDATES]
        if not candidates:
            return None
        actual = canonical(call.request)
        return max(
            candidates,
            key=lambda i: difflib.SequenceMatcher(None, canonical(i.request), actual).quick_ratio(),
        )

    def add(self, interaction: Interaction) -> None:
        """A recorded call (from :meth:`CallPlan.record`)."""
        with self._lock:
            self._recorded.append(interaction)

    def fail(self, message: str) -> None:
        """A cassette problem that fails the case (as an infrastructure error)."""
        with self._lock:
            self.failures.append(message)

    # ------------------------------------------------------------------ the end

    def unused(self) -> list[Interaction]:
        """Recordings this attempt never used (none in ``rewrite`` mode, nor when a call
        missed: the case stopped before it could ask for the rest)."""
        if self.loaded is None or self.mode == "rewrite" or self.misses or self.failures:
            return []
        with self._lock:
            return [i for i in self.loaded.interactions if id(i) not in self._used]

    def result(self, recorded_with: Mapping[str, str]) -> Cassette | None:
        """The cassette to write for this case, or None when nothing changed."""
        with self._lock:
            recorded = list(self._recorded)
        if not recorded:
            return None
        if self.mode == "new" and self.loaded is not None:
            interactions = [*self.loaded.interactions, *recorded]
        else:
            interactions = recorded
        return Cassette(
            experiment=self.experiment,
            case_id=self.case_id,
            iteration=self.iteration,
            interactions=interactions,
            recorded_with=dict(recorded_with),
        )

    def use(self, written: bool) -> CassetteUse:
        """The case's figures for its record."""
        with self._lock:
            recorded = len(self._recorded)
        unused = self.unused()
        return CassetteUse(
            mode=self.mode,
            replayed=self.replayed,
            recorded=recorded,
            missed=len(self.misses),
            unused=[i.position for i in unused],
            unused_keys=[i.key for i in unused],
            written=written,
        )
