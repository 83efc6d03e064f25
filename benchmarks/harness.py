"""The benchmark harness: projects, timed child processes, A/B interleaving, the table.

Shared by the ``bench_*.py`` modules and ``run.py``. Only the standard library is used (and
the installed package, through its commands).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
PYCACHE = CACHE / "pycache"
PYTEST_FLAGS = ("-p", "no:cacheprovider", "-q")
TIME_BIN = shutil.which("time", path="/usr/bin:/bin")

AGENT_INSTANT = '''\
def run(input_text: str) -> str:
    """Instant agent: echo the input."""
    return input_text
'''

# The trivial agent of the per-case cost issue; plain tests check it with OK_EXPECTED.
AGENT_OK = '''\
def run(input_text: str) -> str:
    """Trivial agent: a fixed prefix and the input."""
    return "ok " + input_text
'''
OK_EXPECTED = '"ok " + text'

# Wrapper for machines without /usr/bin/time: a fresh interpreter whose only child is the
# measured command, so RUSAGE_CHILDREN.ru_maxrss is that command's peak RSS (KiB on Linux).
RSS_WRAPPER = """\
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as out:
    out.write(f"Maximum resident set size (kbytes): {peak}\\n")
sys.exit(rc)
"""


class BenchError(RuntimeError):
    """A measured command failed or produced the wrong artifacts."""


# --------------------------------------------------------------------------- environment


def child_env(inherit: bool) -> dict[str, str]:
    """The environment for every measured process.

    Unless ``inherit``: bytecode caching is switched on (this machine sets
    PYTHONDONTWRITEBYTECODE=1, which makes every run recompile every module, including
    pytest's assertion rewriting of installed plugins) with the caches redirected to
    ``benchmarks/.cache/pycache`` so nothing is written outside ``benchmarks/``; and
    PYTEST_ADDOPTS is dropped so a developer's ``-n 4`` does not leak in.
    """
    env = dict(os.environ)
    if not inherit:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONPATH", None)
    return env


def _first(path: str, prefix: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    return "?"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """nproc, CPU, RAM, Python, pytest, plugins and the package's git state."""
    plugins = sorted(
        f"{ep.dist.name if ep.dist else '?'}=={ep.dist.version if ep.dist else '?'}"
        for ep in metadata.entry_points(group="pytest11")
    )
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    dirty = [line for line in _git("status", "--porcelain").splitlines() if line.strip()]
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _first("/proc/cpuinfo", "model name"),
        "ram": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "?",
        "os": platform.platform(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "pytest": _version("pytest"),
        "pytest-fluxloop": _version("pytest-fluxloop"),
        "pytest plugins": ", ".join(dict.fromkeys(plugins)),
        "package git": f"{_git('rev-parse', '--short', 'HEAD') or '?'}"
        + (f" + {len(dirty)} uncommitted paths" if dirty else ""),
        "load average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "peak RSS via": TIME_BIN + " -v" if TIME_BIN else "python -c wrapper (ru_maxrss)",
    }


# --------------------------------------------------------------------------- projects


def case_text(index: int) -> str:
    return f"Customer question {index}: how do I get a refund for order {1000 + index}?"


def write_project(
    root: Path,
    *,
    n_inputs: int,
    iterations: int,
    agent: str,
    parallel_runs: int = 1,
    name: str = "bench",
) -> Path:
    """A FluxLoop project of ``n_inputs × iterations`` cases (personas come per input).

    The layout is the one both ``fluxloop run experiment`` implementations read: the
    sectioned ``configs/`` folder (project.yaml is required by fluxloop-cli 0.2.36) and an
    ``inputs_file`` named in input.yaml (fluxloop-cli refuses to run without one).
    """
    (root / "configs").mkdir(parents=True)
    (root / "inputs").mkdir()
    (root / "configs" / "project.yaml").write_text(f"name: {name}\n")
    (root / "configs" / "simulation.yaml").write_text(
        f"""\
name: {name}
description: pytest-fluxloop benchmark project
iterations: {iterations}
parallel_runs: {parallel_runs}
run_delay_seconds: 0
seed: 42
runner:
  target: "agent:run"
  working_directory: .
  timeout_seconds: 60
  max_retries: 0
output_directory: experiments
save_traces: true
save_aggregated_metrics: true
"""
    )
    (root / "configs" / "input.yaml").write_text(
        """\
personas:
  - name: novice_user
    description: First-time customer, unsure of the terms
  - name: expert_user
    description: Frequent buyer who wants short, exact answers
inputs_file: inputs/generated.yaml
"""
    )
    lines = ["inputs:"]
    for index in range(n_inputs):
        persona = "novice_user" if index % 2 == 0 else "expert_user"
        lines.append(f"  - input: {json.dumps(case_text(index))}")
        lines.append("    metadata:")
        lines.append(f"      persona: {persona}")
    (root / "inputs" / "generated.yaml").write_text("\n".join(lines) + "\n")
    (root / "agent.py").write_text(agent)
    (root / "pytest.ini").write_text("[pytest]\n")  # pins rootdir to the project
    return root


def write_plain_project(
    root: Path,
    *,
    n_inputs: int,
    iterations: int,
    agent: str = AGENT_INSTANT,
    expected: str = "text",
) -> Path:
    """The same agent and inputs as a plain ``@pytest.mark.parametrize`` test.

    ``expected`` is the Python expression (of ``text``) the test compares ``run(text)``
    with, so the plain side checks what the agent returns, as the fluxloop side does.
    """
    root.mkdir(parents=True)
    texts = [
        f"{case_text(index)} (iteration {iteration})"
        for iteration in range(iterations)
        for index in range(n_inputs)
    ]
    body = ",\n".join(f"    {json.dumps(text)}" for text in texts)
    (root / "test_plain.py").write_text(
        f"""\
import pytest
from agent import run

TEXTS = [
{body},
]


@pytest.mark.parametrize("text", TEXTS)
def test_agent(text: str) -> None:
    assert run(text) == {expected}
"""
    )
    (root / "agent.py").write_text(agent)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    """One measured process."""

    wall_s: float
    log: Path
    maxrss_kb: int | None = None
    span_s: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Runner:
    """Runs commands in child processes with a fixed environment and a log per run."""

    def __init__(self, workdir: Path, env: dict[str, str], verbose: bool) -> None:
        self.workdir = workdir
        self.env = env
        self.verbose = verbose
        self._count = 0

    def run(self, cmd: Sequence[str], cwd: Path, *, memory: bool = False) -> Run:
        self._count += 1
        log = self.workdir / f"run{self._count:03d}.log"
        rss_file = self.workdir / f"run{self._count:03d}.rss"
        full = list(cmd)
        if memory:
            if TIME_BIN:
                full = [TIME_BIN, "-v", "-o", str(rss_file), *full]
            else:
                full = [sys.executable, "-c", RSS_WRAPPER, str(rss_file), *full]
        with log.open("wb") as out:
            t0 = time.perf_counter()
            done = subprocess.run(
                full,
                cwd=cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            wall = time.perf_counter() - t0
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise BenchError(f"exit code {done.returncode}: {' '.join(cmd)}\n--- log tail\n{tail}")
        maxrss = None
        if memory:
            match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", rss_file.read_text())
            if match is None:
                raise BenchError(f"no peak RSS in {rss_file}")
            maxrss = int(match.group(1))
        if self.verbose:
            extra = f", peak RSS {maxrss / 1024:.0f} MiB" if maxrss else ""
            print(f"    {wall:7.2f} s{extra}  {' '.join(cmd[-6:])}  [{cwd.name}]", flush=True)
        return Run(wall_s=wall, log=log, maxrss_kb=maxrss)


def pytest_cmd(*args: str, python: str | None = None) -> list[str]:
    """``python -m pytest ARGS -p no:cacheprovider -q`` (this interpreter by default)."""
    return [python or sys.executable, "-m", "pytest", *args, *PYTEST_FLAGS]


def fluxloop_cmd(
    config: str = "configs/simulation.yaml", *, python: str | None = None
) -> list[str]:
    return pytest_cmd("--fluxloop-config", config, python=python)


def exp_dirs(project: Path) -> set[Path]:
    return set((project / "experiments").glob("exp_*"))


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_experiment(
    runner: Runner, project: Path, cmd: Sequence[str], expected: int, *, memory: bool = False
) -> Run:
    """Run a pytest-fluxloop command; check summary.json and record the run's span."""
    before = exp_dirs(project)
    result = runner.run(cmd, project, memory=memory)
    new = sorted(exp_dirs(project) - before)
    if len(new) != 1:
        raise BenchError(f"expected one new experiment folder in {project}, got {new}")
    summary = json.loads((new[0] / "summary.json").read_text())
    traces = new[0] / "traces.jsonl"
    if (
        summary.get("status") != "complete"
        or summary.get("total_traces") != expected
        or summary.get("failed") != 0
        or not traces.exists()
    ):
        keys = ("status", "total_traces", "successful", "failed")
        seen = {k: summary.get(k) for k in keys}
        raise BenchError(f"unexpected summary {seen} in {new[0]}")
    result.span_s = (_iso(summary["completed_at"]) - _iso(summary["started_at"])).total_seconds()
    result.info["experiment_dir"] = str(new[0])
    result.info["parallel_warning"] = "parallel_runs" in result.log.read_text(errors="replace")
    return result


def run_plain(
    runner: Runner,
    project: Path,
    expected: int,
    *,
    memory: bool = False,
    python: str | None = None,
    extra: Sequence[str] = (),
) -> Run:
    """Run the plain parametrized project; check pytest said "N passed".

    ``python`` runs it under another interpreter (a venv's); ``extra`` are more pytest
    arguments (e.g. ``-p no:fluxloop``).
    """
    cmd = pytest_cmd("test_plain.py", *extra, python=python)
    result = runner.run(cmd, project, memory=memory)
    if f"{expected} passed" not in result.log.read_text(errors="replace"):
        raise BenchError(f"plain pytest did not report '{expected} passed' ({result.log})")
    return result


def pytest_session_seconds(log: Path) -> float | None:
    """pytest's own "N passed in X s" (excludes interpreter start-up and plugin import)."""
    match = re.search(r" passed in ([\d.]+)s", log.read_text(errors="replace"))
    return float(match.group(1)) if match else None


def interleave(repeat: int, *sides: Callable[[], Run]) -> list[list[Run]]:
    """Run every side once per round (A, B, A, B, ...); the runs of each side, in order."""
    runs: list[list[Run]] = [[] for _ in sides]
    for _ in range(repeat):
        for side, measure in zip(runs, sides, strict=True):
            side.append(measure())
    return runs


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def walls(runs: Sequence[Run]) -> list[float]:
    return [r.wall_s for r in runs]


def spans(runs: Sequence[Run]) -> list[float]:
    return [r.span_s or 0.0 for r in runs]


def fmt_runs(values: Sequence[float], unit: str = "s") -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + f"] {unit}"


def kcases(n: int) -> str:
    """``20k`` for 20,000 cases (the plain number when it is not whole thousands)."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the final table."""

    benchmark: str
    ours: str
    baseline: str
    ratio: float | None
    ratio_text: str
    target: str
    passed: bool
    verdict: str = ""

    def cells(self) -> list[str]:
        verdict = self.verdict or ("PASS" if self.passed else "FAIL")
        return [self.benchmark, self.ours, self.baseline, self.ratio_text, self.target, verdict]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Bench:
    """What every benchmark gets: where to run, how often, where to report, how big."""

    runner: Runner
    tmp: Path
    repeat: int
    report: Report
    smoke: bool = False
    """Tiny sizes and no warm-up: checks that the benchmark still runs, measures nothing."""


TABLE_HEADER = ("benchmark", "ours", "baseline", "ratio", "target", "result")


def print_table(rows: list[Row]) -> None:
    header = list(TABLE_HEADER)
    table = [header] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    rule = "-+-".join("-" * w for w in widths)
    print("\n" + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(rule)
    for line in table[1:]:
        print(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


# --------------------------------------------------------------------------- venvs

VenvKind = Literal["bare", "plugin"]
VENVS: dict[VenvKind, Path] = {"bare": CACHE / "bare-venv", "plugin": CACHE / "plugin-venv"}
_venv_pythons: dict[VenvKind, str] = {}


def _venv_problem(kind: VenvKind, env: dict[str, str]) -> str | None:
    """Why the ``kind`` venv cannot be used as is (None when it can)."""
    python = VENVS[kind] / "bin" / "python"
    if not python.exists():
        return "not there"
    wanted = _version("pytest")
    probe = [str(python), "-m", "pytest", "--version"]
    done = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=120)
    said = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        return f"`python -m pytest --version` failed: {said[-300:]}"
    if f"pytest {wanted}" not in said:
        return f"{said} there, pytest {wanted} here"
    if kind == "plugin":
        # An editable install of another checkout would measure the wrong code.
        code = "import pytest_fluxloop; print(pytest_fluxloop.__file__)"
        done = subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True)
        where = done.stdout.strip()
        if done.returncode != 0 or not where.startswith(str(REPO) + os.sep):
            return f"pytest_fluxloop comes from {where or 'nowhere'}, not {REPO}"
        if not (VENVS[kind] / "bin" / "fluxloop").exists():
            return "no bin/fluxloop script"
    return None


def ensure_venv(kind: VenvKind, bench: Bench) -> str:
    """The python of ``benchmarks/.cache/<kind>-venv``, created on first use.

    ``bare``: only ``pytest==<this interpreter's pytest>``. ``plugin``: that pytest and
    ``pip install -e <repo>`` with the package's core dependencies only, so none of the dev
    venv's extra pytest plugins (xdist, langsmith, ...) load. A venv already there is reused
    when its pytest runs and has the same version. Under ``--smoke`` nothing is installed: a
    missing venv is replaced by this interpreter, with a note.
    """
    if kind in _venv_pythons:
        return _venv_pythons[kind]
    path = VENVS[kind]
    env = bench.runner.env
    problem = _venv_problem(kind, env)
    if problem is not None and bench.smoke:
        note = f"{path.relative_to(REPO)}: {problem}; --smoke uses {sys.executable} instead"
        print(f"  note: {note}")
        bench.report.notes.append(note)
        _venv_pythons[kind] = sys.executable
        return sys.executable
    if problem is not None:
        pytest_req = f"pytest=={_version('pytest')}"
        wanted = [pytest_req, "-e", str(REPO)] if kind == "plugin" else [pytest_req]
        print(f"  creating {path.relative_to(REPO)} ({problem}): pip install {' '.join(wanted)}")
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        if subprocess.run([sys.executable, "-m", "venv", str(path)], env=env).returncode:
            raise BenchError(f"could not create {path}")
        log = CACHE / f"{kind}-venv-pip.log"
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
        with log.open("wb") as out:
            done = subprocess.run(
                [*pip, *wanted], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            raise BenchError(f"pip install {' '.join(wanted)} failed; see {log}")
        problem = _venv_problem(kind, env)
        if problem is not None:
            raise BenchError(f"{path} still unusable after installing: {problem}")
    # Not resolved: a venv's python is a symlink that must stay inside its venv.
    _venv_pythons[kind] = str(path / "bin" / "python")
    return _venv_pythons[kind]


def fluxloop_script(python: str) -> list[str]:
    """The ``fluxloop`` console script next to ``python`` (``python -m ...cli`` if none)."""
    script = Path(python).with_name("fluxloop")
    return [str(script)] if script.exists() else [python, "-m", "pytest_fluxloop.cli"]


# --------------------------------------------------------------------------- process setup


@contextlib.contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """``count`` busy-looping child processes, to measure under CPU contention."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fluxloop-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"\nkept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def build_parser(description: str, benchmarks: Sequence[str]) -> argparse.ArgumentParser:
    """The command line of ``run.py``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"any of: {', '.join(benchmarks)}, profile",
    )
    parser.add_argument("--all", action="store_true", help="run every benchmark")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per side (median; default 3, 1 with --smoke)"
    )
    parser.add_argument("--json", type=Path, help="write raw measurements to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument("--top", type=int, default=25, help="rows per profile listing")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines")
    parser.add_argument(
        "--hogs",
        type=int,
        default=0,
        metavar="N",
        help="keep N busy-looping processes running while measuring (CPU contention)",
    )
    parser.add_argument(
        "--inherit-env",
        action="store_true",
        help="run children with this environment as is (no bytecode cache redirection)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, 1 run per side, no warm-up, no fluxloop-cli install: checks that "
        "the benchmarks still run (the numbers mean nothing)",
    )
    return parser


# --------------------------------------------------------------------------- an LLM server


class _ChatHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ChatServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        server = self.server
        with server.lock:
            server.calls += 1
        if server.delay:
            time.sleep(server.delay)
        payload = json.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "unknown"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": server.answer(body)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": server.usage,
            }
        ).encode()
        # Headers and body in one write: no delayed-ACK stall on a keep-alive connection.
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        self.wfile.write(head + payload)


class ChatServer(http.server.ThreadingHTTPServer):
    """An OpenAI-compatible chat completions server on 127.0.0.1: ``answer(body)`` is the
    reply's content, after ``delay`` seconds; :attr:`calls` counts the requests."""

    daemon_threads = True

    def __init__(
        self, answer: Callable[[dict[str, Any]], str], delay: float, usage: dict[str, int]
    ) -> None:
        super().__init__(("127.0.0.1", 0), _ChatHandler)
        self.answer = answer
        self.delay = delay
        self.usage = usage
        self.lock = threading.Lock()
        self.calls = 0

    @property
    def base_url(self) -> str:
        """The ``base_url`` of an OpenAI client."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextlib.contextmanager
def chat_server(
    answer: Callable[[dict[str, Any]], str],
    *,
    delay: float = 0.0,
    usage: dict[str, int] | None = None,
) -> Iterator[ChatServer]:
    """A running :class:`ChatServer` for the block."""
    server = ChatServer(
        answer, delay, usage or {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}
    )
    thread = threading.Thread(target=server.serve_forever, name="bench-llm", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
