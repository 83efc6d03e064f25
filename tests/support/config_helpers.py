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


# seeds/000 "Complete Example", verbatim values (shared by the config and end-to-end tests).
COMPLETE_EXAMPLE = """\
# FluxLoop Simulation Configuration
# ------------------------------------------------------------
# Controls how experiments execute (iterations, runner target, output paths).
# Adjust runner module/function to point at your agent entry point.
name: my_agent_experiment
description: AI agent simulation experiment
iterations: 1 # Number of times to cycle through inputs/personas
parallel_runs: 1 # Increase for concurrent execution (ensure thread safety)
run_delay_seconds: 0 # Optional delay between runs to avoid rate limits
seed: 42 # Set for reproducibility; remove for randomness
runner:
  module_path: "examples.simple_agent"
  function_name: "run"
  target: "examples.simple_agent:run"
  working_directory: . # Relative to project root; adjust if agent lives elsewhere
  python_path: # Optional custom PYTHONPATH entries
  timeout_seconds: 120 # Abort long-running traces
  max_retries: 3 # Automatic retry attempts on error
replay_args:
  enabled: false
  recording_file: recordings/args_recording.jsonl
  override_param_path: data.content
multi_turn:
  enabled: false # Enable to drive conversations via supervisor
  max_turns: 8 # Safety cap on total turns per conversation
  auto_approve_tools: true # Automatically approve tool calls when supported
  persona_override: null # Force a specific persona id (optional)
  supervisor:
    provider: openai # openai (LLM generated) | mock (scripted playback)
    model: gpt-4o-mini
    system_prompt: |
      You supervise an AI assistant supporting customers.
      Review the entire transcript and decide whether to continue.
      When continuing, craft the next user message consistent with the persona.
      When terminating, explain the reason and provide any closing notes.
    metadata:
      scripted_questions: [] # Array of user utterances for sequential playback
      mock_decision: terminate # Fallback when no scripted questions remain
      mock_reason: script_complete # Termination reason for scripted runs
      mock_closing: "Thanks for the help. I have no further questions."
output_directory: experiments
save_traces: true
save_aggregated_metrics: true
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
