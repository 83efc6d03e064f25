"""``fluxloop generate inputs`` as a new user runs it: a real subprocess, then ``run experiment``.

Deterministic mode twice with one seed gives byte-identical files; the documents' batch
workflow (``--limit`` with two ``--output`` files, no offsets) splits the generation; an
existing file is never overwritten silently; LLM mode talks to an OpenAI-compatible server
on 127.0.0.1 through the real ``openai`` client; and the file written drives
``run experiment`` with one case per input and iteration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli_helpers import describe, run_cli
from support.llm_server import FakeLLMServer, chat_completion, llm_server

__all__ = ["llm_server"]  # the fixture, imported for pytest

pytestmark = pytest.mark.slow

KEY = "sk-generate-cli-0123456789abcdef"

SIMULATION = """\
name: gen_demo
iterations: 2
seed: 7
runner:
  target: "agent:run"
  timeout_seconds: 10
  max_retries: 0
"""

INPUT = """\
personas:
  - name: newcomer
    description: First order ever
    characteristics: [brief, unsure]
    goals: [track a parcel]
    language: en
  - name: regular
    description: Orders every week
    characteristics: [precise]
    language: en
base_inputs:
  - input: "Where is my order?"
  - input: "How do I return an item I bought last week?"
variation_strategies: [rephrase, typo, verbose]
variation_count: 2
inputs_file: inputs/generated.yaml
{generation}"""

AGENT = "def run(input_text):\n    return 'ok ' + input_text\n"

LLM_GENERATION = """\
input_generation:
  mode: llm
  llm:
    provider: openai
    model: gen-model
"""


def _project(root: Path, generation: str = "") -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "simulation.yaml").write_text(SIMULATION, encoding="utf-8")
    (root / "configs" / "input.yaml").write_text(
        INPUT.format(generation=generation), encoding="utf-8"
    )
    (root / "agent.py").write_text(AGENT, encoding="utf-8")
    return root


def _entries(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries: list[dict[str, Any]] = data["inputs"]
    return entries


def test_same_seed_gives_a_byte_identical_file(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    first = run_cli("generate", "inputs", "--output", "inputs/a.yaml", cwd=root)
    assert first.returncode == 0, describe(first)
    second = run_cli("generate", "inputs", "--output", "inputs/b.yaml", cwd=root)
    assert second.returncode == 0, describe(second)
    a, b = (root / "inputs" / "a.yaml").read_bytes(), (root / "inputs" / "b.yaml").read_bytes()
    assert a == b
    other = run_cli("generate", "inputs", "--seed", "8", "--output", "inputs/c.yaml", cwd=root)
    assert other.returncode == 0, describe(other)
    assert (root / "inputs" / "c.yaml").read_bytes() != a
    entries = _entries(root / "inputs" / "a.yaml")
    texts = [(e["input"], e["persona"]) for e in entries]
    assert len(texts) == len(set(texts))  # no duplicates
    variations = [e for e in entries if e["strategy"] != "base"]
    assert variations and all(e["input"] != e["metadata"]["source_input"] for e in variations)
    assert all({"operator", "seed", "source_input"} <= set(e["metadata"]) for e in variations)


def test_generated_file_drives_run_experiment(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    gen = run_cli("generate", "inputs", cwd=root)
    assert gen.returncode == 0, describe(gen)
    count = len(_entries(root / "inputs" / "generated.yaml"))
    run = run_cli("run", "experiment", "--yes", cwd=root)
    assert run.returncode == 0, describe(run)
    exp = next((root / "experiments").glob("exp_*"))
    summary = json.loads((exp / "summary.json").read_text(encoding="utf-8"))
    assert summary["total_traces"] == count * 2  # every input, every iteration


def test_the_documented_batches_split_the_generation(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    for name in ("batch1", "batch2"):
        proc = run_cli(
            "generate", "inputs", "--limit", "10", "--output", f"inputs/{name}.yaml", cwd=root
        )
        assert proc.returncode == 0, describe(proc)
    one, two = _entries(root / "inputs" / "batch1.yaml"), _entries(root / "inputs" / "batch2.yaml")
    assert len(one) == len(two) == 10
    keys = lambda entries: {(e["input"], e["persona"]) for e in entries}  # noqa: E731
    assert not keys(one) & keys(two)
    # The same as asking for the offsets explicitly: one generation, sliced.
    whole = run_cli("generate", "inputs", "--output", "inputs/all.yaml", cwd=root)
    assert whole.returncode == 0, describe(whole)
    assert _entries(root / "inputs" / "all.yaml")[:20] == one + two
    # Regenerating batch 1 gets its own slice back, not a third one.
    again = run_cli(
        "generate", "inputs", "--limit", "10", "--output", "inputs/batch1.yaml", "--overwrite",
        cwd=root,
    )  # fmt: skip
    assert again.returncode == 0, describe(again)
    assert _entries(root / "inputs" / "batch1.yaml") == one
    run = run_cli(
        "run", "experiment", "--yes", "--inputs", "inputs/batch2.yaml", "--name", "b2", cwd=root
    )
    assert run.returncode == 0, describe(run)
    assert "20 passed" in run.stdout  # 10 inputs × 2 iterations


def test_an_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    target = root / "inputs" / "generated.yaml"
    target.parent.mkdir()
    target.write_text("inputs: [{input: keep me}]\n", encoding="utf-8")
    proc = run_cli("generate", "inputs", cwd=root)
    assert proc.returncode == 4, describe(proc)
    assert "--overwrite" in proc.stderr
    assert target.read_text(encoding="utf-8") == "inputs: [{input: keep me}]\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["generated.yaml"]  # no temp file


def test_output_outside_its_folder_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    proc = run_cli("generate", "inputs", "--output", "../../escape.yaml", cwd=root)
    assert proc.returncode == 4, describe(proc)
    assert "--output" in proc.stderr
    assert not (tmp_path.parent / "escape.yaml").exists()


def test_llm_mode_against_a_local_server(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    root = _project(tmp_path / "p", LLM_GENERATION)
    jobs = 2 * 2 * 3  # base inputs × personas × strategies
    answers = [
        chat_completion(
            json.dumps({"variations": [{"input": f"variant {i} a"}, {"input": f"variant {i} b"}]})
        )
        for i in range(jobs)
    ]
    llm_server.script("/v1/chat/completions", *answers)
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": llm_server.openai_base_url}
    proc = run_cli("generate", "inputs", "--yes", "--concurrency", "3", cwd=root, env=env)
    assert proc.returncode == 0, describe(proc)
    assert len(llm_server.requests("/v1/chat/completions")) == jobs
    entries = _entries(root / "inputs" / "generated.yaml")
    llm_entries = [e for e in entries if e["strategy"] != "base"]
    assert len(llm_entries) == jobs * 2
    assert {e["metadata"]["model"] for e in llm_entries} == {"gen-model"}
    on_disk = (root / "inputs" / "generated.yaml").read_text(encoding="utf-8")
    assert KEY not in on_disk and KEY not in proc.stdout + proc.stderr
    run = run_cli("run", "experiment", "--yes", cwd=root)
    assert run.returncode == 0, describe(run)
    assert f"{len(entries) * 2} passed" in run.stdout


def test_llm_mode_without_a_key_stops_before_any_request(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    root = _project(tmp_path / "p", LLM_GENERATION)
    env = {"OPENAI_BASE_URL": llm_server.openai_base_url}
    proc = run_cli("generate", "inputs", "--yes", cwd=root, env=env)
    assert proc.returncode == 4, describe(proc)
    assert "OPENAI_API_KEY" in proc.stderr
    assert llm_server.requests() == []
    assert not (root / "inputs" / "generated.yaml").exists()
