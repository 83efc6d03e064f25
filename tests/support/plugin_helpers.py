"""A FluxLoop project laid out in a pytester directory (used by the plugin tests)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

BASIC_CONFIG = """\
name: demo
description: plugin test experiment
iterations: {iterations}
seed: 42
runner:
  target: "{target}"
  timeout_seconds: 10
  max_retries: 0
{extra}
"""

BASIC_INPUTS = """\
generated_inputs:
  - input: "How do I start?"
    persona: novice_user
  - input: "What are advanced options?"
    persona: expert_user
  - input: "please crash"
    persona: expert_user
"""

BASIC_AGENT = """\
import fluxloop

@fluxloop.agent()
def run(input_text: str, persona: str | None = None) -> str:
    if "crash" in input_text:
        raise ValueError("asked to crash")
    return f"[{persona}] answer to {input_text}"
"""


class Project:
    """A FluxLoop project inside ``pytester.path``."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.root = pytester.path

    def write(self, relpath: str, text: str) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def setup(
        self,
        *,
        iterations: int = 1,
        target: str = "agent:run",
        extra: str = "",
        inputs: str = BASIC_INPUTS,
        agent: str = BASIC_AGENT,
    ) -> Project:
        self.write(
            "configs/simulation.yaml",
            BASIC_CONFIG.format(iterations=iterations, target=target, extra=extra),
        )
        self.write("inputs/generated.yaml", inputs)
        self.write("agent.py", agent)
        return self

    @property
    def config(self) -> str:
        return str(self.root / "configs" / "simulation.yaml")

    def experiments(self, output: str = "experiments") -> list[Path]:
        base = self.root / output
        return sorted(base.glob("exp_*")) if base.is_dir() else []

    def only_experiment(self, output: str = "experiments") -> Path:
        found = self.experiments(output)
        assert len(found) == 1, found
        return found[0]

    @staticmethod
    def jsonl(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    @staticmethod
    def summary(exp_dir: Path) -> dict[str, Any]:
        return json.loads((exp_dir / "summary.json").read_text(encoding="utf-8"))
