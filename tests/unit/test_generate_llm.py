"""LLM mode of ``fluxloop generate inputs`` against a scripted OpenAI-compatible server.

The real ``openai`` client makes real HTTP requests to 127.0.0.1 (``OPENAI_BASE_URL``);
only the server is scripted.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.config_helpers import INPUT, SIMULATION, write_project, yaml_text
from support.llm_server import (
    CHAT,
    FakeLLMServer,
    Recorded,
    Scripted,
    chat_completion,
    llm_server,
    openai_error,
)

from pytest_fluxloop.config import LoadedConfig, load_config
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.generate import (
    GenerationError,
    GenerationOptions,
    GenerationResult,
    GeneratorOutputWarning,
    generate_inputs,
    job_seed,
    write_inputs_file,
)
from pytest_fluxloop.plan.cases import plan_experiment

__all__ = ["llm_server"]  # the fixture, imported for pytest

KEY = "sk-gen-0123456789abcdefghijklmnop"
MODEL = "test-model"
BASE_INPUTS = [{"input": "How do I start?"}, {"input": "Where is my order?"}]
PERSONAS = [
    {
        "name": "novice",
        "description": "First-time customer",
        "characteristics": ["impatient", "curious"],
        "expertise_level": "beginner",
        "goals": ["finish onboarding"],
        "language": "de",
    }
]
ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "FLUXLOOP_SUPERVISOR_API_KEY", "ANTHROPIC_API_KEY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def _project(root: Path, **input_cfg: Any) -> LoadedConfig:
    llm = {"provider": "openai", "model": MODEL, **input_cfg.pop("llm", {})}
    config = {
        "base_inputs": BASE_INPUTS,
        "personas": PERSONAS,
        "variation_strategies": ["rephrase", "verbose"],
        "variation_count": 2,
        "variation_temperature": 0.9,
        "input_generation": {"mode": "llm", "llm": llm},
        **input_cfg,
    }
    config = {key: value for key, value in config.items() if value is not None}
    files = {
        SIMULATION: yaml_text({"name": "gen", "runner": {"target": "my_agent:run"}}),
        INPUT: yaml_text(config),
    }
    return load_config(write_project(root, files))


def _options(cfg: LoadedConfig, server: FakeLLMServer, **kwargs: Any) -> GenerationOptions:
    """Options pointed at the fake server, with fast retries."""
    options = GenerationOptions.from_config(
        cfg, api_key=KEY, base_url=server.openai_base_url, **kwargs
    )
    assert options.llm is not None
    return replace(options, llm=replace(options.llm, retry_base_delay=0.01, timeout=10.0))


def answer(*texts: str) -> Scripted:
    return chat_completion(json.dumps({"variations": [{"input": text} for text in texts]}))


def _user(request: Recorded) -> str:
    messages = request.json()["messages"]
    return str(messages[1]["content"])


def _job_of(request: Recorded) -> tuple[str, str]:
    """(base input, strategy) of a request, read from the default user prompt."""
    user = _user(request)
    base = user.split("Base message:\n", 1)[1].split("\n", 1)[0]
    strategy = re.search(r"Strategy \((\w+)\)", user)
    assert strategy is not None
    return base, strategy.group(1)


class RespondingServer(FakeLLMServer):
    """Answers each request from its content (so an answer names its job), after a delay
    chosen per request; counts the requests in flight."""

    def __init__(self, respond: Callable[[Recorded], tuple[Scripted, float]]) -> None:
        super().__init__()
        self.respond = respond
        self.in_flight = 0
        self.max_in_flight = 0
        self.finished: list[tuple[str, str]] = []
        self._count_lock = threading.Lock()

    def _next(self, request: Recorded) -> Scripted:
        with self._lock:
            self._requests.append(request)
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            scripted, delay = self.respond(request)
            time.sleep(delay)
            return scripted
        finally:
            with self._count_lock:
                self.in_flight -= 1
                self.finished.append(_job_of(request))


def _echo(delays: dict[tuple[str, str], float]) -> Callable[[Recorded], tuple[Scripted, float]]:
    def respond(request: Recorded) -> tuple[Scripted, float]:
        base, strategy = _job_of(request)
        texts = [f"{base} [{strategy} {n}]" for n in (1, 2)]
        return answer(*texts), delays.get((base, strategy), 0.0)

    return respond


@pytest.fixture
def responding() -> Iterator[Callable[..., RespondingServer]]:
    servers: list[RespondingServer] = []

    def start(respond: Callable[[Recorded], tuple[Scripted, float]]) -> RespondingServer:
        server = RespondingServer(respond)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --------------------------------------------------------------------------- requests


def test_one_request_per_job_and_entries_in_job_order(
    tmp_path: Path, responding: Callable[..., RespondingServer]
) -> None:
    cfg = _project(tmp_path)
    jobs = [(b["input"], s) for b in BASE_INPUTS for s in ("rephrase", "verbose")]
    # The first jobs answer last: arrival order is the reverse of job order.
    delays = {job: 0.15 * (len(jobs) - i) for i, job in enumerate(jobs)}
    server = responding(_echo(delays))
    options = _options(cfg, server, concurrency=4)
    progress: list[tuple[int, int]] = []
    result = generate_inputs(cfg, options, progress=lambda d, t: progress.append((d, t)))
    assert sorted(_job_of(r) for r in server.requests(CHAT)) == sorted(jobs)
    assert server.finished[-1] == jobs[0]  # the first job's answer came last
    assert progress == [(n, 4) for n in range(1, 5)]
    assert [(e["strategy"], e["input"]) for e in result.entries] == [
        ("base", "How do I start?"),
        ("rephrase", "How do I start? [rephrase 1]"),
        ("rephrase", "How do I start? [rephrase 2]"),
        ("verbose", "How do I start? [verbose 1]"),
        ("verbose", "How do I start? [verbose 2]"),
        ("base", "Where is my order?"),
        ("rephrase", "Where is my order? [rephrase 1]"),
        ("rephrase", "Where is my order? [rephrase 2]"),
        ("verbose", "Where is my order? [verbose 1]"),
        ("verbose", "Where is my order? [verbose 2]"),
    ]
    assert {e["persona"] for e in result.entries} == {"novice"}


def test_the_request_describes_the_job(
    tmp_path: Path, responding: Callable[..., RespondingServer]
) -> None:
    cfg = _project(tmp_path, variation_strategies=["rephrase"], base_inputs=BASE_INPUTS[:1])
    server = responding(_echo({}))
    generate_inputs(cfg, _options(cfg, server))
    (request,) = server.requests(CHAT)
    body = request.json()
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == MODEL
    assert body["temperature"] == 0.9
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["variations"]
    system, user = (m["content"] for m in body["messages"])
    assert "test inputs for an AI assistant" in system
    for text in (
        "How do I start?",
        "name: novice",
        "First-time customer",
        "impatient; curious",
        "expertise: beginner",
        "finish onboarding",
        "language: de",
        "Strategy (rephrase)",
        "Write 2 variation(s).",
    ):
        assert text in user


def test_entry_metadata_carries_the_provenance(
    tmp_path: Path, responding: Callable[..., RespondingServer]
) -> None:
    cfg = _project(tmp_path, base_inputs=BASE_INPUTS[:1], variation_strategies=["verbose"])
    server = responding(_echo({}))
    result = generate_inputs(cfg, _options(cfg, server, seed=5))
    entry = result.entries[1]
    meta = entry["metadata"]
    assert meta == {
        "operator": "llm",
        "provider": "openai",
        "model": MODEL,
        "prompt_hash": meta["prompt_hash"],
        "temperature": 0.9,
        "seed": job_seed(5, 0, "novice", "verbose"),
        "source_input": "How do I start?",
        "base_index": 0,
        "strategy": "verbose",
    }
    assert re.fullmatch(r"[0-9a-f]{16}", meta["prompt_hash"])
    config = result.generation_config
    assert config["mode"] == "llm"
    assert config["llm"] == {
        "provider": "openai",
        "model": MODEL,
        "temperature": 0.9,
        "variations_per_request": 2,
    }
    assert result.stats["llm"]["calls"] == 1
    assert result.stats["llm"]["tokens"]["total_tokens"] == 120


def test_concurrency_cap_is_respected(
    tmp_path: Path, responding: Callable[..., RespondingServer]
) -> None:
    cfg = _project(
        tmp_path,
        variation_strategies=["rephrase", "verbose", "concise", "typo"],
    )
    server = responding(lambda request: (_echo({})(request)[0], 0.05))
    generate_inputs(cfg, _options(cfg, server, concurrency=2))
    assert len(server.requests(CHAT)) == 8
    assert 1 <= server.max_in_flight <= 2


def test_batch_size_sets_the_default_concurrency(tmp_path: Path) -> None:
    cfg = _project(tmp_path, llm={"batch_size": 3})
    options = GenerationOptions.from_config(cfg, api_key=KEY)
    assert options.concurrency == 3
    assert GenerationOptions.from_config(cfg, api_key=KEY, concurrency=5).concurrency == 5


def test_limit_stops_early(tmp_path: Path, responding: Callable[..., RespondingServer]) -> None:
    cfg = _project(tmp_path, variation_strategies=["rephrase", "verbose", "concise", "typo"])
    server = responding(_echo({}))
    progress: list[tuple[int, int]] = []
    result = generate_inputs(
        cfg,
        _options(cfg, server, concurrency=1, limit=3, include_base=False),
        progress=lambda d, t: progress.append((d, t)),
    )
    assert [e["input"] for e in result.entries] == [
        "How do I start? [rephrase 1]",
        "How do I start? [rephrase 2]",
        "How do I start? [verbose 1]",
    ]
    assert len(server.requests(CHAT)) <= 3  # of 8 jobs
    assert result.total_before_limit is None
    assert result.next_offset == 3
    assert progress[-1] == (8, 8)


# --------------------------------------------------------------------------- validation, retries


def test_invalid_json_is_retried_then_validated(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    cfg = _project(tmp_path, base_inputs=BASE_INPUTS[:1], variation_strategies=["rephrase"])
    llm_server.script(
        CHAT,
        chat_completion("Sure! Here are some variations: first, second"),
        chat_completion(json.dumps({"variations": [{"input": "  "}]})),
        answer("Wie fange ich an?", "How can I get going?"),
    )
    with pytest.warns(GeneratorOutputWarning, match="does not follow the requested"):
        result = generate_inputs(cfg, _options(cfg, llm_server))
    assert [e["input"] for e in result.entries] == [
        "How do I start?",
        "Wie fange ich an?",
        "How can I get going?",
    ]
    assert len(llm_server.requests(CHAT)) == 3
    assert result.stats["llm"]["calls"] == 3


def test_a_server_error_is_retried(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    cfg = _project(tmp_path, base_inputs=BASE_INPUTS[:1], variation_strategies=["rephrase"])
    llm_server.script(
        CHAT,
        openai_error(500, "The server had an error", type="server_error"),
        answer("How can I begin?", "Where do I begin?"),
    )
    result = generate_inputs(cfg, _options(cfg, llm_server))
    assert len(result.entries) == 3
    assert len(llm_server.requests(CHAT)) == 2


def test_a_bad_key_stops_the_generation_with_a_clear_error(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    cfg = _project(tmp_path)  # 4 jobs
    llm_server.script(
        CHAT,
        openai_error(401, "Incorrect API key provided", code="invalid_api_key"),
        *[answer("never", "used")] * 4,
    )
    options = _options(cfg, llm_server, concurrency=1)
    with pytest.raises(GenerationError) as info:
        generate_inputs(cfg, options)
    message = str(info.value)
    assert message.startswith("input generation stopped: generator auth")
    assert "input_generation.llm.api_key or OPENAI_API_KEY" in message
    assert KEY not in message
    assert info.value.llm_error is not None and info.value.llm_error.fatal
    assert len(llm_server.requests(CHAT)) == 1  # no request after the fatal one
    assert not options.output.exists()


def test_a_failed_job_is_reported_and_the_rest_is_kept(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    cfg = _project(tmp_path, base_inputs=BASE_INPUTS[:1])  # 2 jobs
    bad = openai_error(400, "prompt rejected", code="bad_prompt")
    llm_server.script(CHAT, bad, answer("How can I begin?"))
    result = generate_inputs(cfg, _options(cfg, llm_server, concurrency=1))
    assert [e["input"] for e in result.entries] == ["How do I start?", "How can I begin?"]
    (failed,) = result.stats["failed_jobs"]
    assert failed["strategy"] == "rephrase"
    assert "bad_request" in failed["error"]
    (short,) = result.stats["short_jobs"]
    assert short["reason"] == "the model wrote 1 of 2"
    assert any("1 of 2 generation job(s) failed" in notice for notice in result.notices)


def test_no_api_key_is_an_error_before_any_request(
    tmp_path: Path, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.openai_base_url)
    cfg = _project(tmp_path)
    with pytest.raises(ConfigError) as info:
        GenerationOptions.from_config(cfg)
    assert "OPENAI_API_KEY" in str(info.value)
    assert "input_generation.llm.api_key" in str(info.value)
    assert llm_server.requests() == []


def test_key_and_base_url_from_the_environment(
    tmp_path: Path, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.openai_base_url)
    cfg = _project(tmp_path, base_inputs=BASE_INPUTS[:1], variation_strategies=["concise"])
    options = GenerationOptions.from_config(cfg)
    assert options.llm is not None
    assert options.llm.base_url == llm_server.openai_base_url
    assert KEY not in repr(options)
    llm_server.script(CHAT, answer("Start?", "Begin?"))
    result = generate_inputs(cfg, options)
    assert len(result.entries) == 3
    assert llm_server.requests(CHAT)[0].headers["authorization"] == f"Bearer {KEY}"


def test_empty_answers_are_an_error_not_an_empty_file(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    cfg = _project(tmp_path, base_inputs=BASE_INPUTS[:1], variation_strategies=["rephrase"])
    llm_server.script(CHAT, *[chat_completion(json.dumps({"variations": []}))] * 3)
    options = _options(cfg, llm_server)
    with pytest.raises(GenerationError) as info:
        generate_inputs(cfg, options)
    message = str(info.value)
    assert message.startswith("generation produced no inputs: every job failed (1)")
    assert "the answer holds no variations" in message
    assert len(llm_server.requests(CHAT)) == 3  # bounded retries
    assert not options.output.exists()


def test_answers_equal_to_the_base_input_are_removed(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    cfg = _project(tmp_path, base_inputs=BASE_INPUTS[:1], variation_strategies=["rephrase"])
    llm_server.script(CHAT, answer("how do I   start?", "HOW DO I START?"))
    with pytest.raises(GenerationError) as info:
        generate_inputs(cfg, _options(cfg, llm_server))
    assert "2 equal to a base input" in str(info.value)


# --------------------------------------------------------------------------- settings


def test_prompt_settings_are_used(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    cfg = _project(
        tmp_path,
        base_inputs=BASE_INPUTS[:1],
        variation_strategies=["custom"],
        llm={
            "system_prompt": "You are a QA writer.",
            "user_prompt_template": "Vary '{input}' as {persona_name}: {strategy} ({count})",
            "strategy_prompts": {"custom": "Make it sound like a pirate."},
            "temperature": 0.3,
            "max_outputs": 1,
            "max_tokens": 200,
            "top_p": 0.5,
        },
    )
    options = _options(cfg, llm_server)
    assert any("max_outputs is 1" in notice for notice in options.notices)
    assert any("top_p is not sent" in notice for notice in options.notices)
    llm_server.script(CHAT, answer("Arr, how do I start?", "ignored second"))
    result = generate_inputs(cfg, options)
    body = llm_server.requests(CHAT)[0].json()
    system, user = (m["content"] for m in body["messages"])
    assert system == "You are a QA writer."
    assert user.startswith("Vary 'How do I start?' as novice: Make it sound like a pirate. (1)")
    assert body["temperature"] == 0.3
    assert "max_tokens" not in body  # the openai client sends no output limit: a notice says so
    assert any("max_tokens is not sent to provider openai" in n for n in options.notices)
    assert [e["input"] for e in result.entries] == ["How do I start?", "Arr, how do I start?"]


def test_llm_setting_errors(tmp_path: Path) -> None:
    cfg = _project(tmp_path / "custom", variation_strategies=["custom"])
    with pytest.raises(GenerationError, match=r"strategy_prompts\.custom"):
        GenerationOptions.from_config(cfg, api_key=KEY)
    cfg = _project(tmp_path / "template", llm={"user_prompt_template": "Vary {text}"})
    with pytest.raises(GenerationError, match=r"unknown placeholder \{text\}"):
        GenerationOptions.from_config(cfg, api_key=KEY)
    cfg = _project(tmp_path / "provider", llm={"provider": "mock"})
    with pytest.raises(GenerationError, match="provider 'mock' is not supported"):
        GenerationOptions.from_config(cfg, api_key=KEY)
    cfg = _project(tmp_path / "disabled", llm={"enabled": False})
    with pytest.raises(GenerationError, match="enabled is false"):
        GenerationOptions.from_config(cfg, api_key=KEY)
    # The same config generates offline without any key.
    assert GenerationOptions.from_config(cfg, mode="deterministic").llm is None


def test_the_written_file_runs(tmp_path: Path, responding: Callable[..., RespondingServer]) -> None:
    cfg = _project(tmp_path)
    server = responding(_echo({}))
    options = _options(cfg, server)
    result: GenerationResult = generate_inputs(cfg, options)
    write_inputs_file(result, options.output, overwrite=False)
    data = yaml.safe_load(options.output.read_text(encoding="utf-8"))
    assert list(data) == ["inputs", "stats", "generation_config"]
    plan = plan_experiment(load_config(cfg.config_path))
    assert plan.total == len(result.entries)
