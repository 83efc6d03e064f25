"""Run the ``fluxloop`` CLI in a real subprocess for tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Prefer the installed console script: it is the real entry point, and unlike
# `python -m` it does not put the cwd on sys.path, where the documented `./fluxloop/`
# project root would shadow the `fluxloop` SDK package under an editable install.
_SCRIPT = Path(sys.executable).with_name("fluxloop")
CLI_COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "pytest_fluxloop.cli"]

CLI_TIMEOUT_S = 120  # hang guard only; normal runs take a few seconds


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


def run_cli(
    *args: str | Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """``fluxloop ARGS`` in ``cwd`` with no stdin (never a TTY)."""
    return subprocess.run(
        [*CLI_COMMAND, *map(str, args)],
        cwd=cwd,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """Assertion message with everything needed to debug a failed CLI call."""
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
