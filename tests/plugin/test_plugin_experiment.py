"""``pytest --fluxloop-config``: one item per case, readable failures, artifacts (pytester)."""

from __future__ import annotations

import json
from collections.abc import Callable
from xml.etree import ElementTree

import pytest
from support.plugin_helpers import Project

RunFn = Callable[..., pytest.RunResult]

SEED_TRACE_SUMMARY_FIELDS = {
    "trace_id",
    "iteration",
    "persona",
    "input",
    "output",
    "duration_ms",
    "success",
}
SEED_SUMMARY_FIELDS = {
    "experiment_name",
    "total_traces",
    "successful",
    "failed",
    "avg_duration_ms",
    "started_at",
    "completed_at",
    "config_snapshot",
}


def test_one_item_per_case_and_artifacts(project: Project, run_experiment: RunFn) -> None:
    project.setup(iterations=2)
    result = run_experiment("-v")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*simulation.yaml::demo[[]in00-how_do_i_start-novice_user-it0[]] PASSED*",
            "*agent raised: ValueError: asked to crash*",
            "*experiment 'demo' complete: 6 traces, 4 successful, 2 failed*",
        ]
    )
    exp = project.only_experiment()
    assert exp.name.startswith("exp_")
    files = {p.name for p in exp.iterdir()}
    assert {
        "summary.json",
        "trace_summary.jsonl",
        "traces.jsonl",
        "observations.jsonl",
        "config.yaml",
    } <= files
    summary = project.summary(exp)
    assert set(summary) >= SEED_SUMMARY_FIELDS
    assert summary["status"] == "complete"
    assert (summary["total_traces"], summary["successful"], summary["failed"]) == (6, 4, 2)
    lines = project.jsonl(exp / "trace_summary.jsonl")
    assert len(lines) == 6
    assert all(set(line) >= SEED_TRACE_SUMMARY_FIELDS for line in lines)
    traces = project.jsonl(exp / "traces.jsonl")
    failed = [t for t in traces if not t["success"]]
    assert len(failed) == 2
    assert failed[0]["error"]["type"] == "ValueError"
    assert failed[0]["error"]["kind"] == "agent"
    assert "agent.py" in failed[0]["error"]["traceback"]
    assert "pytest_fluxloop" not in failed[0]["error"]["traceback"]
    ok = next(t for t in traces if t["success"])
    assert ok["output"].startswith("[")
    observations = project.jsonl(exp / "observations.jsonl")
    mine = [o for o in observations if o["trace_id"] == ok["trace_id"]]
    assert [o["type"] for o in mine] == ["span_start", "span_end"]
    assert mine[0]["name"] == "run"


def test_failure_is_short_and_readable(project: Project, run_experiment: RunFn) -> None:
    project.setup()
    result = run_experiment()
    text = result.stdout.str()
    assert "FluxLoop case in02-please_crash-expert_user-it0 agent raised" in text
    assert "input: 'please crash'" in text
    # No plugin internals in the failure output.
    assert "pytest_fluxloop/" not in text.split("short test summary")[0]


def test_k_selects_cases(project: Project, run_experiment: RunFn) -> None:
    project.setup(iterations=2)
    result = run_experiment("-k", "novice_user and it1")
    result.assert_outcomes(passed=1, deselected=5)
    summary = project.summary(project.only_experiment())
    assert summary["total_traces"] == 1
    assert summary["total_cases"] == 1


def test_exitfirst_marks_summary_interrupted(project: Project, run_experiment: RunFn) -> None:
    inputs = "generated_inputs:\n" + "".join(
        f"  - input: 'please crash {i}'\n    persona: p\n" for i in range(4)
    )
    project.setup(inputs=inputs)
    result = run_experiment("-x")
    result.assert_outcomes(failed=1)
    exp = project.only_experiment()
    assert project.summary(exp)["status"] == "interrupted"
    assert len(project.jsonl(exp / "traces.jsonl")) == 1


def test_collect_only_writes_nothing(project: Project, run_experiment: RunFn) -> None:
    project.setup()
    project.write("agent.py", "raise RuntimeError('must not be imported by --collect-only')\n")
    result = run_experiment("--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*3 tests collected*"])
    assert not (project.root / "experiments").exists()


def test_last_failed_reruns_only_failed_cases(project: Project) -> None:
    project.setup()
    args = ("--fluxloop-config", project.config)
    first = project.pytester.runpytest(*args)
    first.assert_outcomes(passed=2, failed=1)
    again = project.pytester.runpytest(*args, "--lf")
    # pytest's --lf filters the config file's items during collection.
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*in02-please_crash-expert_user-it0*"])


def test_junitxml_has_every_case(project: Project, run_experiment: RunFn) -> None:
    # Fault 35: duplicate inputs and personas must still be separate, named test cases.
    inputs = """\
    generated_inputs:
      - input: "same question"
        persona: twin
      - input: "same question"
        persona: twin
      - input: "same question"
        persona: twin
    """
    project.setup(inputs=inputs, iterations=2)
    result = run_experiment("--junitxml", "junit.xml")
    result.assert_outcomes(passed=6)
    tree = ElementTree.parse(project.root / "junit.xml")
    names = [case.get("name") for case in tree.iter("testcase")]
    assert len(names) == 6
    assert len(set(names)) == 6


def test_ini_key_configures_the_experiment(project: Project) -> None:
    project.setup()
    project.pytester.makeini("[pytest]\nfluxloop_config = configs/simulation.yaml\n")
    result = project.pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)


def test_config_error_is_a_usage_error(project: Project, run_experiment: RunFn) -> None:
    project.setup(extra="iteratons: 3\n")
    result = run_experiment()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*simulation.yaml:*iteratons*did you mean 'iterations'*"])
    assert not (project.root / "experiments").exists()


def test_bad_target_fails_before_any_case(project: Project, run_experiment: RunFn) -> None:
    project.setup(target="agent:missing_function")
    result = run_experiment()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'missing_function' not found in agent*"])
    assert not (project.root / "experiments").exists()


def test_target_without_function_is_a_usage_error(project: Project, run_experiment: RunFn) -> None:
    project.setup(target="agent")
    result = run_experiment()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected 'module:function'*"])


def test_overrides_from_pytest_options(project: Project, run_experiment: RunFn) -> None:
    project.setup()
    result = run_experiment(
        "--fluxloop-iterations",
        "2",
        "--fluxloop-personas",
        "novice_user",
        "--fluxloop-output-dir",
        "out",
        "--fluxloop-experiment-name",
        "nightly run",
    )
    result.assert_outcomes(passed=2)
    exp = project.only_experiment("out")
    assert exp.name.endswith("_nightly-run")
    summary = project.summary(exp)
    assert summary["experiment_name"] == "nightly run"
    assert {t["persona"] for t in project.jsonl(exp / "traces.jsonl")} == {"novice_user"}


def test_override_out_of_range_names_the_option(project: Project, run_experiment: RunFn) -> None:
    project.setup()
    result = run_experiment("--fluxloop-iterations", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--fluxloop-iterations: iterations: 0 is out of range 1-1000*"])


def test_experiment_name_with_path_parts_is_rejected(
    project: Project, run_experiment: RunFn
) -> None:
    project.setup()
    result = run_experiment("--fluxloop-experiment-name", "../escape")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--fluxloop-experiment-name*"])
    assert not (project.root / "experiments").exists()
    assert not (project.root.parent / "escape").exists()


def test_save_traces_false_keeps_only_summaries(project: Project, run_experiment: RunFn) -> None:
    project.setup(extra="save_traces: false\n")
    run_experiment().assert_outcomes(passed=2, failed=1)
    exp = project.only_experiment()
    names = {p.name for p in exp.iterdir()}
    assert "traces.jsonl" not in names and "observations.jsonl" not in names
    assert {"trace_summary.jsonl", "summary.json"} <= names


def test_save_aggregated_metrics_false(project: Project, run_experiment: RunFn) -> None:
    project.setup(extra="save_aggregated_metrics: false\n")
    run_experiment().assert_outcomes(passed=2, failed=1)
    names = {p.name for p in project.only_experiment().iterdir()}
    assert "summary.json" not in names
    assert "traces.jsonl" in names


def test_two_runs_never_share_a_folder(project: Project, run_experiment: RunFn) -> None:
    project.setup()
    run_experiment()
    run_experiment()
    assert len(project.experiments()) == 2


def test_secrets_never_reach_artifacts(
    project: Project, run_experiment: RunFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-" + "A1b2C3d4" * 4
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    agent = """\
    import os
    def run(input_text, metadata=None):
        return {"echo": input_text, "key": os.environ["OPENAI_API_KEY"],
                "headers": {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}}
    """
    project.setup(agent=agent)
    run_experiment().assert_outcomes(passed=3)
    for path in project.only_experiment().iterdir():
        assert secret not in path.read_text(encoding="utf-8"), path.name


def test_progress_option_replaces_dots(project: Project, run_experiment: RunFn) -> None:
    project.setup(iterations=2)
    result = run_experiment("--fluxloop-progress", "-q")
    result.stdout.fnmatch_lines(["*6/6 (100%)*"])


def test_hooks_modify_cases_and_see_records(project: Project, run_experiment: RunFn) -> None:
    project.setup()
    project.pytester.makeconftest(
        """
        import json
        seen = []

        def pytest_fluxloop_modify_cases(config, cases):
            cases[:] = [c for c in cases if c.persona == "novice_user"]

        def pytest_fluxloop_record_written(config, record, experiment_dir):
            seen.append(record.case_id)

        def pytest_fluxloop_experiment_finished(config, summary, experiment_dir):
            (experiment_dir / "hook.json").write_text(
                json.dumps({"seen": seen, "total": summary.total_traces}))
        """
    )
    run_experiment().assert_outcomes(passed=1)
    data = json.loads((project.only_experiment() / "hook.json").read_text())
    assert data == {"seen": ["in00-how_do_i_start-novice_user-it0"], "total": 1}


def test_unwritable_output_directory_fails_before_any_case(
    project: Project, run_experiment: RunFn
) -> None:
    # A path under a regular file can't be created, even as root (chmod wouldn't stop root).
    agent = "import pathlib\n\ndef run(input_text):\n    pathlib.Path('called').touch()\n"
    project.setup(agent=agent, extra="output_directory: blocker/experiments\n")
    project.write("blocker", "a file, not a folder\n")
    result = run_experiment()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*output_directory*blocker*"])
    assert not (project.root / "called").exists()  # no case ran


def test_reports_do_not_keep_trace_records(project: Project, run_experiment: RunFn) -> None:
    # pytest keeps every report until the end; records must not ride along (flat memory).
    project.setup(iterations=3)
    project.pytester.makeconftest(
        """
        import json, pathlib

        def pytest_terminal_summary(terminalreporter):
            kept = [r for reports in terminalreporter.stats.values() for r in reports
                    if hasattr(r, "fluxloop_record")]
            pathlib.Path("kept.json").write_text(json.dumps(len(kept)))
        """
    )
    run_experiment().assert_outcomes(passed=6, failed=3)
    assert (project.root / "kept.json").read_text() == "0"
    assert len(project.jsonl(project.only_experiment() / "traces.jsonl")) == 9
