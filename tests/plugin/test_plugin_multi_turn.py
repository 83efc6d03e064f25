"""Multi-turn end to end: pytest options, the CLI, the supervisor hook and the example project."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli_helpers import CLI_TIMEOUT_S, clean_env, describe, run_cli
from support.llm_server import CHAT, chat_completion, running_llm_server
from support.plugin_helpers import Project

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "support_agent_multi_turn"

INPUTS = """\
inputs:
  - input: "Hi, I need to change my flight"
    metadata:
      persona: business_traveler
      persona_description: "Frequent business traveler who values efficiency"
"""

AGENT = """\
def run(input_text, persona=None, conversation_state=None, auto_approve=False):
    turns = len(conversation_state["turns"]) if conversation_state else 0
    return f"[{persona}|approve={auto_approve}|turns={turns}] re: {input_text}"
"""

MOCK = """\
multi_turn:
  enabled: {enabled}
  max_turns: 8
  supervisor:
    provider: {provider}
    metadata:
      scripted_questions:
        - "Can you also upgrade my seat?"
        - "Window, please."
        - "What about lounge access?"
        - "And extra baggage?"
      mock_reason: user_satisfied
      mock_closing: "Perfect, thank you!"
"""

PROJECT_YAML = """\
metadata:
  service_context: "SWISS Airlines customer support."
"""


def make_project(project: Project, *, enabled: bool = True, provider: str = "mock") -> Project:
    project.setup(
        inputs=INPUTS,
        agent=AGENT,
        extra=MOCK.format(enabled=str(enabled).lower(), provider=provider),
    )
    project.write("configs/project.yaml", PROJECT_YAML)
    return project


def traces(root: Path) -> list[dict[str, Any]]:
    (exp,) = sorted((root / "experiments").glob("exp_*"))
    return [json.loads(line) for line in (exp / "traces.jsonl").read_text().splitlines()]


def run(project: Project, *args: str) -> pytest.RunResult:
    return project.pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider", *args
    )


# --------------------------------------------------------------------------- pytest


def test_trace_has_the_seed_004_multi_turn_shape(project: Project) -> None:
    make_project(project)
    result = run(project)
    result.assert_outcomes(passed=1)
    (trace,) = traces(project.root)
    assert trace["success"] is True and trace["persona"] == "business_traveler"
    assert trace["input"] == "Hi, I need to change my flight"
    assert trace["multi_turn"] == {
        "enabled": True,
        "turn_count": 5,
        "termination_reason": "user_satisfied",
    }
    state = trace["conversation_state"]
    assert set(state) == {"turns", "metadata", "context"}
    assert state["context"] == {
        "persona": "business_traveler",
        "service_context": "SWISS Airlines customer support.",
    }
    turns = state["turns"]
    assert all(set(t) == {"role", "content"} for t in turns)
    assert [t["role"] for t in turns] == ["user", "assistant"] * 5 + ["user"]
    assert turns[2]["content"] == "Can you also upgrade my seat?"
    assert turns[-1]["content"] == "Perfect, thank you!"
    assert trace["output"] == turns[-2]["content"]  # the agent's last reply
    assert trace["output"].endswith("turns=9] re: And extra baggage?")
    assert state["metadata"]["persona_description"].startswith("Frequent business")
    assert state["metadata"]["supervisor"]["model"] == "mock"
    (exp,) = project.experiments()
    observations = project.jsonl(exp / "observations.jsonl")
    kinds = [o["type"] for o in observations]
    assert kinds.count("turn") == 5 and kinds.count("supervisor_decision") == 5


def test_pytest_options_override_the_config(project: Project) -> None:
    make_project(project, enabled=False, provider="openai")
    result = run(
        project,
        "--fluxloop-multi-turn",
        "--fluxloop-max-turns=3",
        "--fluxloop-supervisor-provider=mock",
        "--fluxloop-persona-override=expert_user",
        "--fluxloop-manual-approve-tools",
    )
    result.assert_outcomes(passed=1)
    (trace,) = traces(project.root)
    assert trace["multi_turn"] == {
        "enabled": True,
        "turn_count": 3,
        "termination_reason": "max_turns_reached",
    }
    assert trace["conversation_state"]["context"]["persona"] == "expert_user"
    assert trace["output"].startswith("[expert_user|approve=False|turns=5]")


def test_no_multi_turn_option_runs_single_turn(project: Project) -> None:
    make_project(project)
    run(project, "--fluxloop-no-multi-turn").assert_outcomes(passed=1)
    (trace,) = traces(project.root)
    assert trace["multi_turn"] is None and trace["conversation_state"] is None
    assert trace["output"].startswith("[business_traveler|approve=True|turns=1]")


def test_supervisor_hook_in_conftest_is_used(project: Project) -> None:
    make_project(project, provider="openai")  # no key needed: the hook replaces it
    project.write(
        "conftest.py",
        """
        from pytest_fluxloop.supervisors import SupervisorDecision, SupervisorReply

        SEEN = []


        class Custom:
            def decide(self, request):
                SEEN.append(request.turn_count)
                if request.turn_count < 2:
                    decision = SupervisorDecision(
                        decision="continue", next_user_message=f"custom {request.persona}"
                    )
                else:
                    decision = SupervisorDecision(
                        decision="terminate", termination_reason="custom_done"
                    )
                return SupervisorReply(decision=decision, attempts=1, model="custom-model")


        def pytest_fluxloop_supervisor(config, settings):
            assert settings.provider == "openai"
            return Custom()
        """,
    )
    run(project).assert_outcomes(passed=1)
    (trace,) = traces(project.root)
    assert trace["multi_turn"]["termination_reason"] == "custom_done"
    assert trace["conversation_state"]["turns"][2]["content"] == "custom business_traveler"
    assert trace["conversation_state"]["metadata"]["supervisor"]["model"] == "custom-model"


def test_missing_supervisor_key_is_a_usage_error_before_any_case(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "FLUXLOOP_SUPERVISOR_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    make_project(project, provider="openai")
    result = run(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "OPENAI_API_KEY" in result.stderr.str()
    assert project.experiments() == []


@pytest.mark.slow
def test_multi_turn_under_xdist(project: Project) -> None:
    make_project(project)
    project.write(
        "inputs/generated.yaml",
        INPUTS + '  - input: "Lost bag"\n    metadata: {persona: student}\n',
    )
    run(project, "-n", "2").assert_outcomes(passed=2)
    found = traces(project.root)
    assert sorted(t["multi_turn"]["turn_count"] for t in found) == [5, 5]
    assert {t["worker"] for t in found} <= {"gw0", "gw1"}


def test_marker_fixture_sees_the_conversation(project: Project) -> None:
    make_project(project)
    project.write(
        "test_agent.py",
        """
        import pytest


        @pytest.mark.fluxloop(config="configs/simulation.yaml")
        def test_conversation(fluxloop_result):
            record = fluxloop_result.record
            assert record.multi_turn.turn_count == 5
            assert fluxloop_result.output == record.conversation_state["turns"][-2]["content"]
        """,
    )
    result = project.pytester.runpytest("-p", "no:cacheprovider", "test_agent.py")
    result.assert_outcomes(passed=1)


# --------------------------------------------------------------------------- CLI (subprocess)


def cli_project(tmp_path: Path, *, enabled: bool, provider: str) -> Path:
    (tmp_path / "configs").mkdir()
    (tmp_path / "inputs").mkdir()
    (tmp_path / "configs" / "simulation.yaml").write_text(
        "name: cli_mt\ndescription: d\nseed: 1\n"
        'runner:\n  target: "agent:run"\n  timeout_seconds: 30\n  max_retries: 0\n'
        + MOCK.format(enabled=str(enabled).lower(), provider=provider),
        encoding="utf-8",
    )
    (tmp_path / "configs" / "project.yaml").write_text(PROJECT_YAML, encoding="utf-8")
    (tmp_path / "inputs" / "generated.yaml").write_text(INPUTS, encoding="utf-8")
    (tmp_path / "agent.py").write_text(AGENT, encoding="utf-8")
    return tmp_path / "configs" / "simulation.yaml"


@pytest.mark.slow
def test_cli_multi_turn_overrides(tmp_path: Path) -> None:
    config = cli_project(tmp_path, enabled=False, provider="openai")
    proc = run_cli(
        "run",
        "experiment",
        "-c",
        config,
        "-y",
        "--multi-turn",
        "--max-turns",
        "3",
        "--supervisor-provider",
        "mock",
        "--persona-override",
        "expert_user",
        "--manual-approve-tools",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, describe(proc)
    assert "Multi-turn: up to 3 turns, supervisor mock" in proc.stdout, describe(proc)
    (trace,) = traces(tmp_path)
    assert trace["multi_turn"] == {
        "enabled": True,
        "turn_count": 3,
        "termination_reason": "max_turns_reached",
    }
    assert trace["conversation_state"]["context"]["persona"] == "expert_user"
    assert trace["output"].startswith("[expert_user|approve=False|turns=5]")


@pytest.mark.slow
def test_cli_no_multi_turn(tmp_path: Path) -> None:
    config = cli_project(tmp_path, enabled=True, provider="mock")
    proc = run_cli("run", "experiment", "-c", config, "-y", "--no-multi-turn", cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    (trace,) = traces(tmp_path)
    assert trace["multi_turn"] is None and trace["conversation_state"] is None


@pytest.mark.slow
def test_cli_openai_supervisor_against_a_local_server(tmp_path: Path) -> None:
    config = cli_project(tmp_path, enabled=True, provider="openai")
    key = "sk-test-" + "k" * 40
    with running_llm_server() as server:
        text = config.read_text().replace(
            "    provider: openai\n",
            f"    provider: openai\n    base_url: {server.openai_base_url}\n",
        )
        config.write_text(text)
        server.script(
            CHAT,
            chat_completion(
                '{"decision": "continue", "next_user_message": "Aisle seat?", '
                '"termination_reason": null, "closing_user_message": null}'
            ),
            chat_completion(
                '{"decision": "terminate", "next_user_message": null, '
                '"termination_reason": "user_satisfied", "closing_user_message": "Thanks!"}'
            ),
        )
        proc = run_cli(
            "run",
            "experiment",
            "-c",
            config,
            "-y",
            "--supervisor-api-key",
            key,
            "--supervisor-model",
            "local-model",
            "--supervisor-temperature",
            "0.3",
            cwd=tmp_path,
        )
        requests = server.requests(CHAT)
    assert proc.returncode == 0, describe(proc)
    assert len(requests) == 2
    assert requests[0].headers["authorization"] == f"Bearer {key}"
    body = requests[0].json()
    assert (body["model"], body["temperature"]) == ("local-model", 0.3)
    (trace,) = traces(tmp_path)
    assert trace["multi_turn"]["turn_count"] == 2
    assert trace["conversation_state"]["turns"][-1] == {"role": "user", "content": "Thanks!"}
    assert trace["token_usage"]["supervisor"]["total_tokens"] == 240
    (exp,) = sorted((tmp_path / "experiments").glob("exp_*"))
    for path in exp.iterdir():
        assert key not in path.read_text(encoding="utf-8"), path.name
    assert key not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_example_project_runs_without_an_api_key(tmp_path: Path) -> None:
    root = tmp_path / "support_agent_multi_turn"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("experiments", "__pycache__"))
    proc = run_cli(
        "run", "experiment", "-c", root / "configs" / "simulation.yaml", "-y", cwd=tmp_path
    )
    assert proc.returncode == 0, describe(proc)
    found = traces(root)
    assert len(found) == 2 and all(t["success"] for t in found)
    for trace in found:
        assert trace["multi_turn"] == {
            "enabled": True,
            "turn_count": 3,
            "termination_reason": "script_complete",
        }
        turns = trace["conversation_state"]["turns"]
        assert turns[-1] == {"role": "user", "content": "Great, that's everything. Thank you!"}
        assert "not sure" not in json.dumps(turns)  # every scripted question has an answer
    refund = next(t for t in found if "refund" in t["input"])
    assert "ticket RF-1 opened" in refund["conversation_state"]["turns"][1]["content"]
    # The example's own pytest test (marker + fluxloop_result) passes too.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(root)],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, describe(proc)
    assert "2 passed" in proc.stdout, describe(proc)
