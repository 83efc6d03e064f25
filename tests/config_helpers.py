"""Helpers for the config/inputs/cases tests: write a FluxLoop project tree into ``tmp_path``."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SIMULATION = "configs/simulation.yaml"
PROJECT = "configs/project.yaml"
INPUT = "configs/input.yaml"
EVALUATION = "configs/evaluation.yaml"
GENERATED = "inputs/generated.yaml"

MINIMAL_SIMULATION = """\
name: quick_test
description: Quick validation test
iterations: 1
runner:
  target: "my_agent:run"
"""


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``files`` (relative path -> text or bytes) under ``root``; return ``root``.

    Text is dedented, so tests can write YAML as indented triple-quoted strings, and written
    as UTF-8 exactly (no newline translation).
    """
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_bytes(textwrap.dedent(content).encode("utf-8"))
    return root


def write_project(root: Path, files: Mapping[str, str | bytes] | None = None) -> Path:
    """A project with the minimal ``configs/simulation.yaml`` plus ``files``; returns its path.

    ``files`` may replace the simulation config too (key ``SIMULATION``).
    """
    tree: dict[str, str | bytes] = {SIMULATION: MINIMAL_SIMULATION}
    tree.update(files or {})
    write_tree(root, tree)
    return root / SIMULATION


def yaml_text(data: Any) -> str:
    """YAML for ``data`` (keys in the given order, unicode kept as is)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def line_of(text: str, needle: str) -> int:
    """1-based line number of the first line of ``text`` containing ``needle``."""
    for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")
