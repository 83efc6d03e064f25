"""The run's cassette figures (``summary.json`` ``cassettes``), summed from its records."""

from __future__ import annotations

from typing import Any

from ..records import TraceRecord

__all__ = ["UNUSED_CASES_KEPT", "CassetteTally"]

UNUSED_CASES_KEPT = 500
"""Cases whose unused recordings are listed by name (all are counted)."""


class CassetteTally:
    """Calls replayed, recorded and missed, cassettes written, and unused recordings."""

    def __init__(self, mode: str, folder: str, reason: str = "set") -> None:
        self.mode = mode
        self.folder = folder
        self.reason = reason
        """Why this mode: ``set`` (configured), or the default's reason."""
        self.replayed = 0
        self.recorded = 0
        self.missed = 0
        self.written = 0
        self.cases_missed = 0
        self.unused_count = 0
        self.unused: dict[str, list[str]] = {}

    def add(self, record: TraceRecord) -> None:
        """Count one record's cassette use (records without one count nothing)."""
        use = record.cassette
        if use is None:
            return
        self.replayed += use.replayed
        self.recorded += use.recorded
        self.missed += use.missed
        self.written += int(use.written)
        self.cases_missed += int(use.missed > 0)
        if use.unused:
            self.unused_count += len(use.unused)
            if len(self.unused) < UNUSED_CASES_KEPT:
                self.unused[record.case_id] = list(use.unused)

    def block(self) -> dict[str, Any]:
        """The ``summary.json`` block."""
        return {
            "mode": self.mode,
            "mode_reason": self.reason,
            "folder": self.folder,
            "replayed": self.replayed,
            "recorded": self.recorded,
            "missed": self.missed,
            "cases_with_misses": self.cases_missed,
            "cassettes_written": self.written,
            "unused_interactions": self.unused_count,
            "unused": dict(sorted(self.unused.items())),
        }

    def lines(self) -> list[str]:
        """What the terminal summary says."""
        why = "" if self.reason == "set" else f": {self.reason}"
        lines = [
            f"cassettes ({self.mode}{why}, {self.folder}): {self.replayed} calls replayed, "
            f"{self.recorded} recorded, {self.missed} missed"
            + (f"; {self.written} cassette file(s) written" if self.written else "")
        ]
        if self.missed:
            lines.append(
                f"  {self.cases_missed} case(s) made calls no recording matched (infrastructure "
                "errors): re-record them with --fluxloop-cassettes new"
            )
        if self.unused_count:
            shown = list(self.unused.items())[:5]
            names = "; ".join(f"{case}: {', '.join(p)}" for case, p in shown)
            more = " ..." if len(self.unused) > len(shown) else ""
            lines.append(
                f"  {self.unused_count} recorded interaction(s) never used ({names}{more}); "
                "remove them with `fluxloop cassettes prune <results folder>`"
            )
        return lines
