"""``fluxloop run experiment`` checks everything it can before the plan (issue 8, item 12).

A missing module, a missing function, a signature the harness cannot call, or a supervisor
without an API key fails with exit 4 and a message, before any ``[INFO]`` plan line and
before the ``Proceed?`` prompt. The CLI runs as a real subprocess whose stdin is a terminal
(a pty), so a prompt would really be shown.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli_helpers import CLI_COMMAND, CLI_TIMEOUT_S, clean_env, describe

from pytest_fluxloop.run import Experiment

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")

SIMULATION = """\
name: demo
description: d
runner:
  target: "{target}"
  working_directory: src
{extra}"""
INPUTS = 'inputs:\n  - input: "hello"\n  - input: "again"\n'
AGENT = "def run(input_text):\n    return 'ok: ' + input_text\n"


def _project(root: Path, *, target: str = "agent:run", agent: str = AGENT, extra: str = "") -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "inputs").mkdir()
    (root / "src").mkdir()
    (root / "configs" / "simulation.yaml").write_text(
        SIMULATION.format(target=target, extra=extra), encoding="utf-8"
    )
    (root / "inputs" / "generated.yaml").write_text(INPUTS, encoding="utf-8")
    (root / "src" / "agent.py").write_text(agent, encoding="utf-8")
    return root / "configs" / "simulation.yaml"


def run_on_a_terminal(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``fluxloop ARGS`` with a pty as stdin, already holding the answer "n" to a prompt."""
    import pty

    master, slave = pty.openpty()
    try:
        os.write(master, b"n\n")
        return subprocess.run(
            [*CLI_COMMAND, *args],
            cwd=cwd,
            env=clean_env(),
            stdin=slave,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    finally:
        os.close(slave)
        os.close(master)


def _assert_refused_up_front(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 4, describe(proc)
    assert "[INFO]" not in proc.stdout, describe(proc)
    assert "Proceed?" not in proc.stdout + proc.stderr, describe(proc)
    assert proc.stderr.startswith("Error: "), describe(proc)
    for word in words:
        assert word in proc.stderr, describe(proc)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "agent", "words"),
    [
        ("no_such_agent:run", AGENT, ["'no_such_agent' not found", "runner.working_directory"]),
        ("agent:answer", AGENT, ["'answer' not found in agent", "available: run"]),
        (
            "agent:run",
            "def run(question, *, mood):\n    return question\n",
            ["runner.target 'agent:run'"],
        ),
    ],
    ids=["missing-module", "missing-function", "bad-signature"],
)
def test_target_problems_fail_before_the_plan_and_prompt(
    tmp_path: Path, target: str, agent: str, words: list[str]
) -> None:
    _project(tmp_path, target=target, agent=agent)
    proc = run_on_a_terminal("run", "experiment", cwd=tmp_path)
    _assert_refused_up_front(proc, *words)
    assert not (tmp_path / "experiments").exists()


@pytest.mark.slow
def test_missing_supervisor_key_fails_before_the_plan(tmp_path: Path) -> None:
    extra = "multi_turn:\n  enabled: true\n  supervisor:\n    provider: openai\n"
    _project(tmp_path, extra=extra)
    proc = run_on_a_terminal("run", "experiment", cwd=tmp_path)
    _assert_refused_up_front(proc, "FLUXLOOP_SUPERVISOR_API_KEY")


@pytest.mark.slow
def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    extra = (
        "output_directory: ../outside\n"
        "multi_turn:\n  enabled: true\n  supervisor:\n    provider: openai\n"
    )
    _project(tmp_path / "p", target="no_such_agent:run", extra=extra)
    proc = run_on_a_terminal("run", "experiment", cwd=tmp_path / "p")
    _assert_refused_up_front(
        proc, "3 problems", "output_directory", "'no_such_agent' not found", "API_KEY"
    )


@pytest.mark.slow
def test_a_good_target_still_shows_the_plan_and_asks(tmp_path: Path) -> None:
    _project(tmp_path)
    proc = run_on_a_terminal("run", "experiment", cwd=tmp_path)
    assert proc.returncode == 1, describe(proc)  # answered "n"
    assert "[INFO] Starting experiment..." in proc.stdout
    assert "Proceed?" in proc.stdout
    assert "Cancelled; nothing was run." in proc.stderr


# The imported agent module is dropped after each test by tests/cli/conftest.py.


def test_check_leaves_cwd_and_sys_path_as_they_were(tmp_path: Path) -> None:
    config = _project(tmp_path)
    experiment = Experiment.load(config)
    cwd, path = os.getcwd(), list(sys.path)
    experiment.check()
    assert os.getcwd() == cwd
    assert sys.path == path


def test_check_raises_the_target_error_itself(tmp_path: Path) -> None:
    from pytest_fluxloop.errors import TargetError

    config = _project(tmp_path, target="agent:answer")
    cwd = os.getcwd()
    with pytest.raises(TargetError, match="'answer' not found"):
        Experiment.load(config).check()
    assert os.getcwd() == cwd
