"""Multi-turn wiring in Experiment: supervisor creation, summary counts, fatal stops."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.conversation_helpers import Scripted, cont, contents, stop
from support.engine_helpers import isolated_imports

from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.run import Experiment
from pytest_fluxloop.supervisors import SupervisorError, SupervisorReply, SupervisorRequest


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def write_project(root: Path, simulation_extra: str, agent: str = "") -> Path:
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "inputs").mkdir(exist_ok=True)
    config = root / "configs" / "simulation.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            name: mt
            description: multi-turn engine test
            seed: 1
            runner:
              target: "mt_agent:run"
              timeout_seconds: 10
              max_retries: 0
            """
        )
        + textwrap.dedent(simulation_extra),
        encoding="utf-8",
    )
    (root / "configs" / "project.yaml").write_text(
        "metadata:\n  service_context: A shop.\n", encoding="utf-8"
    )
    (root / "configs" / "input.yaml").write_text(
        "personas:\n  - name: expert_user\n    description: Knows the shop well\n",
        encoding="utf-8",
    )
    (root / "inputs" / "generated.yaml").write_text(
        textwrap.dedent(
            """\
            inputs:
              - input: "refund please"
                metadata: {persona: novice_user}
              - input: "crash now"
                metadata: {persona: novice_user}
              - input: "supervisor fails"
                metadata: {persona: novice_user}
            """
        ),
        encoding="utf-8",
    )
    (root / "mt_agent.py").write_text(
        agent
        or textwrap.dedent(
            """\
            def run(input_text, persona=None):
                if "crash" in input_text:
                    raise ValueError("agent crashed")
                return f"[{persona}] {input_text}"
            """
        ),
        encoding="utf-8",
    )
    return config


MULTI_TURN_MOCK = """\
multi_turn:
  enabled: true
  max_turns: 4
  supervisor:
    provider: mock
    metadata:
      scripted_questions: ["second?"]
      mock_closing: bye
"""


class FailsOnInput:
    """Fails for the case whose first message says so; else one more question, then stop."""

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, request: SupervisorRequest) -> SupervisorReply:
        self.calls += 1
        if "supervisor fails" in request.turns[0]["content"]:
            raise SupervisorError("scripted failure", code="refused")
        decision = cont("again") if request.turn_count < 2 else stop("done")
        return SupervisorReply(decision=decision, attempts=1, model="custom")


def test_summary_counts_supervisor_errors_apart_from_agent_errors(tmp_path: Path) -> None:
    config = write_project(tmp_path, MULTI_TURN_MOCK)
    made: list[Any] = []

    def hook(settings: Any) -> Any:
        made.append(FailsOnInput())
        return made[-1]

    summary = Experiment.load(config, supervisor_hook=hook).run(tmp_path / "out")
    assert len(made) == 1  # one supervisor for the whole experiment
    assert summary.by_status == {"success": 1, "error": 1, "supervisor_error": 1}
    assert summary.by_error_kind == {"agent": 1, "supervisor": 1}
    (exp,) = (tmp_path / "out").glob("exp_*")
    traces = [json.loads(x) for x in (exp / "traces.jsonl").read_text().splitlines()]
    ok = next(t for t in traces if t["status"] == "success")
    assert ok["multi_turn"] == {"enabled": True, "turn_count": 2, "termination_reason": "done"}
    assert ok["conversation_state"]["context"] == {
        "persona": "novice_user",
        "service_context": "A shop.",
    }


def test_built_in_mock_supervisor_is_used_without_a_hook(tmp_path: Path) -> None:
    config = write_project(tmp_path, MULTI_TURN_MOCK)
    experiment = Experiment.load(config, supervisor_hook=lambda settings: None)
    experiment.prepare()
    refund = next(c for c in experiment.cases if c.input == "refund please")
    record = experiment.run_case(refund).record
    assert record.multi_turn is not None
    assert (record.multi_turn.turn_count, record.multi_turn.termination_reason) == (
        2,
        "script_complete",
    )
    assert contents(record)[-1] == ("user", "bye")


def test_persona_override_description_comes_from_input_yaml(tmp_path: Path) -> None:
    config = write_project(tmp_path, MULTI_TURN_MOCK + "  persona_override: expert_user\n")
    sup = Scripted(*(stop() for _ in range(5)))
    experiment = Experiment.load(config, supervisor_hook=lambda settings: sup)
    experiment.run_case(next(c for c in experiment.cases if c.input == "refund please"))
    assert (sup.requests[0].persona, sup.requests[0].persona_description) == (
        "expert_user",
        "Knows the shop well",
    )


def test_single_turn_runs_have_no_conversation(tmp_path: Path) -> None:
    config = write_project(tmp_path, "multi_turn:\n  enabled: false\n")
    experiment = Experiment.load(config)
    record = experiment.run_case(experiment.cases[0]).record
    assert record.multi_turn is None and record.conversation_state is None


def test_persona_override_without_multi_turn_is_a_notice(tmp_path: Path) -> None:
    config = write_project(tmp_path, "multi_turn:\n  persona_override: expert_user\n")
    notices = Experiment.load(config).notices
    assert any("persona_override" in n and "multi_turn.enabled is false" in n for n in notices)


def test_missing_api_key_is_a_config_error_before_any_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "FLUXLOOP_SUPERVISOR_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = write_project(
        tmp_path, "multi_turn:\n  enabled: true\n  supervisor:\n    provider: openai\n"
    )
    experiment = Experiment.load(config)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        experiment.prepare()


def test_hook_returning_a_non_supervisor_is_a_config_error(tmp_path: Path) -> None:
    config = write_project(tmp_path, MULTI_TURN_MOCK)
    experiment = Experiment.load(config, supervisor_hook=lambda settings: "not a supervisor")
    with pytest.raises(ConfigError, match="decide"):
        experiment.prepare()


# --------------------------------------------------------------------------- fatal, end to end

FATAL_CONFTEST = """
from pytest_fluxloop.supervisors import SupervisorError


class BadKey:
    def decide(self, request):
        raise SupervisorError(
            "openai supervisor: 401 Unauthorized (check the API key)", code="auth", fatal=True
        )


def pytest_fluxloop_supervisor(config, settings):
    return BadKey()
"""


def test_fatal_supervisor_error_stops_the_run_once(pytester: pytest.Pytester) -> None:
    from support.plugin_helpers import Project

    extra = "multi_turn:\n  enabled: true\n  supervisor:\n    provider: openai\n"
    project = Project(pytester).setup(iterations=3, extra=extra)
    project.write("conftest.py", FATAL_CONFTEST)
    result = pytester.runpytest("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)  # 9 cases collected, 1 ran
    # Reported once (the short summary may repeat it, depending on the terminal width).
    out = result.stdout.str().split("short test summary info")[0]
    assert out.count("supervisor failed: openai supervisor: 401 Unauthorized") == 1
    # A bad key is a configuration error, not a failed case (issue 8, item 10).
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*pytest-fluxloop: stopping the run: SupervisorError.auth: *401*"])
    exp = project.only_experiment()
    traces = project.jsonl(exp / "traces.jsonl")
    assert len(traces) == 1 and traces[0]["status"] == "supervisor_error"
    assert traces[0]["error"]["kind"] == "supervisor"
