"""An agent's LLM calls, tools and LangGraph steps captured per case, as a new user sees them.

The agent is ordinary code: ``@fluxloop.agent`` and ``@fluxloop.tool`` decorators, the real
``openai`` client (one plain and one streamed chat completion), the real ``anthropic``
client, and a small LangGraph ``StateGraph`` with a fake chat model, all against an
OpenAI/Anthropic-compatible server on 127.0.0.1 that answers from each request (so cases
running at once get their own answers). It runs under ``parallel_runs: 10`` with ``fluxloop
run experiment`` and under ``pytest -n 2``; every trace must hold exactly its own
observations, with the right parents, models and token counts, and no API key reaches a file.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli_helpers import describe, run_child_pytest, run_cli
from support.echo_llm import EchoServer, running_echo_server, words

pytestmark = pytest.mark.slow

OPENAI_KEY = "sk-proj-e2eCaptureKey0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-api03-e2eCaptureKey0123456789"

AGENT = '''\
"""A support agent: tools that call OpenAI, an Anthropic call, and a LangGraph workflow."""

import os

import anthropic
import openai
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

import fluxloop

BASE = os.environ["ECHO_LLM_URL"]
oai = openai.OpenAI(base_url=BASE + "/v1", api_key=os.environ["OPENAI_API_KEY"], max_retries=0)
claude = anthropic.Anthropic(base_url=BASE, api_key=os.environ["ANTHROPIC_API_KEY"], max_retries=0)


class State(TypedDict):
    text: str


def build_graph(text):
    model = GenericFakeChatModel(messages=iter([AIMessage(content="planned " + text)]))

    def plan(state):
        return {"text": model.invoke(state["text"]).content}

    def answer(state):
        return {"text": state["text"] + "!"}

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("answer", answer)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


@fluxloop.tool()
def lookup(question):
    reply = oai.chat.completions.create(
        model="gpt-lookup", messages=[{"role": "user", "content": question}]
    )
    return reply.choices[0].message.content


@fluxloop.tool()
def summarise(question):
    stream = oai.chat.completions.create(
        model="gpt-stream",
        messages=[{"role": "user", "content": question}],
        stream=True,
        stream_options={"include_usage": True},
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@fluxloop.agent()
def run(input_text):
    found = lookup(input_text)
    short = summarise(input_text)
    message = claude.messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": input_text}]
    )
    planned = build_graph(input_text).invoke({"text": input_text})["text"]
    return " | ".join([found, short, message.content[0].text, planned])
'''

INPUTS = [f"question number {i} about order {100 + i}" for i in range(10)]


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with running_echo_server() as server:
        yield server


def _project(root: Path) -> Path:
    (root / "support_agent.py").write_text(AGENT, encoding="utf-8")
    (root / "configs").mkdir()
    simulation = {
        "name": "capture_e2e",
        "iterations": 1,
        "parallel_runs": 10,
        "runner": {"target": "support_agent:run", "timeout_seconds": 60, "max_retries": 0},
        "output_directory": "experiments",
    }
    (root / "configs" / "simulation.yaml").write_text(yaml.safe_dump(simulation), "utf-8")
    (root / "inputs").mkdir()
    inputs = {"inputs": [{"input": text} for text in INPUTS]}
    (root / "inputs" / "generated.yaml").write_text(yaml.safe_dump(inputs), "utf-8")
    return root


def _env(echo: EchoServer) -> dict[str, str]:
    return {
        "ECHO_LLM_URL": echo.url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    }


def _pytest(root: Path, echo: EchoServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest --fluxloop-config configs/simulation.yaml ARGS`` in a child process."""
    config = ("--fluxloop-config", "configs/simulation.yaml")
    return run_child_pytest(*config, *args, cwd=root, env=_env(echo))


def _traces(root: Path) -> list[dict[str, Any]]:
    folders = sorted((root / "experiments").glob("exp_*"))
    assert len(folders) == 1, folders
    lines = (folders[0] / "traces.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _check_traces(root: Path) -> None:
    traces = _traces(root)
    assert sorted(t["input"] for t in traces) == sorted(INPUTS)
    for trace in traces:
        assert trace["status"] == "success", trace["error"]
        _check_trace(trace)
    # Nothing secret on disk, anywhere in the experiment.
    for path in (root / "experiments").rglob("*"):
        if path.is_file():
            text = path.read_text("utf-8", errors="replace")
            assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text, path


def _check_trace(trace: dict[str, Any]) -> None:
    text = trace["input"]
    observations = trace["observations"]
    assert {o["trace_id"] for o in observations} == {trace["trace_id"]}
    starts = {o["observation_id"]: o for o in observations if o["type"] == "span_start"}
    ends = [o for o in observations if o["type"] == "span_end"]
    assert {o["observation_id"] for o in ends} == set(starts)  # every span ended once
    assert len(ends) == len(starts)
    spans = {o["name"]: o for o in starts.values() if o["kind"] in ("agent", "tool")}
    generations = {o["metadata"]["model"]: o for o in ends if o["kind"] == "generation"}
    # The three provider calls and LangChain's model call, each recorded once, as the agent's.
    assert set(generations) >= {"gpt-lookup", "gpt-stream", "claude-test"}
    assert sum(1 for o in ends if o["kind"] == "generation") == 4
    assert {o["role"] for o in ends if o["kind"] == "generation"} == {"agent"}
    reply = f"echo: {text}"
    for model, end in generations.items():
        start = starts[end["observation_id"]]
        if model == "gpt-lookup":
            assert start["parent_id"] == spans["lookup"]["observation_id"]
        if model == "gpt-stream":
            assert start["parent_id"] == spans["summarise"]["observation_id"]
            assert end["metadata"]["stream"] is True and end["metadata"]["ttft_ms"] >= 0
        if model == "claude-test":
            assert start["parent_id"] == spans["run"]["observation_id"]
        if model in ("gpt-lookup", "gpt-stream", "claude-test"):
            assert reply in json.dumps(end["output"])  # its own case's answer, no other's
            usage = end["metadata"]["usage"]
            assert usage["input_tokens"] == words(text)
            assert usage["output_tokens"] == words(reply)
            assert end["metadata"]["usage_source"] == "response"
    # The LangGraph nodes, as chain observations with their names and steps.
    nodes = {
        o["metadata"].get("langgraph_node"): o
        for o in starts.values()
        if o["kind"] == "chain" and o["metadata"].get("langgraph_node")
    }
    assert {"plan", "answer"} <= set(nodes)
    assert (
        nodes["plan"]["metadata"]["langgraph_step"] < nodes["answer"]["metadata"]["langgraph_step"]
    )
    # The trace's token usage sums its generations: unknown counts are not zeros.
    agent = trace["token_usage"]["agent"]
    assert agent["calls"] == 4
    without = sum(1 for o in ends if o["kind"] == "generation" and o["metadata"]["usage"] is None)
    assert agent["calls_without_usage"] == without
    assert agent["input_tokens"] == 3 * words(text) + (0 if without else words(text))
    assert trace["observations_dropped"] == 0


def test_parallel_runs_keep_each_case_s_observations(tmp_path: Path, echo: EchoServer) -> None:
    root = _project(tmp_path)
    proc = run_cli("run", "experiment", "--yes", cwd=root, env=_env(echo))
    assert proc.returncode == 0, describe(proc)
    _check_traces(root)
    summary = json.loads(next((root / "experiments").glob("exp_*/summary.json")).read_text())
    assert summary["token_usage"]["agent"]["calls"] == 40


def test_xdist_workers_keep_each_case_s_observations(tmp_path: Path, echo: EchoServer) -> None:
    pytest.importorskip("xdist")
    root = _project(tmp_path)
    proc = _pytest(root, echo, "-n", "2")
    assert proc.returncode == 0, describe(proc)
    _check_traces(root)


def test_capture_llm_off_records_no_provider_call(tmp_path: Path, echo: EchoServer) -> None:
    root = _project(tmp_path)
    proc = _pytest(root, echo, "--fluxloop-no-capture-llm")
    assert proc.returncode == 0, describe(proc)
    for trace in _traces(root):
        providers = {
            o["metadata"].get("provider")
            for o in trace["observations"]
            if o["kind"] == "generation" and o["type"] == "span_end"
        }
        # The LangGraph model is LangChain's (capture.langchain stays on); no provider call.
        assert providers and not providers & {"openai", "anthropic"}
        assert trace["token_usage"]["agent"]["calls"] == 1
