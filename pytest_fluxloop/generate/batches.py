"""Batches without bookkeeping: where the next ``--limit`` batch starts when no ``--offset``
is given.

The documents' workflow is::

    fluxloop generate inputs --limit 100 --output inputs/batch1.yaml
    fluxloop generate inputs --limit 100 --output inputs/batch2.yaml

with no offsets, and the two files must hold different inputs. Each file we write records
how it was made (``generation_config``: its fingerprint, ``offset`` and how many entries it
holds), so the split is deterministic: the next batch starts at the lowest position not
covered by another batch file (written with ``--limit``) of the same generation in the same
folder. Regenerating
``batch1.yaml`` (``--overwrite``) ignores that file itself and so gets its own slice back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.yaml_io import load_yaml
from ..errors import ConfigError

__all__ = ["Batch", "auto_offset", "sibling_batches"]


@dataclass(frozen=True)
class Batch:
    """An inputs file that is a slice of the same generation: entries [offset, end)."""

    path: Path
    offset: int
    count: int

    @property
    def end(self) -> int:
        """One past the last position it holds."""
        return self.offset + self.count


def sibling_batches(output: Path, fingerprint: dict[str, Any]) -> list[Batch]:
    """The other inputs files in ``output``'s folder made by the same generation, by offset.

    A file that cannot be read, is not ours, or was made differently is not a batch of this
    generation and is skipped (it may be anything the user keeps there).
    """
    folder = output.parent
    if not folder.is_dir():
        return []
    found: list[Batch] = []
    for path in sorted(folder.iterdir()):
        if path == output or path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        batch = _read_batch(path, fingerprint)
        if batch is not None:
            found.append(batch)
    return sorted(found, key=lambda b: (b.offset, str(b.path)))


def auto_offset(output: Path, fingerprint: dict[str, Any]) -> tuple[int, list[Batch]]:
    """The lowest position no sibling batch covers, and the batches found."""
    batches = sibling_batches(output, fingerprint)
    offset = 0
    for batch in batches:  # sorted by offset: walk past every batch that covers `offset`
        if batch.offset <= offset < batch.end:
            offset = batch.end
    return offset, batches


def _read_batch(path: Path, fingerprint: dict[str, Any]) -> Batch | None:
    try:  # the config reader's limits (size, aliases, tags) apply to these files too
        data = load_yaml(path).data
    except (OSError, ConfigError):
        return None
    if not isinstance(data, dict):
        return None
    config, entries = data.get("generation_config"), data.get("inputs")
    if not isinstance(config, dict) or not isinstance(entries, list):
        return None
    if any(config.get(key) != value for key, value in fingerprint.items()):
        return None
    offset, limit = config.get("offset"), config.get("limit")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None  # a whole generation (no --limit) is not a batch of one
    return Batch(path, offset, len(entries))
