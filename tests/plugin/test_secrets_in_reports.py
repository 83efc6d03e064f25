"""No secret reaches any output of a run: artifacts, the console, the JUnit XML, our logs.

Each run here plants known secret values where a real run meets them: a non-``sk-`` shaped
``multi_turn.supervisor.api_key`` in simulation.yaml, a ``collector_api_key`` in
project.yaml, ``OPENAI_API_KEY`` in the environment, and an ``sk-proj-...`` key inside an
input. The supervisor is the real openai client talking to the loopback fake server, which
echoes those values back the way a model or a provider error would. Then every file of the
experiment folder, the JUnit XML and the captured console are searched for each value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli_helpers import describe, run_cli
from support.llm_server import CHAT, FakeLLMServer, chat_completion, llm_server, openai_error
from support.plugin_helpers import Project

__all__ = ["llm_server"]  # the fixture, imported for pytest

CONFIG_KEY = "local-key-1234567890"
COLLECTOR_KEY = "collector-key-5555555555"
ENV_KEY = "env-openai-key-9876543210"
INPUT_KEY = "sk-proj-" + "A1b2C3d4" * 5
SECRETS = (CONFIG_KEY, COLLECTOR_KEY, ENV_KEY, INPUT_KEY)

AGENT = """\
import os


def run(input_text, persona=None, conversation_state=None):
    if "explode" in input_text:
        raise ValueError(f"cannot use {os.environ['OPENAI_API_KEY']} for {input_text!r}")
    return f"echo: {input_text}"
"""

INPUTS = f"""\
generated_inputs:
  - input: "hello there"
    persona: novice_user
  - input: "explode with {INPUT_KEY} please"
    persona: novice_user
"""

SUPERVISOR = """\
multi_turn:
  enabled: true
  max_turns: 4
  supervisor:
    provider: openai
    model: local-model
    api_key: {key}
    base_url: {url}
"""


def decision(**fields: object) -> str:
    base = {
        "decision": "terminate",
        "next_user_message": None,
        "termination_reason": "user_satisfied",
        "closing_user_message": None,
    }
    return json.dumps({**base, **fields})


def make_project(project: Project, server: FakeLLMServer) -> Project:
    project.setup(
        agent=AGENT,
        inputs=INPUTS,
        extra=SUPERVISOR.format(key=CONFIG_KEY, url=server.openai_base_url),
    )
    project.write("configs/project.yaml", f"collector_api_key: {COLLECTOR_KEY}\n")
    return project


def run(project: Project, *args: str) -> tuple[pytest.RunResult, str]:
    """Run the experiment; the console (stdout + stderr) and the JUnit XML text."""
    junit = project.root / "report.xml"
    # In a subprocess: an in-process run would import openai and then drop it from
    # sys.modules at its end, leaving this process with two copies of its classes.
    result = project.pytester.runpytest_subprocess(
        "--fluxloop-config",
        project.config,
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        f"--junitxml={junit}",
        "-rA",
        "--log-cli-level=INFO",
        *args,
    )
    console = result.stdout.str() + result.stderr.str()
    return result, console + junit.read_text(encoding="utf-8")


def assert_no_secret(project: Project, printed: str) -> list[Path]:
    files = [p for p in project.only_experiment().rglob("*") if p.is_file()]
    assert files
    for secret in SECRETS:
        assert secret not in printed, secret
        for path in files:
            assert secret not in path.read_text(encoding="utf-8"), (secret, path.name)
    return files


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.delenv("FLUXLOOP_SUPERVISOR_API_KEY", raising=False)


@pytest.mark.usefixtures("env_key")
def test_no_secret_in_artifacts_console_junit_or_logs(
    project: Project, llm_server: FakeLLMServer
) -> None:
    # The supervisor first answers with something that is not a decision (logged, retried),
    # then talks about the keys; the agent echoes each user message into its output.
    llm_server.script(
        CHAT,
        chat_completion(f"not a decision, but {COLLECTOR_KEY}"),
        chat_completion(
            decision(
                decision="continue",
                next_user_message=f"my keys are {CONFIG_KEY} and {COLLECTOR_KEY}",
                termination_reason=None,
            )
        ),
        chat_completion(decision(closing_user_message=f"bye, {CONFIG_KEY}")),
    )
    result, printed = run(make_project(project, llm_server))
    result.assert_outcomes(passed=1, failed=1)
    assert llm_server.pending(CHAT) == 0
    # The texts that carried the secrets are there, with the secrets redacted.
    assert "FluxLoop case" in printed and "agent raised: ValueError: cannot use" in printed
    assert "output rejected" in printed  # the log line
    files = assert_no_secret(project, printed)
    traces = project.jsonl(project.only_experiment() / "traces.jsonl")
    echoed = [t for t in traces if t["success"]]
    assert len(echoed) == 1 and echoed[0]["multi_turn"]["turn_count"] == 2
    assert "***REDACTED***" in json.dumps(echoed[0]["conversation_state"])
    assert {p.name for p in files} >= {"trace_summary.jsonl", "traces.jsonl", "observations.jsonl"}


@pytest.mark.usefixtures("env_key")
def test_fatal_stop_reason_and_failure_report_are_redacted(
    project: Project, llm_server: FakeLLMServer
) -> None:
    # A provider error quoting a configured key that is not the supervisor's own (which the
    # client scrubs itself): it reaches the item's report and the "stopping the run" line.
    llm_server.script(
        CHAT, openai_error(401, f"Bad key; collector {COLLECTOR_KEY}", code="invalid_api_key")
    )
    project = make_project(project, llm_server)
    project.write("inputs/generated.yaml", 'generated_inputs:\n  - input: "hello there"\n')
    result, printed = run(project)
    result.assert_outcomes(failed=1)
    assert "stopping the run: SupervisorError.auth" in printed
    assert "supervisor failed" in printed
    assert_no_secret(project, printed)


@pytest.mark.usefixtures("env_key")
def test_marker_fixture_failure_text_is_redacted(project: Project) -> None:
    project.setup(agent=AGENT, inputs=INPUTS)
    project.write(
        "test_cases.py",
        f"""
        import pytest

        @pytest.mark.fluxloop(config={project.config!r})
        def test_case(fluxloop_result):
            assert fluxloop_result.success
        """,
    )
    junit = project.root / "report.xml"
    result = project.pytester.runpytest(
        "test_cases.py", "-p", "no:cacheprovider", f"--junitxml={junit}", "-rA"
    )
    result.assert_outcomes(passed=1, errors=1)  # pytest.fail in a fixture: an error
    printed = result.stdout.str() + result.stderr.str() + junit.read_text(encoding="utf-8")
    assert "agent raised: ValueError: cannot use" in printed
    assert ENV_KEY not in printed and INPUT_KEY not in printed


@pytest.mark.usefixtures("env_key")
def test_terminal_summary_is_redacted(project: Project) -> None:
    # The results line quotes the output folder, whatever it is called.
    output = f"out_{CONFIG_KEY}"
    project.setup(
        inputs='generated_inputs:\n  - input: "hello there"\n',
        extra=f"output_directory: {output}\nmulti_turn:\n  supervisor:\n"
        f"    api_key: {CONFIG_KEY}\n",
    )
    result = project.pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    printed = result.stdout.str() + result.stderr.str()
    assert "results: " in printed and "out_***REDACTED***" in printed
    assert CONFIG_KEY not in printed


@pytest.mark.slow
def test_cli_supervisor_api_key_of_any_shape_is_never_shown(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    cli_key = "cli-local-key-0987654321"
    project = tmp_path
    (project / "configs").mkdir()
    (project / "inputs").mkdir()
    (project / "configs" / "simulation.yaml").write_text(
        "name: cli_secrets\ndescription: d\nseed: 1\n"
        'runner:\n  target: "agent:run"\n  timeout_seconds: 30\n  max_retries: 0\n'
        + SUPERVISOR.format(key=CONFIG_KEY, url=llm_server.openai_base_url),
        encoding="utf-8",
    )
    (project / "inputs" / "generated.yaml").write_text(
        'generated_inputs:\n  - input: "hello there"\n', encoding="utf-8"
    )
    (project / "agent.py").write_text(AGENT, encoding="utf-8")
    llm_server.script(
        CHAT,
        chat_completion(
            decision(
                decision="continue",
                next_user_message=f"keys: {cli_key} / {CONFIG_KEY}",
                termination_reason=None,
            )
        ),
        chat_completion(decision()),
    )
    proc = run_cli(
        "run",
        "experiment",
        "-c",
        "configs/simulation.yaml",
        "-y",
        "--supervisor-api-key",
        cli_key,
        "--",
        "-rA",
        cwd=project,
    )
    assert proc.returncode == 0, describe(proc)
    # The option's key is the one sent; the file's key it replaced is still a secret.
    assert llm_server.requests(CHAT)[0].headers["authorization"] == f"Bearer {cli_key}"
    (exp_dir,) = sorted((project / "experiments").glob("exp_*"))
    outputs = [proc.stdout, proc.stderr]
    outputs += [p.read_text(encoding="utf-8") for p in exp_dir.iterdir() if p.is_file()]
    assert "keys: ***REDACTED*** / ***REDACTED***" in "".join(outputs)
    for text in outputs:
        assert cli_key not in text and CONFIG_KEY not in text
