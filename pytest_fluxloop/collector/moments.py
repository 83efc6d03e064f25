"""Date-times the collector reads: from batches (``sent_at``, ``started_at`` ...) and from
query parameters (``since``, ``until``), one way for both."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_utc(text: str) -> datetime:
    """``text`` (ISO 8601, ``Z`` accepted) as an aware UTC datetime; a naive one is taken as
    UTC. ValueError when it is not a date-time."""
    text = text.strip()
    if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not read "Z"
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
