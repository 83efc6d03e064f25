"""The run's budget of judge calls and tokens (``limits.max_llm_calls``, ``limits.max_tokens``).

A judgment reserves, before it calls anything, the most calls it could possibly make; when
it is done it settles: the calls it did not make go back, and the tokens it used are counted.
Reserving the worst case up front is what keeps the call cap strict even with several
judgments in flight on several threads: the number of calls made can never pass
``max_calls``, whatever the retries do.

Tokens can't be known in advance, so the token cap is softer: once the tokens counted reach
``max_tokens``, every later reservation is refused (calls already in flight still finish).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

__all__ = ["JudgeBudget"]


class JudgeBudget:
    """Calls and tokens the judges of one run (or one xdist worker) may spend; thread-safe.

    Args:
        max_calls: the most provider calls, retries included; None = no cap.
        max_tokens: the tokens after which no new judgment starts; None = no cap.
    """

    def __init__(self, max_calls: int | None = None, max_tokens: int | None = None) -> None:
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._calls_used = 0
        self._tokens_used = 0
        self._reserved = 0  # calls granted to judgments still in flight
        self._refused = 0

    @property
    def calls_used(self) -> int:
        """Provider calls made so far (settled judgments only)."""
        with self._lock:
            return self._calls_used

    @property
    def tokens_used(self) -> int:
        """Tokens the settled judgments used (as reported by the server)."""
        with self._lock:
            return self._tokens_used

    @property
    def refused(self) -> int:
        """Judgments refused because a limit was reached."""
        with self._lock:
            return self._refused

    @property
    def reserved(self) -> int:
        """Calls currently reserved by judgments in flight."""
        with self._lock:
            return self._reserved

    def reserve(self, calls: int) -> str | None:
        """Reserve ``calls`` calls: None when granted, else why not (naming the limit).

        A granted reservation must be given back with :meth:`settle`.
        """
        _granted, reason = self.reserve_within((calls,))
        return reason

    def reserve_within(self, wanted: Sequence[int]) -> tuple[int, str | None]:
        """Reserve the first of ``wanted`` (largest first) that still fits under the caps.

        Returns ``(granted, None)``, or ``(0, reason)`` when none fits; a refusal counts once
        in :attr:`refused` however many sizes were tried. A judge asks for its worst case
        first and for leaner runs (fewer invalid-output retries) after it, so the end of the
        budget is still spent on judgments rather than left unused.
        """
        with self._lock:
            if self.max_tokens is not None and self._tokens_used >= self.max_tokens:
                self._refused += 1
                return 0, f"limits.max_tokens ({self.max_tokens}) reached"
            for calls in wanted:
                calls = max(0, calls)
                if self.max_calls is None or (
                    self._calls_used + self._reserved + calls <= self.max_calls
                ):
                    self._reserved += calls
                    return calls, None
            self._refused += 1
            return 0, f"limits.max_llm_calls ({self.max_calls}) reached"

    def settle(self, reserved: int, used_calls: int, tokens: int | None) -> None:
        """Close a reservation of ``reserved`` calls, of which ``used_calls`` were made, and
        count the ``tokens`` used (None: the server reported none)."""
        with self._lock:
            self._reserved = max(0, self._reserved - max(0, reserved))
            self._calls_used += max(0, used_calls)
            if tokens:
                self._tokens_used += max(0, tokens)

    def snapshot(self) -> dict[str, int | None]:
        """The limits and what was spent, for a run's summary."""
        with self._lock:
            return {
                "max_llm_calls": self.max_calls,
                "max_tokens": self.max_tokens,
                "calls_used": self._calls_used,
                "tokens_used": self._tokens_used,
                "refused": self._refused,
            }
