"""A process that goes on after ``pytest.main`` (the CLI, an embedding tool) is left as it
was: no project import paths on ``sys.path``, no ``.env`` variables, the same cwd."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = """
import json, os, sys, pytest
before_path, before_cwd = list(sys.path), os.getcwd()
os.environ["ALREADY_SET"] = "mine"
code = pytest.main(["--fluxloop-config", sys.argv[1], "-q", "-p", "no:cacheprovider"])
print("STATE " + json.dumps({
    "code": int(code),
    "added_paths": [p for p in sys.path if p not in before_path],
    "cwd_same": os.getcwd() == before_cwd,
    "dotenv": os.environ.get("FROM_DOTENV"),
    "already_set": os.environ.get("ALREADY_SET"),
}))
"""


@pytest.mark.slow
def test_pytest_main_leaves_sys_path_environ_and_cwd_as_found(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    (project / "src" / "agentpkg").mkdir(parents=True)
    (project / "work").mkdir()
    (project / "src" / "agentpkg" / "__init__.py").write_text(
        "import os\n\ndef run(input_text):\n    return os.environ['FROM_DOTENV'] + input_text\n"
    )
    (project / ".env").write_text("FROM_DOTENV=dotenv-value\nALREADY_SET=from-dotenv\n")
    (project / "configs" / "simulation.yaml").write_text(
        textwrap.dedent(
            """\
            name: leaves_no_trace
            description: the run leaves the process as it found it
            iterations: 1
            runner:
              target: "agentpkg:run"
              working_directory: work
              python_path: [src]
            """
        )
    )
    (project / "configs" / "input.yaml").write_text("base_inputs:\n  - input: hi\n")
    config = project / "configs" / "simulation.yaml"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("STATE ")), None)
    assert line is not None, proc.stdout + proc.stderr
    state = json.loads(line.removeprefix("STATE "))
    assert state["code"] == 0, proc.stdout  # the agent saw the .env value while it ran
    assert state["added_paths"] == []
    assert state["cwd_same"] is True
    assert state["dotenv"] is None  # taken out again
    assert state["already_set"] == "mine"  # .env never overrides, and nothing else is touched
