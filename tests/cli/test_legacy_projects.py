"""Projects made by the earlier FluxLoop tool run unchanged, as a new user would run them.

The projects come from ``support.legacy_projects`` (the earlier releases' keys, shapes and
layout, our own text). Each is run exactly as laid out: ``fluxloop run experiment`` in the
project folder, ``pytest --fluxloop-config``, the 0.2.36 smoke test, and the sample agent's
own ``__main__``. ``scripts/legacy_projects.py`` does the same with the real templates of
the earlier releases installed from PyPI.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli_helpers import describe, run_child_pytest, run_cli, run_process
from support.echo_llm import EchoServer, running_echo_server
from support.legacy_projects import (
    STYLES,
    make_legacy_project,
    make_tutorial_project,
    write,
)

pytestmark = pytest.mark.slow


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _only_experiment(project: Path) -> Path:
    exps = sorted((project / "experiments").glob("exp_*"))
    assert len(exps) == 1, exps
    return exps[0]


@pytest.fixture(scope="module")
def judge_server() -> Iterator[EchoServer]:
    """An OpenAI-compatible server for the 0.2.36 layout's metric judges (a 0.2.36 user has
    an OpenAI key: its evaluation was LLM-judged). It echoes, so every judgement is
    unusable and ends ``unscored``: the run still passes, and says so."""
    with running_echo_server() as server:
        yield server


def _judge_env(style: str, server: EchoServer) -> dict[str, str]:
    if style != "0.2.36":
        return {}
    return {"OPENAI_API_KEY": "judge-test-key", "OPENAI_BASE_URL": server.url + "/v1"}


def _check_sample_agent_traces(exp: Path, runs: int) -> None:
    summary = json.loads((exp / "summary.json").read_text(encoding="utf-8"))
    assert (summary["total_traces"], summary["successful"]) == (runs, runs), summary
    observations = _rows(exp / "observations.jsonl")
    names = {o["name"] for o in observations}
    # The agent, its tool and its prompt function were all recorded, per trace.
    assert {"ShopAgent", "classify", "compose"} <= names, names
    models = {
        (o.get("metadata") or {}).get("model") for o in observations if o["name"] == "compose"
    }
    assert "house-model" in models, observations[:4]
    assert len({o["trace_id"] for o in observations}) == runs


@pytest.mark.parametrize("style", STYLES)
def test_template_runs_with_the_cli_as_generated(
    tmp_path: Path, style: str, judge_server: EchoServer
) -> None:
    project = make_legacy_project(tmp_path, style)
    proc = run_cli("run", "experiment", "--yes", cwd=project, env=_judge_env(style, judge_server))
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout + proc.stderr
    # Nothing is silently ignored: the inputs file not generated yet, and (where the
    # layout has them) the evaluation settings no report is written for yet, are said.
    assert "inputs/generated.yaml" in out, out
    summary = json.loads(next((project / "experiments").glob("exp_*/summary.json")).read_text())
    evaluation = summary["evaluation"]
    assert evaluation["evaluators"], evaluation  # evaluation.yaml was acted on
    if style != "0.2.0":  # the report/output blocks, for a report not written yet
        assert "report" in out.lower(), out
    if style == "0.2.36":
        # The judges could not answer (the server echoes): unscored, never a failure.
        assert evaluation["unscored"] > 0, evaluation
        assert summary["token_usage"]["judge"]["calls"] > 0, summary["token_usage"]
    _check_sample_agent_traces(_only_experiment(project), runs=4)  # 2 inputs × 2 personas


@pytest.mark.parametrize("style", STYLES)
def test_template_runs_with_pytest_and_generated_inputs(
    tmp_path: Path, style: str, judge_server: EchoServer
) -> None:
    project = make_legacy_project(tmp_path, style, generated_inputs=True, description=False)
    proc = run_child_pytest(
        "--fluxloop-config",
        "configs/simulation.yaml",
        cwd=project,
        env=_judge_env(style, judge_server),
    )
    assert proc.returncode == 0, describe(proc)
    # The 0.2.36 template also has its pytest smoke test under tests/, which pytest collects.
    passed = 4 if style == "0.2.36" else 3
    assert f"{passed} passed" in proc.stdout, proc.stdout
    exp = _only_experiment(project)
    _check_sample_agent_traces(exp, runs=3)
    rows = _rows(exp / "trace_summary.jsonl")
    assert sorted(r["persona"] for r in rows) == [
        "new_customer",
        "returning_customer",
        "returning_customer",
    ]


def test_dotenv_of_project_and_fluxloop_root_are_both_read(tmp_path: Path) -> None:
    project = make_legacy_project(tmp_path, "0.2.0")
    write(
        project / "examples" / "support_agent.py",
        "import os\n\n\ndef run(input_text):\n"
        "    return '|'.join(os.environ.get(k, '-') for k in "
        "('LEGACY_ROOT_SETTING', 'SHARED_SETTING', 'OPENAI_API_KEY'))\n",
    )
    proc = run_cli("run", "experiment", "--yes", "--iterations", "1", cwd=project)
    assert proc.returncode == 0, describe(proc)
    outputs = {r["output"] for r in _rows(_only_experiment(project) / "trace_summary.jsonl")}
    # root-only value read; the project's .env wins over the root's; an empty value in
    # .env does not make OPENAI_API_KEY look set.
    assert outputs == {"from-root|project-value|-"}, outputs


def test_smoke_test_of_the_pytest_template(tmp_path: Path, judge_server: EchoServer) -> None:
    project = make_legacy_project(tmp_path, "0.2.36")
    env = _judge_env("0.2.36", judge_server)
    proc = run_child_pytest("tests/test_fluxloop_smoke.py", cwd=project, env=env)
    assert proc.returncode == 0, describe(proc)
    assert "1 passed" in proc.stdout, proc.stdout


def test_sample_agent_main_block_runs_outside_an_experiment(tmp_path: Path) -> None:
    project = make_legacy_project(tmp_path, "0.2.21")
    proc = run_process(
        [sys.executable, "examples/support_agent.py"],
        cwd=project,
        env={"PYTHONPATH": str(project)},
        timeout=60,
    )
    assert proc.returncode == 0, describe(proc)
    assert "Your parcel can be tracked" in proc.stdout
    count = int(proc.stdout.rsplit("observations:", 1)[1].strip())
    assert count >= 3, proc.stdout  # agent, tool and prompt spans in the standalone trace


def test_tutorial_project_single_turn(tmp_path: Path) -> None:
    project = make_tutorial_project(tmp_path)
    proc = run_cli("run", "experiment", "--yes", cwd=project)
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout + proc.stderr
    assert "thread_label" in out, out  # the runner.args key the agent does not declare
    rows = _rows(_only_experiment(project) / "trace_summary.jsonl")
    assert len(rows) == 2
    for row in rows:
        assert row["output"].startswith(
            "[part4/offline/db=kept] frequent_flyer (impatient, knows the booking code) turn 1"
        ), row["output"]


def test_tutorial_project_multi_turn(tmp_path: Path) -> None:
    project = make_tutorial_project(tmp_path)
    proc = run_cli("run", "experiment", "--yes", "--multi-turn", cwd=project)
    assert proc.returncode == 0, describe(proc)
    rows = _rows(_only_experiment(project) / "trace_summary.jsonl")
    assert len(rows) == 2
    for row in rows:
        assert "turn 2" in row["output"], row
        assert row["termination_reason"], row
        users = [t for t in row["conversation"] if t["role"] == "user"]
        assert users[1]["content"] == "Can I move it to Friday instead?", row["conversation"]
        closing = [t for t in row["conversation"] if t.get("closing")]
        assert [t["content"] for t in closing] == ["Great, thank you."], row["conversation"]


def test_three_broken_files_give_three_errors_at_once(tmp_path: Path) -> None:
    project = make_legacy_project(tmp_path, "0.2.21")
    configs = project / "configs"
    sim = (configs / "simulation.yaml").read_text(encoding="utf-8")
    (configs / "simulation.yaml").write_text(sim.replace("iterations: 1", "iteratons: 1"))
    inp = (configs / "input.yaml").read_text(encoding="utf-8")
    (configs / "input.yaml").write_text(inp.replace("variation_count: 2", "variation_count: -2"))
    (configs / "project.yaml").write_text("name: shop\ntagz: [a]\n", encoding="utf-8")
    proc = run_cli("run", "experiment", "--yes", cwd=project)
    assert proc.returncode != 0, describe(proc)
    err = proc.stdout + proc.stderr
    assert "simulation.yaml" in err and "iteratons" in err, err
    assert "input.yaml" in err and "variation_count" in err, err
    assert "project.yaml" in err and "tagz" in err, err
    assert not (project / "experiments").exists()


FOREIGN_SDK = '''\
"""Stands in for the earlier FluxLoop SDK distribution: same import name, other code."""


def agent(*args, **kwargs):
    def wrap(fn):
        return fn
    return wrap
'''


def test_agent_importing_a_foreign_fluxloop_is_told_not_silently_empty(tmp_path: Path) -> None:
    project = make_legacy_project(tmp_path, "0.2.0")
    vendor = project / "vendor"
    write(vendor / "fluxloop" / "__init__.py", FOREIGN_SDK)
    write(vendor / "fluxloop-0.1.8.dist-info" / "METADATA", "Name: fluxloop\nVersion: 0.1.8\n")
    write(
        vendor / "fluxloop-0.1.8.dist-info" / "RECORD",
        "fluxloop/__init__.py,,\nfluxloop-0.1.8.dist-info/METADATA,,\n",
    )
    write(
        project / "examples" / "support_agent.py",
        "import fluxloop\n\n\n@fluxloop.agent(name='x')\ndef run(input_text):\n"
        "    return 'ok ' + input_text\n",
    )
    # Installed side by side, the other distribution's files win the `fluxloop` import name:
    # its folder comes first on the path here, as site-packages would hold it.
    proc = run_cli("run", "experiment", "--yes", cwd=project, env={"PYTHONPATH": str(vendor)})
    out = proc.stdout + proc.stderr
    assert "0.1.8" in out and "fluxloop" in out, describe(proc)
    assert "pip uninstall" in out, out
