"""An agent that changes process-wide state must not break the cases after it (issue 8, item 4).

A real pytest run of a project whose agent ``os.chdir``s into a temporary directory and then
deletes it: before the fix every later case failed with ``FileNotFoundError`` on a relative
path; now the runner's working directory is put back around every case and the case that
moved it carries a ``cwd_changed`` notice.
"""

from __future__ import annotations

from pathlib import Path

from support.plugin_helpers import Project

N_INPUTS = 6
INPUTS = "generated_inputs:\n" + "".join(f"  - input: 'q{i:02d}'\n" for i in range(N_INPUTS))

# Every case reads a file relative to the runner's working directory, then wanders off into a
# directory it deletes, leaving the process in a working directory that no longer exists.
WANDERING_AGENT = """\
import os, shutil, tempfile

def run(input_text):
    with open("data/fact.txt") as fh:
        fact = fh.read().strip()
    scratch = tempfile.mkdtemp()
    os.chdir(scratch)
    shutil.rmtree(scratch)
    return fact
"""


def _traces(project: Project) -> list[dict]:
    return project.jsonl(project.only_experiment() / "traces.jsonl")


def test_an_agent_deleting_its_working_directory_breaks_no_later_case(project: Project) -> None:
    project.setup(inputs=INPUTS, agent=WANDERING_AGENT)
    project.write("data/fact.txt", "forty-two\n")
    result = project.pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=N_INPUTS)
    traces = _traces(project)
    assert [t["output"] for t in traces] == ["forty-two"] * N_INPUTS
    for trace in traces:
        notices = [o for o in trace["observations"] if o["name"] == "cwd_changed"]
        assert len(notices) == 1, trace["observations"]
        assert notices[0]["type"] == "notice"
        assert notices[0]["metadata"]["restored_to"] == str(project.root)
        assert "working directory" in notices[0]["error"]
    # The pytest process itself is back where it started.
    assert Path.cwd() == project.root


def test_a_case_that_leaves_the_directory_alone_gets_no_notice(project: Project) -> None:
    agent = "def run(input_text):\n    return open('data/fact.txt').read().strip()\n"
    project.setup(inputs=INPUTS, agent=agent)
    project.write("data/fact.txt", "forty-two\n")
    project.pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider"
    ).assert_outcomes(passed=N_INPUTS)
    assert all(t["observations"] == [] for t in _traces(project))
