"""``@pytest.mark.fluxloop(config=...)`` on a user's test, and the plugin's inertness."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


# With no experiment configured the plugin may load only its entry package (the plugin
# package: options, hooks, markers, collection) and the small stdlib-only modules it reads
# at import time: errors, and the override table behind its options and marker keywords
# (config.overrides, through config/__init__.py, which loads the loader and the pydantic
# models lazily). The rest of config, the engine, the runs, cases, artifact writers, sinks,
# supervisors, LLM clients and the SDK load only when an experiment or marker asks for them.
INERT_ALLOWED = (
    "pytest_fluxloop",
    "pytest_fluxloop.errors",
    "pytest_fluxloop.plugin",
    "pytest_fluxloop.config",
    "pytest_fluxloop.config.overrides",
)
INERT_FORBIDDEN_PACKAGES = (
    "engine",
    "run",
    "config",
    "plan",
    "artifacts",
    "supervisors",
    "llm",
    "sinks",
    "sdk",
)
INERT_FORBIDDEN_THIRD_PARTY = ("openai", "anthropic")

INERT_SCRIPT = """
import json, sys, pytest

class Probe:
    def pytest_configure(self, config):
        self.plugin = config.pluginmanager.get_plugin("fluxloop")

probe = Probe()
code = pytest.main(["-q", "-p", "no:cacheprovider", "test_plain.py"], plugins=[probe])
print("MODULES " + json.dumps({
    "exit": int(code),
    "plugin": getattr(probe.plugin, "__name__", None),
    "modules": sorted(sys.modules),
}))
"""


def _outside_the_entry_package(name: str) -> bool:
    return name.split(".")[0] == "pytest_fluxloop" and not (
        name in INERT_ALLOWED or name.startswith("pytest_fluxloop.plugin.")
    )


def inert_violations(modules: list[str]) -> list[str]:
    """The modules an unused plugin must not have imported (ours and the LLM clients)."""
    return sorted(
        name
        for name in modules
        if name.split(".")[0] in INERT_FORBIDDEN_THIRD_PARTY or _outside_the_entry_package(name)
    )


def test_inert_check_flags_what_it_must() -> None:
    assert (
        inert_violations(
            [
                "pytest",
                "pydantic",  # third party other plugins may load: not ours to judge
                "yaml",
                "pytest_fluxloop",
                "pytest_fluxloop.errors",
                "pytest_fluxloop.plugin",
                "pytest_fluxloop.plugin.options",
                "pytest_fluxloop.config",
                "pytest_fluxloop.config.overrides",
                "pytest_fluxloop_other",  # another distribution, not ours
            ]
        )
        == []
    )
    heavy = [f"pytest_fluxloop.{package}.anything" for package in INERT_FORBIDDEN_PACKAGES]
    heavy += [f"pytest_fluxloop.{p}" for p in INERT_FORBIDDEN_PACKAGES if p != "config"]
    heavy += [
        "pytest_fluxloop.engine.executor",
        "pytest_fluxloop.config.loader",
        "pytest_fluxloop.config.models",
        "pytest_fluxloop.cli",
        "pytest_fluxloop.records",  # a pydantic model: outside the entry package
        "openai",
        "openai.types",
        "anthropic",
    ]
    assert inert_violations(["pytest_fluxloop.plugin", *heavy]) == sorted(heavy)


def test_plugin_is_inert_when_unused(pytester: pytest.Pytester) -> None:
    """Installed but unused (no experiment, no marker): imports only its entry package and
    creates no file."""
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    before = sorted(str(p.relative_to(pytester.path)) for p in pytester.path.rglob("*"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"))
        and key not in {"PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_CURRENT_TEST"}
    }
    proc = subprocess.run(
        [sys.executable, "-c", INERT_SCRIPT],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next((x for x in proc.stdout.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, proc.stdout + proc.stderr
    report = json.loads(line.removeprefix("MODULES "))
    assert report["exit"] == 0, proc.stdout
    # The check means something only if the installed plugin really was loaded.
    assert report["plugin"] == "pytest_fluxloop.plugin"
    violations = inert_violations(report["modules"])
    assert violations == [], f"an unused plugin imported {violations}"
    after = sorted(
        str(p.relative_to(pytester.path))
        for p in pytester.path.rglob("*")
        if "__pycache__" not in p.parts
    )
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
