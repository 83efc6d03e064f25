"""Where the next ``--limit`` batch starts (pytest_fluxloop.generate.batches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pytest_fluxloop.generate.batches import auto_offset, sibling_batches

FP: dict[str, Any] = {"mode": "deterministic", "seed": 7, "strategies": ["typo"]}


def _batch(folder: Path, name: str, offset: int, count: int, **config: Any) -> Path:
    path = folder / name
    generation = {**FP, "offset": offset, "limit": count, **config}
    entries = [{"input": f"text {offset + i}"} for i in range(count)]
    path.write_text(
        yaml.safe_dump({"inputs": entries, "generation_config": generation}), encoding="utf-8"
    )
    return path


def test_no_siblings_start_at_zero(tmp_path: Path) -> None:
    assert auto_offset(tmp_path / "batch1.yaml", FP) == (0, [])
    assert auto_offset(tmp_path / "missing" / "batch1.yaml", FP) == (0, [])


def test_the_next_batch_follows_the_covered_positions(tmp_path: Path) -> None:
    _batch(tmp_path, "b1.yaml", 0, 10)
    _batch(tmp_path, "b2.yaml", 10, 10)
    offset, batches = auto_offset(tmp_path / "b3.yaml", FP)
    assert offset == 20
    assert [b.path.name for b in batches] == ["b1.yaml", "b2.yaml"]


def test_a_gap_is_filled_first_and_a_file_ignores_itself(tmp_path: Path) -> None:
    _batch(tmp_path, "b1.yaml", 0, 10)
    _batch(tmp_path, "b3.yaml", 20, 10)
    assert auto_offset(tmp_path / "b2.yaml", FP)[0] == 10
    # Regenerating b1 (the output itself) gets its own slice back.
    assert auto_offset(tmp_path / "b1.yaml", FP)[0] == 0


def test_other_generations_and_other_files_are_not_batches(tmp_path: Path) -> None:
    _batch(tmp_path, "other_seed.yaml", 0, 10, seed=8)
    _batch(tmp_path, "whole.yaml", 0, 30, limit=None)  # no --limit: a whole generation
    (tmp_path / "notes.yaml").write_text("just: notes\n", encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("inputs: [unclosed\n", encoding="utf-8")
    (tmp_path / "readme.txt").write_text("x", encoding="utf-8")
    (tmp_path / "bomb.yaml").write_text("a: &a [1]\nb: !!python/object:os.system ls\n")
    assert sibling_batches(tmp_path / "b1.yaml", FP) == []
    assert auto_offset(tmp_path / "b1.yaml", FP)[0] == 0
