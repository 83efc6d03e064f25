"""The judge cache: verdicts already given, so a re-run judges only what changed.

One JSON line per scored verdict::

    {"key": "<sha256>", "evaluator": "helpfulness", "model": "gpt-4o-mini",
     "created_at": "2025-01-01T00:00:00Z",
     "result": {"status": "passed", "score": 0.8, "raw_score": 8, "max_score": 10,
                "reason": "...", "evidence": [{"turn": 1, "quote": "..."}]}}

The key is a hash of the model, the rubric (system prompt, template, parser, scale, pass
score) and the rendered user message, so any change to one of them misses. The file holds
neither the prompt nor any API key, and reasons and evidence pass through the redactor.

Only scored verdicts are stored: an unscored one (invalid output, a timeout, the budget) is
tried again next run. Several processes (xdist workers) share the file: each line is
appended with a single ``os.write`` on an ``O_APPEND`` descriptor, so lines never
interleave. The cache is an optimisation and never fails a run: a corrupt line is skipped,
and an unreadable or unwritable file is logged once and otherwise ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import EvaluatorResult
from ..redact import Redactor

__all__ = ["CACHE_FILE", "JudgeCache", "cache_key", "resolve_cache_path"]

log = logging.getLogger("pytest_fluxloop.evaluation")

CACHE_FILE = Path(".fluxloop") / "judge_cache.jsonl"
"""The default cache file, relative to the project root."""

_SCORED = ("passed", "failed")
_RESULT_KEYS = ("status", "score", "raw_score", "max_score", "reason", "evidence")


def cache_key(model: str, rubric: Mapping[str, Any] | str, transcript: str) -> str:
    """The sha256 (hex) of the canonical JSON of ``model``, ``rubric`` and ``transcript``
    (the rendered user message)."""
    canonical = json.dumps(
        {"model": model, "rubric": rubric, "transcript": transcript},
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def resolve_cache_path(project_root: Path, value: str | bool | None) -> Path | None:
    """Where ``limits.cache`` puts the judge cache: None / True → the default file under
    ``project_root``; False → no cache; a string → that path, relative to the project root.

    Raises:
        ConfigError: the path is empty, is a folder, or resolves outside the project root
            (``..``, an absolute path elsewhere, a symlink pointing out).
    """
    if value is False:
        return None
    root = project_root.resolve()
    if value is None or value is True:
        return root / CACHE_FILE
    if not value.strip():
        raise ConfigError(
            "limits.cache must be a file path (relative to the project root) or false"
        )
    path = (root / Path(value).expanduser()).resolve()
    if not path.is_relative_to(root):
        raise ConfigError(
            f"limits.cache {value!r} resolves to {str(path)!r}, outside the project root "
            f"{str(root)!r}; use a path inside the project (default {CACHE_FILE.as_posix()}) "
            "or false"
        )
    if path.is_dir():
        raise ConfigError(
            f"limits.cache {value!r} is a folder; name a file, e.g. judge_cache.jsonl"
        )
    return path


class JudgeCache:
    """A JSONL judge cache at ``path``, read once on first use; thread-safe.

    Args:
        path: the cache file (created with its folder on the first write).
        redactor: scrubs reasons and evidence before they are written; default: a
            :class:`~pytest_fluxloop.redact.Redactor` with the environment's secrets.

    Lines other processes append after the first read are not seen by this one (they are
    by the next run).
    """

    def __init__(self, path: Path, *, redactor: Redactor | None = None) -> None:
        self.path = Path(path)
        self.redactor = redactor if redactor is not None else Redactor()
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] | None = None
        self._writable = True
        self.skipped_lines = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored ``result`` of ``key`` (status, score, raw_score, max_score, reason,
        evidence), or None."""
        with self._lock:
            entry = self._load().get(key)
            return dict(entry) if entry is not None else None

    def put(self, key: str, *, evaluator: str, model: str, result: EvaluatorResult) -> bool:
        """Store ``result`` under ``key`` and append it to the file.

        Returns whether the line was written; an unscored or skipped result is never stored
        (False), nor is anything after the file proved unwritable.
        """
        if result.status not in _SCORED or result.score is None:
            return False
        stored = self.redactor(
            {name: getattr(result, name) for name in _RESULT_KEYS if name != "evidence"}
            | {"evidence": [dict(item) for item in result.evidence]}
        )
        entry = {
            "key": key,
            "evaluator": evaluator,
            "model": model,
            "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "result": stored,
        }
        with self._lock:
            self._load()[key] = stored
            if not self._writable:
                return False
        try:
            # ASCII-only JSON: any text (lone surrogates included) encodes, and a line is
            # one write.
            line = json.dumps(entry, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            log.warning("judge cache: a verdict of %s could not be stored: %s", evaluator, exc)
            return False
        return self._append(line.encode("ascii") + b"\n")

    # ------------------------------------------------------------------ the file

    def _append(self, data: bytes) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                size = os.fstat(fd).st_size
                # A writer that died mid-line left no newline: start on a fresh line, so
                # this entry is not glued to the broken one.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                written = os.write(fd, data)
            finally:
                os.close(fd)
            if written != len(data):
                raise OSError(f"only {written} of {len(data)} bytes were written")
        except OSError as exc:
            with self._lock:
                first = self._writable
                self._writable = False
            if first:
                log.warning(
                    "judge cache %s is not writable (%s); verdicts of this run are not cached",
                    self.path,
                    exc,
                )
            return False
        return True

    def _load(self) -> dict[str, dict[str, Any]]:
        """The entries of the file, read on first use (the caller holds the lock)."""
        if self._entries is not None:
            return self._entries
        entries: dict[str, dict[str, Any]] = {}
        self._entries = entries
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return entries
        except OSError as exc:
            log.warning("judge cache %s is not readable (%s); judging without it", self.path, exc)
            return entries
        skipped = 0
        for raw in data.splitlines():
            if not raw.strip():
                continue
            parsed = _parse_line(raw)
            if parsed is None:
                skipped += 1
                continue
            key, result = parsed
            entries[key] = result  # a later line for the same key wins
        self.skipped_lines = skipped
        if skipped:
            log.warning(
                "judge cache %s: %d corrupt or truncated line(s) skipped", self.path, skipped
            )
        return entries


def _parse_line(raw: bytes) -> tuple[str, dict[str, Any]] | None:
    """``(key, result)`` of one cache line, or None when it is not a valid scored entry."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    key, result = entry.get("key"), entry.get("result")
    if not isinstance(key, str) or not isinstance(result, dict):
        return None
    score = result.get("score")
    if result.get("status") not in _SCORED or not isinstance(score, int | float):
        return None
    if not isinstance(result.get("evidence", []), list):
        return None
    return key, result
