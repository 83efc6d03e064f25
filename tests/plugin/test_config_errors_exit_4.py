"""A fatal provider configuration error is a configuration error: exit 4 (issue 8, item 10).

A local server without the requested model answers 404 ``model_not_found``; the run stops
once, exits 4 (pytest's ``USAGE_ERROR``) both under ``pytest --fluxloop-config`` and
``fluxloop run experiment``, and the server's own words reach the message. Real parts only:
the openai client against the loopback fake server, pytester, the CLI in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.cli_helpers import describe, run_cli
from support.llm_server import (
    CHAT,
    FakeLLMServer,
    Scripted,
    llm_server,
    openai_error,
    running_llm_server,
)
from support.plugin_helpers import Project

from pytest_fluxloop.config.models import SupervisorConfig
from pytest_fluxloop.supervisors import SupervisorError, create_supervisor
from pytest_fluxloop.supervisors.base import SupervisorRequest

__all__ = ["llm_server"]  # the fixture, imported for pytest

KEY = "sk-test-" + "k" * 40
OLLAMA_TEXT = 'model "llama9" not found, try pulling it first'
OLLAMA_404 = Scripted(status=404, body={"error": OLLAMA_TEXT})

MULTI_TURN = """\
multi_turn:
  enabled: true
  max_turns: 3
  supervisor:
    provider: openai
    model: llama9
    base_url: {base_url}
    api_key: {key}
"""


def _request() -> SupervisorRequest:
    return SupervisorRequest(
        case_id="c1",
        turns=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        turn_count=1,
        max_turns=3,
    )


def _supervisor_error(server: FakeLLMServer, response: Scripted) -> SupervisorError:
    server.script(CHAT, response)
    settings = SupervisorConfig(
        provider="openai", model="llama9", base_url=server.openai_base_url, api_key=KEY
    )
    with pytest.raises(SupervisorError) as info:
        create_supervisor(settings).decide(_request())
    assert KEY not in str(info.value)
    return info.value


# --------------------------------------------------------------------------- the message


@pytest.mark.parametrize(
    ("response", "kept"),
    [
        (OLLAMA_404, OLLAMA_TEXT),  # Ollama's native shape: "error" is a string
        (openai_error(404, "The model `llama9` does not exist"), "The model `llama9` does not"),
        (Scripted(status=404, body="404 page not found"), "404 page not found"),  # raw text
        (Scripted(status=404, body={"detail": "no route /v1/chat"}), "no route /v1/chat"),
    ],
    ids=["string-error", "error-message", "text-body", "other-json"],
)
def test_server_error_text_is_kept(
    llm_server: FakeLLMServer, response: Scripted, kept: str
) -> None:
    error = _supervisor_error(llm_server, response)
    assert (error.code, error.fatal) == ("model_not_found", True)
    assert kept in str(error), str(error)
    assert "Error code: 404" not in str(error)  # the SDK's words only when the server has none


def test_server_error_text_is_redacted_and_shortened(llm_server: FakeLLMServer) -> None:
    text = f"no model; your key {KEY} is fine " + "x" * 2000
    error = _supervisor_error(llm_server, Scripted(status=404, body={"error": text}))
    assert "no model; your key" in str(error)
    assert KEY not in str(error)
    assert len(str(error)) < 1200


# --------------------------------------------------------------------------- exit 4


def _summary(exp_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((exp_dir / "summary.json").read_text(encoding="utf-8"))
    return data


def test_pytest_model_not_found_exits_4(pytester: pytest.Pytester) -> None:
    with running_llm_server() as server:
        server.script(CHAT, OLLAMA_404)
        project = Project(pytester).setup(
            extra=MULTI_TURN.format(base_url=server.openai_base_url, key=KEY)
        )
        result = pytester.runpytest("--fluxloop-config", project.config, "-p", "no:cacheprovider")
        calls = len(server.requests(CHAT))
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert calls == 1  # stopped once, not once per case
    result.stdout.fnmatch_lines(["*stopping the run: SupervisorError.model_not_found*llama9*"])
    assert OLLAMA_TEXT in result.stdout.str()
    summary = _summary(project.only_experiment())
    # Cases were left unrun: resumable once the model is pulled.
    assert (summary["status"], summary["exit_code"], summary["total_traces"]) == (
        "interrupted",
        4,
        1,
    )


@pytest.mark.slow
def test_pytest_xdist_model_not_found_exits_4(pytester: pytest.Pytester) -> None:
    """Under xdist the stop happens in a worker; the controller still exits 4 (not xdist's
    2) and its summary counts the run as stopped early."""
    with running_llm_server() as server:
        server.script(CHAT, *[OLLAMA_404] * 6)
        project = Project(pytester).setup(
            iterations=2, extra=MULTI_TURN.format(base_url=server.openai_base_url, key=KEY)
        )
        result = pytester.runpytest_subprocess(
            "--fluxloop-config", project.config, "-p", "no:cacheprovider", "-n", "2"
        )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    summary = _summary(project.only_experiment())
    assert (summary["status"], summary["exit_code"]) == ("interrupted", 4)
    assert summary["total_traces"] < 6


def test_pytest_case_failure_still_exits_1(pytester: pytest.Pytester) -> None:
    """Only a fatal configuration stop becomes exit 4; a failing agent stays a failed case."""
    project = Project(pytester).setup()
    result = pytester.runpytest("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _summary(project.only_experiment())["status"] == "complete"


@pytest.mark.slow
def test_cli_model_not_found_exits_4(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "inputs").mkdir()
    (tmp_path / "agent.py").write_text("def run(input_text):\n    return 'ok: ' + input_text\n")
    (tmp_path / "inputs" / "generated.yaml").write_text(
        'inputs:\n  - input: "one"\n  - input: "two"\n'
    )
    with running_llm_server() as server:
        (tmp_path / "configs" / "simulation.yaml").write_text(
            'name: demo\ndescription: d\nrunner:\n  target: "agent:run"\n'
            + MULTI_TURN.format(base_url=server.openai_base_url, key=KEY)
        )
        server.script(CHAT, OLLAMA_404)
        proc = run_cli("run", "experiment", "-y", cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert OLLAMA_TEXT in proc.stdout, describe(proc)
    assert "model_not_found" in proc.stdout, describe(proc)
    assert KEY not in proc.stdout + proc.stderr
    (exp_dir,) = sorted((tmp_path / "experiments").glob("exp_*"))
    assert _summary(exp_dir)["exit_code"] == 4
