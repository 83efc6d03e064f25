"""Sending spooled batches later: what ``fluxloop collector push DIR`` does.

Each ``<batch_id>.json.gz`` of the folder's spool (:mod:`.spool`) is posted as it is, with
the same retries as the background sender (:func:`~.sender.deliver`), oldest first, and
deleted once the collector answered 200 (its items stored, duplicate or rejected: a
rejected item would be rejected again). Anything else leaves the file for the next push. A
batch pushed twice changes nothing at the collector (its items' ids are fixed), so pushing
again after a partial push, or pushing a batch that did arrive after all, is harmless.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sender import SenderOptions, count_results, deliver
from .spool import read_spooled, spool_dir, spooled_files
from .target import CollectorTarget
from .wire import BatchError

__all__ = ["PushResult", "push_spool"]


@dataclass
class PushResult:
    """What a push did."""

    folder: Path
    """The spool folder."""
    found: int = 0
    """Spooled batches found."""
    sent: int = 0
    """Batches the collector answered 200 for (their files deleted)."""
    items_sent: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    left: int = 0
    """Batches still spooled (not sent, or not readable)."""
    errors: list[str] = field(default_factory=list)
    """Why batches were left (token removed), one per distinct problem."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "folder": str(self.folder),
            "found": self.found,
            "sent": self.sent,
            "items_sent": self.items_sent,
            "stored": self.stored,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "rejected_examples": list(self.rejected_examples),
            "left": self.left,
            "errors": list(self.errors),
        }


def push_spool(
    folder: str | os.PathLike[str],
    target: CollectorTarget,
    options: SenderOptions | None = None,
) -> PushResult:
    """Send every batch spooled in ``folder`` (an experiment folder, a client's
    ``output_dir`` or the spool folder itself) to ``target``; never raises for a batch
    that fails (it stays, and :attr:`PushResult.errors` says why).

    A refused token (401/403) or a collector that cannot be reached after every attempt
    stops the push: the remaining batches would meet the same answer.
    """
    options = options or SenderOptions()
    result = PushResult(folder=spool_dir(folder))
    files = spooled_files(folder)
    result.found = len(files)
    for index, path in enumerate(files):
        try:
            body, batch = read_spooled(path)
        except (OSError, BatchError) as exc:
            _note(result, target.scrub(f"{path.name}: not a spooled batch ({exc}); left"))
            result.left += 1
            continue
        items = batch["items"]
        assert isinstance(items, list)
        delivery = deliver(target, body, len(items), options)
        if delivery.outcome != "sent":
            _note(result, delivery.error or f"{path.name}: {delivery.outcome}")
            if delivery.outcome in ("auth", "failed", "redirect"):
                result.left += len(files) - index
                break
            result.left += 1
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        result.sent += 1
        result.items_sent += len(items)
        count_results(result, delivery.results, target.scrub)
    return result


def _note(result: PushResult, error: str) -> None:
    if error not in result.errors:
        result.errors.append(error)
