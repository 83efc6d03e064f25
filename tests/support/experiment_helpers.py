"""A small plain-Python experiment project (config, inputs, agent) and readers of its results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from support.engine_helpers import unique, write_module


def make_project(root: Path, **simulation: Any) -> tuple[Path, str]:
    """A project: configs/simulation.yaml, inputs/generated.yaml and an agent module."""
    module = unique("agent")
    write_module(
        root,
        f"{module}.py",
        """
        import fluxloop


        @fluxloop.agent()
        def run(input_text, persona=None):
            fluxloop.event("thinking", persona=persona)
            if "fail" in input_text:
                raise ValueError("cannot handle " + input_text)
            return f"[{persona}] {input_text} ✓"
        """,
    )
    config: dict[str, Any] = {
        "name": "plain_python",
        "description": "run from plain Python",
        "iterations": 2,
        "seed": 7,
        "runner": {"target": f"{module}:run", "timeout_seconds": 30, "max_retries": 0},
        "output_directory": "experiments",
    }
    config.update(simulation)
    (root / "configs").mkdir(parents=True, exist_ok=True)
    path = root / "configs" / "simulation.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    inputs = {
        "inputs": [
            {"input": "How do I start? 🚀", "persona": "novice"},
            {"input": "Please fail now", "persona": "expert"},
            {"input": "Multi\nline question", "persona": "expert"},
        ]
    }
    (root / "inputs").mkdir(exist_ok=True)
    (root / "inputs" / "generated.yaml").write_text(
        yaml.safe_dump(inputs, allow_unicode=True), encoding="utf-8"
    )
    return path, module


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def only_experiment_dir(root: Path) -> Path:
    dirs = sorted((root / "experiments").glob("exp_*"))
    assert len(dirs) == 1, dirs
    return dirs[0]
