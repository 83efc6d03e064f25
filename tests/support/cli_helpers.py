"""Run the ``fluxloop`` CLI, or pytest, in a real subprocess for tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# Prefer the installed console script: it is the real entry point, and unlike
# `python -m` it does not put the cwd on sys.path, where the documented `./fluxloop/`
# project root would shadow the `fluxloop` SDK package under an editable install.
_SCRIPT = Path(sys.executable).with_name("fluxloop")
CLI_COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "pytest_fluxloop.cli"]

CLI_TIMEOUT_S = 120  # hang guard only; normal runs take a few seconds
PYTEST_TIMEOUT_S = 180  # the same for a whole pytest session in a child process


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment minus anything that would steer the inner pytest/fluxloop.

    When these tests run under pytest (maybe xdist), variables like PYTEST_XDIST_WORKER or
    PYTEST_ADDOPTS would leak into the pytest that ``fluxloop run`` starts.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "FLUXLOOP_")) and key not in {"OPENAI_API_KEY"}
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def run_process(
    command: Sequence[str | Path],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """``COMMAND`` in ``cwd`` with :func:`clean_env` plus ``env`` and no stdin (never a TTY);
    its output captured as UTF-8 text."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


def run_cli(
    *args: str | Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """``fluxloop ARGS`` in ``cwd`` with no stdin (never a TTY)."""
    return run_process([*CLI_COMMAND, *args], cwd=cwd, env=env, timeout=timeout)


def run_child_pytest(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = PYTEST_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest -p no:cacheprovider ARGS`` in ``cwd``, as :func:`run_process`."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return run_process(command, cwd=cwd, env=env, timeout=timeout)


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """Assertion message with everything needed to debug a failed CLI call."""
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
