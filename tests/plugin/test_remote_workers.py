"""Remote xdist workers (``--tx ssh=`` / ``--tx socket=`` with ``//chdir=``): every record
reaches the controller and is written.

No second machine is needed: execnet's socket server on 127.0.0.1 stands in for a host (xdist
treats ``socket=`` exactly like ``ssh=``: arguments rewritten for rsync, no shared cwd). Each
"host" runs in its own folder holding its own copy of the project, as after a checkout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from support.plugin_helpers import BASIC_CONFIG

pytest.importorskip("xdist")
execnet = pytest.importorskip("execnet")

SOCKETSERVER = Path(execnet.__file__).parent / "script" / "socketserver.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SOCKETSERVER.is_file(), reason=f"execnet ships no socket server at {SOCKETSERVER}"
    ),
]

HANG_GUARD = 120.0
"""Seconds any pytest run or server start may take before the test fails instead of hanging."""

INPUTS = "generated_inputs:\n" + "".join(
    f"  - input: 'question {i}'\n    persona: {'crash' if i == 2 else 'p'}{i % 2}\n"
    for i in range(6)
)
AGENT = """\
import time
from pathlib import Path
import fluxloop

@fluxloop.agent()
def run(input_text, persona=None):
    # Marks, in the host's own folder, that a case started there (the kill test waits for it).
    started = Path("started")
    started.mkdir(exist_ok=True)
    (started / input_text.replace(" ", "_")).touch()
    # Remote workers run with their host's environment: the pause is set in its folder.
    pause = Path("pause")
    time.sleep(float(pause.read_text()) if pause.exists() else 0)
    if persona.startswith("crash"):
        raise ValueError("boom")
    return {"answer": input_text.upper()}
"""


def _write_project(root: Path) -> None:
    (root / "configs").mkdir(parents=True)
    (root / "inputs").mkdir()
    (root / "configs" / "simulation.yaml").write_text(
        BASIC_CONFIG.format(iterations=2, target="agent:run", extra=""), encoding="utf-8"
    )
    (root / "inputs" / "generated.yaml").write_text(INPUTS, encoding="utf-8")
    (root / "agent.py").write_text(AGENT, encoding="utf-8")
    # A rootdir marker, as a real project has: node ids are relative to it on every host.
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Host:
    """An execnet socket server on 127.0.0.1, working in its own copy of the project."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        _write_project(folder)
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(SOCKETSERVER), f"127.0.0.1:{self.port}"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    pytest.fail(f"execnet socket server on port {self.port} did not start")
                time.sleep(0.05)
        # The probe connection used the server's one exec slot per connection: it loops.

    @property
    def tx(self) -> str:
        return f"socket=127.0.0.1:{self.port}//chdir={self.folder}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[Path, list[Host]]]:
    """The controller's project folder and two "hosts" with their own copies."""
    controller = tmp_path / "controller" / "project"
    _write_project(controller)
    started = [Host(tmp_path / f"host{i}" / "project") for i in (1, 2)]
    try:
        yield controller, started
    finally:
        for host in started:
            host.stop()


def _pytest(cwd: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(popen.pop("env", {}))
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **popen,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate(timeout=10)
        pytest.fail(f"pytest did not finish within {HANG_GUARD} s:\n{out}")
    return process.returncode, out


def _remote_args(hosts: list[Host]) -> list[str]:
    args = ["-p", "xdist", "--dist", "load"]
    for host in hosts:
        args += ["--tx", host.tx]
    return args


def _experiment(project: Path, output: str) -> Path:
    (found,) = sorted((project / output).glob("exp_*"))
    return found


def _rows(exp: Path) -> dict[str, dict[str, Any]]:
    """trace_summary rows by case id, without what differs run to run (timings, ids)."""
    volatile = {"trace_id", "duration_ms", "timestamp", "worker", "started_at", "finished_at"}
    rows: dict[str, dict[str, Any]] = {}
    for line in (exp / "trace_summary.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows[row["case_id"]] = {k: v for k, v in row.items() if k not in volatile}
    return rows


def _summary(exp: Path) -> dict[str, Any]:
    return json.loads((exp / "summary.json").read_text(encoding="utf-8"))


def _reported(junit: Path) -> dict[str, str]:
    """Outcomes of the experiment items that reported, by case id, from the JUnit XML (which
    pytest writes even after an INTERNALERROR, unlike its terminal summary)."""
    outcomes: dict[str, str] = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if not name.startswith("demo["):
            continue
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[name[len("demo[") : -1]] = kinds[0] if kinds else "passed"
    return outcomes


@pytest.mark.parametrize(
    "config_arg",
    ["relative", "absolute", "relative --rsyncdir .", "--fluxloop-config=relative"],
)
def test_remote_workers_write_what_a_local_run_writes(
    hosts: tuple[Path, list[Host]], config_arg: str
) -> None:
    controller, remote = hosts
    relative = "configs/simulation.yaml"
    config_args = {
        "relative": ["--fluxloop-config", relative],
        "absolute": ["--fluxloop-config", str(controller / relative)],
        "relative --rsyncdir .": ["--fluxloop-config", relative, "--rsyncdir", "."],
        "--fluxloop-config=relative": [f"--fluxloop-config={relative}"],
    }[config_arg]
    code, local_out = _finish(
        _pytest(controller, *config_args[:2], "-n", "0", "--fluxloop-output-dir", "local")
    )
    assert code == 1, local_out  # the crash persona fails its two cases
    code, out = _finish(
        _pytest(controller, *_remote_args(remote), *config_args, "--fluxloop-output-dir", "remote")
    )
    assert code == 1, out
    assert "INTERNALERROR" not in out
    local, distributed = _experiment(controller, "local"), _experiment(controller, "remote")
    assert _rows(distributed) == _rows(local)
    assert len(_rows(local)) == 12
    summary = _summary(distributed)
    assert (summary["total_traces"], summary["failed"], summary["status"]) == (12, 2, "complete")
    # Both hosts ran cases, each in its own copy of the project.
    traces = [
        json.loads(line)
        for line in (distributed / "traces.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {t["worker"] for t in traces} == {"gw0", "gw1"}
    assert all((host.folder / "started").is_dir() for host in remote)
    # Paths in the artifacts are the controller's.
    metadata = (distributed / "metadata.json").read_text("utf-8")
    assert str(controller / relative) in metadata
    for name in ("metadata.json", "summary.json"):
        data = json.loads((distributed / name).read_text("utf-8"))
        data.pop("pytest_args", None)  # the --tx specs name the hosts' folders, as typed
        assert not any(str(host.folder) in json.dumps(data) for host in remote), name
    # Node ids are relative to the project, as in a local run.
    assert "configs/simulation.yaml::demo[" in out


@pytest.mark.parametrize("restarts", [[], ["--max-worker-restart", "0"]], ids=["default", "0"])
def test_a_host_lost_mid_run_loses_no_reported_record(
    hosts: tuple[Path, list[Host]], restarts: list[str]
) -> None:
    controller, remote = hosts
    for host in remote:
        (host.folder / "pause").write_text("0.3", encoding="utf-8")
    process = _pytest(
        controller,
        *_remote_args(remote),
        *restarts,
        "--junitxml=junit.xml",
        "--fluxloop-config",
        "configs/simulation.yaml",
    )
    started = remote[1].folder / "started"
    deadline = time.monotonic() + HANG_GUARD
    # Two cases started there: the first one finished (and reported) before the second.
    while not (started.is_dir() and len(list(started.iterdir())) >= 2):
        if time.monotonic() > deadline or process.poll() is not None:
            break
        time.sleep(0.02)
    remote[1].stop()  # the host is gone, with the case it was running
    code, out = _finish(process)
    if restarts:
        assert "INTERNALERROR" not in out, out
        assert code == 1, out
    # Else xdist replaces the crashed worker by connecting to its host again, which is gone:
    # its own INTERNALERROR (refused or reset; the README says --max-worker-restart=0). The
    # records must be there all the same.
    exp = _experiment(controller, "experiments")
    rows = _rows(exp)
    reported = _reported(controller / "junit.xml")
    # No silent loss: every item that reported has its record, and nothing else is counted.
    assert set(rows) == set(reported), out
    summary = _summary(exp)
    assert summary["total_traces"] == len(rows) == len(reported)
    assert summary["failed"] == sum(1 for r in rows.values() if not r["success"])
    if restarts and len(rows) < summary["total_cases"]:
        # xdist stopped the run when the worker crashed: cases left unrun, so not "complete".
        assert summary["status"] == "interrupted", summary
    # Cases that finished on the lost host before it went are there; the one it was running
    # is recorded crashed.
    traces = [json.loads(line) for line in (exp / "traces.jsonl").read_text("utf-8").splitlines()]
    assert any(t["worker"] == "gw1" and t["status"] != "crashed" for t in traces), out
    assert any(t["worker"] == "gw1" and t["status"] == "crashed" for t in traces), out


def test_a_host_with_another_project_version_stops_the_run(
    hosts: tuple[Path, list[Host]],
) -> None:
    controller, remote = hosts
    inputs = remote[1].folder / "inputs" / "generated.yaml"
    inputs.write_text(INPUTS.replace("question 5", "question five"), encoding="utf-8")
    code, out = _finish(
        _pytest(controller, *_remote_args(remote), "--fluxloop-config", "configs/simulation.yaml")
    )
    assert code in (1, 2), out
    assert "INTERNALERROR" not in out, out
    assert "plans other cases for experiment 'demo' than the controller" in out, out


def test_option_values_reach_remote_workers_as_one_word() -> None:
    from pytest_fluxloop.plugin.xdist import remote_args

    args = ["-p", "xdist", "--fluxloop-config", "c.yaml", "--fluxloop-progress", "tests"]
    args += ["--rsyncdir", ".", "--fluxloop-output-dir", "out", "--fluxloop-iterations", "2"]
    assert remote_args(args) == [
        "-p",
        "xdist",
        "--fluxloop-config=c.yaml",
        "--fluxloop-progress",
        "tests",
        "--rsyncdir=.",
        "--fluxloop-output-dir=out",
        "--fluxloop-iterations=2",
    ]
