"""The run's own secrets, whatever their shape, are scrubbed from everything it writes.

``LoadedConfig.secrets()`` collects every configured key; the files sink, the experiment's
redactor (failure reports, stop reasons) and our log lines use it. The plain-Python run here
drives the real openai client against the loopback fake server.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.engine_helpers import isolated_imports
from support.llm_server import CHAT, FakeLLMServer, chat_completion, llm_server

from pytest_fluxloop.config import Overrides, load_config
from pytest_fluxloop.redact import REDACTED, install_log_redaction
from pytest_fluxloop.run import Experiment

__all__ = ["llm_server"]  # the fixture, imported for pytest

CONFIG_KEY = "local-key-1234567890"
COLLECTOR_KEY = "collector-key-5555555555"
GENERATOR_KEY = "generator-key-4444444444"
JUDGE_TOKEN = "judge-token-3333333333"
CLI_KEY = "cli-key-2222222222"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OPENAI_API_KEY", "FLUXLOOP_SUPERVISOR_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with isolated_imports():
        yield


def write_project(root: Path, supervisor: str = "") -> Path:
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "inputs").mkdir(exist_ok=True)
    config = root / "configs" / "simulation.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            name: secrets
            description: secrets everywhere
            seed: 1
            runner:
              target: "secret_agent:run"
              timeout_seconds: 10
              max_retries: 0
            """
        )
        + textwrap.dedent(supervisor),
        encoding="utf-8",
    )
    (root / "configs" / "project.yaml").write_text(
        f"collector_api_key: {COLLECTOR_KEY}\n", encoding="utf-8"
    )
    (root / "configs" / "input.yaml").write_text(
        f"input_generation:\n  llm:\n    api_key: {GENERATOR_KEY}\n", encoding="utf-8"
    )
    (root / "configs" / "evaluation.yaml").write_text(
        textwrap.dedent(
            f"""\
            evaluators:
              - name: judge
                type: llm_judge
                enabled: false  # never called here; its settings are still redacted
                model_parameters: {{api_token: {JUDGE_TOKEN}, temperature: 0}}
            """
        ),
        encoding="utf-8",
    )
    (root / "inputs" / "generated.yaml").write_text(
        'inputs:\n  - input: "hello"\n    metadata: {persona: novice_user}\n', encoding="utf-8"
    )
    (root / "secret_agent.py").write_text(
        textwrap.dedent(
            """\
            import fluxloop


            @fluxloop.agent()
            def run(input_text, persona=None, conversation_state=None):
                return f"you said: {input_text}"
            """
        ),
        encoding="utf-8",
    )
    return config


def test_loaded_config_lists_every_configured_secret(tmp_path: Path) -> None:
    config = write_project(
        tmp_path, f"multi_turn:\n  supervisor:\n    api_key: '  {CONFIG_KEY} '\n"
    )
    secrets = load_config(config).secrets()
    assert {CONFIG_KEY, COLLECTOR_KEY, GENERATOR_KEY, JUDGE_TOKEN} <= secrets
    assert f"  {CONFIG_KEY} " in secrets  # as written, and as sent (stripped)
    assert not secrets & {"secrets", "gpt-4o-mini", "llm_judge", "judge"}
    # --supervisor-api-key replaces the file's key; both are real keys.
    overridden = load_config(config, Overrides(supervisor_api_key=CLI_KEY))
    assert overridden.simulation.multi_turn.supervisor.api_key == CLI_KEY
    assert {CLI_KEY, CONFIG_KEY} <= overridden.secrets()


def test_config_key_of_any_shape_is_redacted_in_every_artifact(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    supervisor = f"""\
        multi_turn:
          enabled: true
          max_turns: 4
          supervisor:
            provider: openai
            model: local-model
            api_key: {CONFIG_KEY}
            base_url: {llm_server.openai_base_url}
        """
    config = write_project(tmp_path, supervisor)
    llm_server.script(
        CHAT,
        chat_completion(
            json.dumps(
                {
                    "decision": "continue",
                    "next_user_message": f"use {CONFIG_KEY}, {COLLECTOR_KEY}, {JUDGE_TOKEN}",
                    "termination_reason": None,
                    "closing_user_message": None,
                }
            )
        ),
        chat_completion(
            json.dumps(
                {
                    "decision": "terminate",
                    "next_user_message": None,
                    "termination_reason": "user_satisfied",
                    "closing_user_message": f"bye {GENERATOR_KEY}",
                }
            )
        ),
    )
    summary = Experiment.load(config).run()
    assert (summary.total_traces, summary.successful) == (1, 1)
    # The real client sent the configured key.
    assert llm_server.requests(CHAT)[0].headers["authorization"] == f"Bearer {CONFIG_KEY}"
    (exp_dir,) = sorted((tmp_path / "experiments").glob("exp_*"))
    files = {p.name: p.read_text(encoding="utf-8") for p in exp_dir.iterdir() if p.is_file()}
    assert {"trace_summary.jsonl", "traces.jsonl", "observations.jsonl"} <= set(files)
    for secret in (CONFIG_KEY, COLLECTOR_KEY, GENERATOR_KEY, JUDGE_TOKEN):
        for name, text in files.items():
            assert secret not in text, (secret, name)
    # The agent's echo of the supervisor's message is there, redacted.
    assert f"you said: use {REDACTED}, {REDACTED}, {REDACTED}" in files["traces.jsonl"]


def test_experiment_redactor_knows_the_config_keys(tmp_path: Path) -> None:
    experiment = Experiment.load(
        write_project(tmp_path, f"multi_turn:\n  supervisor:\n    api_key: {CONFIG_KEY}\n")
    )
    text = experiment.redactor.redact_text(f"a {CONFIG_KEY} b {COLLECTOR_KEY} c")
    assert text == f"a {REDACTED} b {REDACTED} c"


def test_log_lines_of_the_package_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    secret = "log-secret-0123456789"
    install_log_redaction([secret])
    log = logging.getLogger("pytest_fluxloop.llm")
    with caplog.at_level(logging.INFO, logger="pytest_fluxloop"):
        log.info("output rejected: %s", f"the key is {secret}")
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            log.exception("failed with %r", secret)
        logging.getLogger("pytest_fluxloop").warning("top %s", secret)
    assert secret not in caplog.text
    assert "output rejected: the key is ***REDACTED***" in caplog.text
    assert "ValueError: bad ***REDACTED***" in caplog.text
    assert "top ***REDACTED***" in caplog.text


def test_experiment_load_installs_log_redaction(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Experiment.load(
        write_project(tmp_path, f"multi_turn:\n  supervisor:\n    api_key: {CONFIG_KEY}\n")
    )
    with caplog.at_level(logging.INFO, logger="pytest_fluxloop"):
        logging.getLogger("pytest_fluxloop.llm").info("quoted %s", COLLECTOR_KEY)
    assert COLLECTOR_KEY not in caplog.text and REDACTED in caplog.text
