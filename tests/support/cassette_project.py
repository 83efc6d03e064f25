"""A multi-turn FluxLoop project for the LLM-call cassette tests (plugin and CLI).

The project (``name: castest``) has an LLM supervisor (provider ``openai``, model
``sup-model``, its base URL from ``OPENAI_BASE_URL``) and an agent that makes two real
``openai`` calls per turn to ``SIM_URL``:

1. a plain chat completion with the system prompt :data:`SYSTEM` (the one the tests change);
2. a streamed one (``stream_options.include_usage``) with the user message only.

Against :mod:`support.sim_llm` (``running_sim_server(turns=3)``) each case has exactly
:data:`AGENT_TURNS` agent turns: the agent's reply holds one ``echo:`` (the streamed text;
the plain reply is kept with ``echo:`` spelled ``first:``), so the supervisor continues
twice and ends the third time. Per case that is :data:`CALLS_PER_CASE` LLM calls:
2 per agent turn plus one supervisor decision per turn.

Runs go through ``pytester.runpytest_subprocess`` with the environment set for the run only
(:meth:`CassetteProject.run`): ``CI``, the API keys and the URLs are exactly what the test
says, never what the developer's shell has.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from support.plugin_helpers import Project

EXPERIMENT = "castest"
SYSTEM = "be concise"
SUPERVISOR_MODEL = "sup-model"
AGENT_TURNS = 3
SIM_TURNS = 3  # running_sim_server(turns=SIM_TURNS): the supervisor ends after 3 replies
AGENT_CALLS_PER_TURN = 2
CALLS_PER_CASE = AGENT_TURNS * (AGENT_CALLS_PER_TURN + 1)
RECORD_KEY = "test-openai-key-0123456789"  # the supervisor's key while recording
DEAD_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing answers there

AGENT = """\
import os

import openai

SYSTEM = {system!r}
EXTRA = {extra}  # appended to the "refund" user message of the plain call

client = openai.OpenAI(
    base_url=os.environ["SIM_URL"], api_key="agent-test-key", max_retries=0, timeout=20
)


def run(input_text: str) -> str:
    first = client.chat.completions.create(
        model="agent-model",
        messages=[
            {{"role": "system", "content": SYSTEM}},
            {{"role": "user", "content": input_text + (EXTRA if "refund" in input_text else "")}},
        ],
    )
    stream = client.chat.completions.create(
        model="agent-model",
        messages=[{{"role": "user", "content": input_text}}],
        stream=True,
        stream_options={{"include_usage": True}},
    )
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    plain = (first.choices[0].message.content or "").replace("echo:", "first:")
    return f"{{text}} ({{plain}})"
"""

SIMULATION = """\
name: {name}
iterations: {iterations}
parallel_runs: {parallel_runs}
seed: 42
runner:
  target: agent:run
  timeout_seconds: 30
  max_retries: 0
multi_turn:
  enabled: true
  max_turns: 6
  supervisor:
    provider: openai
    model: {supervisor_model}
{extra}
"""

PERSONAS = ("novice_user", "expert_user")
QUESTIONS = ("hello there", "refund please", "where is my parcel", "cancel my plan")


def inputs_yaml(count: int) -> str:
    """``count`` inputs (at most 4), alternating personas."""
    lines = ["generated_inputs:"]
    for number in range(count):
        lines.append(f'  - input: "{QUESTIONS[number]}"')
        lines.append(f"    persona: {PERSONAS[number % 2]}")
    return "\n".join(lines) + "\n"


VOLATILE = frozenset({"trace_id", "started_at", "completed_at", "duration_ms"})
"""trace_summary.jsonl keys that differ between runs of the same conversation."""

CONTROLLED_ENV = (
    "CI",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "SIM_URL",
)


def write_project(
    root: Path,
    *,
    inputs: int = 2,
    iterations: int = 1,
    parallel_runs: int = 1,
    system: str = SYSTEM,
    extra_expr: str = "''",
    supervisor_model: str = SUPERVISOR_MODEL,
    config_extra: str = "",
) -> None:
    """The project's agent.py, inputs/generated.yaml and configs/simulation.yaml in ``root``."""
    write_agent(root, system=system, extra_expr=extra_expr)
    write_text(root / "inputs" / "generated.yaml", inputs_yaml(inputs))
    write_config(
        root,
        iterations=iterations,
        parallel_runs=parallel_runs,
        supervisor_model=supervisor_model,
        config_extra=config_extra,
    )


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_agent(root: Path, *, system: str = SYSTEM, extra_expr: str = "''") -> None:
    """agent.py with the system prompt ``system``; ``extra_expr`` (Python source) is what the
    plain call appends to a "refund" user message."""
    write_text(root / "agent.py", AGENT.format(system=system, extra=extra_expr))


def write_config(
    root: Path,
    *,
    iterations: int = 1,
    parallel_runs: int = 1,
    supervisor_model: str = SUPERVISOR_MODEL,
    config_extra: str = "",
) -> None:
    text = SIMULATION.format(
        name=EXPERIMENT,
        iterations=iterations,
        parallel_runs=parallel_runs,
        supervisor_model=supervisor_model,
        extra=config_extra,
    )
    write_text(root / "configs" / "simulation.yaml", text)


class CassetteProject(Project):
    """The cassette test project inside ``pytester.path``."""

    def setup_cassettes(self, **settings: Any) -> CassetteProject:
        """Write the project (see :func:`write_project` for the settings)."""
        write_project(self.root, **settings)
        return self

    def write_agent(self, **settings: Any) -> None:
        write_agent(self.root, **settings)

    # ------------------------------------------------------------------ running

    def run(
        self,
        *args: str,
        mode: str | None = None,
        url: str = DEAD_URL,
        ci: str | None = None,
        keys: bool = False,
        env: Mapping[str, str | None] | None = None,
    ) -> pytest.RunResult:
        """``pytest --fluxloop-config ... [--fluxloop-cassettes MODE] ARGS`` in a subprocess,
        the agent and the supervisor pointed at ``url``; ``CI`` set only when ``ci`` is given,
        an API key only with ``keys``; ``env`` last."""
        option = ("--fluxloop-cassettes", mode) if mode is not None else ()
        with environment(run_env(url=url, ci=ci, keys=keys, env=env)):
            return self.pytester.runpytest_subprocess(
                "--fluxloop-config",
                self.config,
                *QUIET_PLUGINS,
                *option,
                *args,
                timeout=PYTEST_TIMEOUT_S,
            )

    # ------------------------------------------------------------------ reading

    @property
    def cassette_dir(self) -> Path:
        return cassette_dir(self.root)

    def cassettes(self) -> dict[str, dict[str, Any]]:
        return read_cassettes(self.root)

    def snapshot(self) -> dict[str, bytes]:
        return snapshot(self.root)


QUIET_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:langsmith_plugin")
"""No cache folder in the project; langsmith's plugin costs ~1 s per process and plays no part."""
PYTEST_TIMEOUT_S = 180  # hang guard only


def run_env(
    *,
    url: str = DEAD_URL,
    ci: str | None = None,
    keys: bool = False,
    env: Mapping[str, str | None] | None = None,
) -> dict[str, str | None]:
    """The controlled variables of a run (None: unset)."""
    values: dict[str, str | None] = dict.fromkeys(CONTROLLED_ENV)
    values.update(SIM_URL=url, OPENAI_BASE_URL=url, CI=ci)
    if keys:
        values["OPENAI_API_KEY"] = RECORD_KEY
    values.update(env or {})
    return values


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``values`` (None: unset) and no ``FLUXLOOP_*`` variable, for the
    block (a subprocess started in it inherits them)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("FLUXLOOP_")]:
            mp.delenv(name)
        for name, value in values.items():
            if value is None:
                mp.delenv(name, raising=False)
            else:
                mp.setenv(name, value)
        yield


def cassette_dir(root: Path) -> Path:
    """The experiment's cassette folder (the default ``cassettes.dir``)."""
    return root / "cassettes" / EXPERIMENT


def cassette_files(root: Path) -> list[Path]:
    folder = cassette_dir(root)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def read_cassettes(root: Path) -> dict[str, dict[str, Any]]:
    """Each cassette file's document by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in cassette_files(root)}


def snapshot(root: Path) -> dict[str, bytes]:
    """The bytes of every file under ``root/cassettes`` (hidden ones too) by relative path."""
    base = root / "cassettes"
    if not base.is_dir():
        return {}
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def results_dir(output: str) -> Path:
    """The results folder a run's terminal names (``results: PATH``)."""
    found = re.findall(r"^results: (\S+)$", output, flags=re.MULTILINE)
    assert len(found) == 1, output
    return Path(found[0])


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def summary(exp: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((exp / "summary.json").read_text(encoding="utf-8"))
    return data


def traces(exp: Path) -> dict[str, dict[str, Any]]:
    """traces.jsonl rows by case id."""
    return {row["case_id"]: row for row in jsonl(exp / "traces.jsonl")}


def stable_summary(exp: Path) -> dict[str, dict[str, Any]]:
    """trace_summary.jsonl rows by case id, without the keys that change every run."""
    rows = jsonl(exp / "trace_summary.jsonl")
    assert rows, exp
    assert VOLATILE & set(rows[0]), sorted(rows[0])  # the keys dropped are still there
    return {r["case_id"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in rows}


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle`` (UTF-8)."""
    data = needle.encode("utf-8")
    return [p for p in sorted(root.rglob("*")) if p.is_file() and data in p.read_bytes()]
