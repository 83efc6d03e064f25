"""Run the earlier FluxLoop releases' own project templates with pytest-fluxloop, unchanged.

For each release of ``fluxloop-cli`` named below, this script installs it from PyPI into a
venv of its own, lets it generate its project (``fluxloop init project``, and for 0.2.36
``fluxloop init pytest-template``), and then runs that project with *this* environment's
pytest-fluxloop exactly as generated:

- ``fluxloop run experiment --yes`` in the project folder,
- ``python -m pytest --fluxloop-config configs/simulation.yaml``,
- the same again with an inputs file in the earlier generator's shape,
- ``python -m pytest tests/test_fluxloop_smoke.py`` where the template has one,
- the sample agent's own ``__main__`` (``with fluxloop.instrument(...)``).

Each run must exit 0 and record the sample agent's spans (its ``@fluxloop.prompt`` call with
its model). Finally the earlier SDK (``fluxloop`` 0.1.8) is installed beside ours in a fresh
venv, and ``fluxloop doctor`` / ``fluxloop run experiment`` must say so plainly.

Usage::

    python scripts/legacy_projects.py [--work DIR] [--versions 0.2.0,0.2.36] [--keep]

Needs network access to PyPI; not part of the test suite (the tests use projects of the
same shapes written in ``tests/support/legacy_projects.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

VERSIONS = ("0.2.0", "0.2.11", "0.2.16", "0.2.21", "0.2.24", "0.2.29", "0.2.36")
EARLIER_SDK = "fluxloop==0.1.8"
REPO = Path(__file__).resolve().parents[1]
OUR_BIN = Path(sys.executable).parent

GENERATED_INPUTS = """\
generated_at: 2025-10-14T09:30:12.123456
metadata:
  config_name: demo_experiment
  total_base_inputs: 1
  total_personas: 2
  strategies: [rephrase]
  generation_mode: llm
  llm_provider: openai
  llm_model: gpt-4o-mini
inputs:
  - input: "How can I begin?"
    metadata: {strategy: rephrase, base_index: 0, persona: novice_user,
               persona_description: A user new to the system, prompt_hash: a1}
  - input: "What's the quickest way to get going with advanced setup?"
    metadata: {strategy: rephrase, base_index: 0, persona: expert_user,
               persona_description: An experienced power user, prompt_hash: b2}
"""


@dataclass
class Outcome:
    """One step of one release's check."""

    version: str
    step: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    """All outcomes, printed as a table at the end."""

    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, version: str, step: str, ok: bool, detail: str = "") -> bool:
        self.outcomes.append(Outcome(version, step, ok, detail))
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {version:7} {step}{': ' + detail if detail and not ok else ''}")
        return ok


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; never raises on a non-zero exit."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FLUXLOOP_"))}
    full_env.update(env or {})
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def venv(path: Path, *packages: str) -> Path:
    """A venv at ``path`` with ``packages`` installed (reused when it already exists)."""
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def generate_template(work: Path, version: str) -> Path:
    """The project that release ``version`` generates; returns its folder."""
    python = venv(work / f"venv-{version}", f"fluxloop-cli=={version}")
    out = work / f"tpl-{version}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    cli = python.parent / "fluxloop"
    # The earlier CLI asks before creating folders; answer yes to everything.
    proc = run([str(cli), "init", "project", "fluxloop", "--name", "demo"], out, stdin="y\n" * 20)
    if proc.returncode != 0:
        raise RuntimeError(f"fluxloop-cli {version} init failed:\n{proc.stdout}{proc.stderr}")
    project = out / "fluxloop" / "demo"
    if tuple(map(int, version.split("."))) >= (0, 2, 36):
        run([str(cli), "init", "pytest-template", "."], project, stdin="y\n" * 20)
    return project


def _experiment(project: Path, before: set[Path]) -> Path | None:
    found = set((project / "experiments").glob("exp_*")) - before
    return max(found) if found else None


def _check_traces(exp: Path | None) -> str | None:
    """None when the experiment has traces and the sample agent's spans; else why not."""
    if exp is None:
        return "no experiment folder"
    summary = json.loads((exp / "summary.json").read_text(encoding="utf-8"))
    if not summary.get("total_traces") or summary.get("failed"):
        return f"summary: {summary.get('total_traces')} traces, {summary.get('failed')} failed"
    lines = (exp / "observations.jsonl").read_text(encoding="utf-8").splitlines()
    observations = [json.loads(line) for line in lines]
    models = {(o.get("metadata") or {}).get("model") for o in observations}
    if not observations or "simple-model" not in models:
        return f"{len(observations)} observations; the @prompt model was not recorded"
    return None


def judge_env() -> tuple[dict[str, str], object | None]:
    """The OpenAI settings the templates' LLM judges use (0.2.36's ``metrics`` are judged).

    With ``OPENAI_API_KEY`` set, the environment's own; otherwise a local server from the
    test suite that echoes (every judgement ends ``unscored``, which never fails a case).
    Returns the variables and the server to shut down (or None).
    """
    if os.environ.get("OPENAI_API_KEY"):
        return {}, None
    import threading

    sys.path.insert(0, str(REPO / "tests"))
    from support.echo_llm import EchoServer  # the suite's helper; needs no extra package

    server = EchoServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return {"OPENAI_API_KEY": "legacy-check", "OPENAI_BASE_URL": server.url + "/v1"}, server


def check_release(work: Path, version: str, report: Report, env: dict[str, str]) -> None:
    """Every way a user runs the generated project, with this environment's tool."""
    project = generate_template(work, version)
    fluxloop = str(OUR_BIN / "fluxloop")
    python = sys.executable

    def step(name: str, cmd: list[str], traces: bool = True) -> None:
        before = set((project / "experiments").glob("exp_*"))
        proc = run(cmd, project, env=env)
        problem = None if proc.returncode == 0 else f"exit {proc.returncode}"
        if problem is None and traces:
            problem = _check_traces(_experiment(project, before))
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
        report.add(version, name, problem is None, f"{problem}; " + " | ".join(tail))

    step("fluxloop run experiment", [fluxloop, "run", "experiment", "--yes"])
    step(
        "pytest --fluxloop-config",
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--fluxloop-config",
            "configs/simulation.yaml",
        ],
    )
    inputs = project / "inputs" / "generated.yaml"
    inputs.parent.mkdir(exist_ok=True)
    inputs.write_text(GENERATED_INPUTS, encoding="utf-8")
    step("run with generated inputs", [fluxloop, "run", "experiment", "--yes"])
    smoke = project / "tests" / "test_fluxloop_smoke.py"
    if smoke.exists():
        step("pytest smoke template", [python, "-m", "pytest", "-q", str(smoke)], traces=False)
    proc = run([python, "examples/simple_agent.py"], project, env={"PYTHONPATH": str(project)})
    report.add(version, "sample agent __main__", proc.returncode == 0, proc.stderr[-400:])


def check_coexistence(work: Path, report: Report) -> None:
    """The earlier SDK installed beside ours: told plainly, never silently empty."""
    python = venv(work / "venv-both", EARLIER_SDK)
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], check=True)
    proc = run([str(python.parent / "fluxloop"), "doctor"], work)
    text = proc.stdout + proc.stderr
    report.add("both", "doctor names the other SDK", "0.1.8" in text and "fluxloop" in text, text)
    # The other order: the earlier SDK installed last owns fluxloop/__init__.py, so the
    # sample agent's `import fluxloop` gets it. The run must say so, not record nothing.
    python = venv(work / "venv-both-reversed", str(REPO))
    subprocess.run([str(python), "-m", "pip", "install", "-q", EARLIER_SDK], check=True)
    project = work / "tpl-0.2.36" / "fluxloop" / "demo"
    if project.is_dir():
        proc = run([str(python.parent / "fluxloop"), "run", "experiment", "--yes"], project)
        text = proc.stdout + proc.stderr
        told = "0.1.8" in text and "pip uninstall" in text
        report.add("both", "run warns when the other SDK owns `import fluxloop`", told, text[-800:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="Working folder (default: a temp folder)")
    parser.add_argument("--versions", default=",".join(VERSIONS))
    parser.add_argument("--keep", action="store_true", help="Keep the working folder")
    parser.add_argument("--no-coexistence", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fluxloop-legacy-"))
    work.mkdir(parents=True, exist_ok=True)
    report = Report()
    env, server = judge_env()
    try:
        for version in args.versions.split(","):
            print(f"fluxloop-cli {version}")
            check_release(work, version.strip(), report, env)
        if not args.no_coexistence:
            check_coexistence(work, report)
    finally:
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    failed = [o for o in report.outcomes if not o.ok]
    print(f"{len(report.outcomes) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
