"""``@pytest.mark.fluxloop(config=...)`` on a user's test, and the plugin's inertness."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from support.plugin_helpers import Project

MARKED_TEST = """\
import pytest

@pytest.mark.fluxloop(config="configs/simulation.yaml"{extra})
def test_agent(fluxloop_result, fluxloop_case):
    assert fluxloop_result.input == fluxloop_case.input
    assert fluxloop_result.persona == fluxloop_case.persona
    assert fluxloop_result.trace_id
    assert "advanced" not in fluxloop_result.output
"""


def test_marker_parametrizes_over_cases(project: Project) -> None:
    project.setup(
        inputs="generated_inputs:\n  - input: hello\n    persona: a\n"
        "  - input: advanced please\n    persona: b\n"
    )
    project.pytester.makepyfile(test_marked=MARKED_TEST.format(extra=""))
    result = project.pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_agent[[]in00-hello-a-it0[]] PASSED*"])
    exp = project.only_experiment()
    traces = project.jsonl(exp / "traces.jsonl")
    outcomes = {t["input"]: (t["success"], t["test_outcome"]) for t in traces}
    # The agent succeeded both times; the user's assertion failed one item only.
    assert outcomes == {"hello": (True, "passed"), "advanced please": (True, "failed")}


def test_marker_agent_error_fails_with_agent_message(project: Project) -> None:
    project.setup()
    project.pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.fluxloop(config="configs/simulation.yaml")
        def test_agent(fluxloop_result):
            assert fluxloop_result.success
        """
    )
    result = project.pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*agent raised: ValueError: asked to crash*"])


def test_marker_allow_errors_hands_the_error_to_the_test(project: Project) -> None:
    project.setup()
    project.pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.fluxloop(config="configs/simulation.yaml", allow_errors=True)
        def test_agent(fluxloop_result):
            if "crash" in fluxloop_result.input:
                assert not fluxloop_result.success
                assert fluxloop_result.error.type == "ValueError"
            else:
                assert fluxloop_result.success
        """
    )
    project.pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_marker_overrides_and_unknown_kwargs(project: Project) -> None:
    project.setup()
    project.pytester.makepyfile(
        test_marked=MARKED_TEST.format(extra=", iterations=2, personas=['novice_user']")
    )
    project.pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    project.pytester.makepyfile(test_marked=MARKED_TEST.format(extra=", iteratons=2"))
    result = project.pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*unknown @pytest.mark.fluxloop argument(s) iteratons*"])
    assert result.ret != 0


def test_marker_without_fixture_is_an_error(project: Project) -> None:
    project.setup()
    project.pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.fluxloop(config="configs/simulation.yaml")
        def test_agent():
            pass
        """
    )
    result = project.pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*requests neither fluxloop_result nor fluxloop_case*"])
    assert result.ret != 0


def test_plugin_is_inert_when_unused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    script = textwrap.dedent(
        """
        import sys, pytest
        code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:benchmark", "test_plain.py"])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                       {"openai", "anthropic", "opentelemetry", "pydantic", "yaml", "jsonschema"}
                       or m.startswith(("pytest_fluxloop.engine", "pytest_fluxloop.artifacts")))
        print("HEAVY", heavy)
        sys.exit(int(code))
        """
    )
    before = {p.name for p in pytester.path.iterdir()}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    after = {p.name for p in pytester.path.iterdir()} - {"__pycache__"}
    assert after == before


def test_marker_and_config_runs_of_one_file_get_separate_folders(project: Project) -> None:
    project.setup()
    project.pytester.makepyfile(test_marked=MARKED_TEST.format(extra=", iterations=2"))
    result = project.pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider"
    )
    # --fluxloop-config: 3 cases, 1 agent failure. Marker: 6 cases, 2 agent errors (setup)
    # and 2 failed assertions.
    result.assert_outcomes(passed=4, failed=3, errors=2)
    totals = sorted(project.summary(exp)["total_traces"] for exp in project.experiments())
    assert totals == [3, 6]
