"""A clean SDK for each test: no ``FLUXLOOP_*`` variables, an empty working directory, the
default configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fluxloop


def fresh_sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Drop every ``FLUXLOOP_*`` variable, ``chdir`` into ``tmp_path`` (so no ``.env`` is
    found) and reset the SDK's configuration; monkeypatch undoes the first two."""
    for name in list(os.environ):
        if name.startswith("FLUXLOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    fluxloop.reset_config()
