"""Detecting the other ``fluxloop`` (the earlier SDK / CLI that share our import name and
command). Each scenario runs in a subprocess with a fake site folder first on ``sys.path``, so
this test process keeps its own ``fluxloop``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import fluxloop
from pytest_fluxloop import distributions

PROBE = """
import json, sys
from pytest_fluxloop import distributions as d
before = d.foreign_fluxloop_message()
imported_by_check = "fluxloop" in sys.modules
import fluxloop
print(json.dumps({
    "before_import": before,
    "imported_by_check": imported_by_check,
    "after_import": d.foreign_fluxloop_message(),
    "given_module": d.foreign_fluxloop_message(fluxloop),
    "conflicts": d.conflicting_distributions(),
    "cached": d.conflicting_distributions() == d.conflicting_distributions(),
    "fluxloop_file": fluxloop.__file__,
}))
"""


def _probe(cwd: Path, pythonpath: Path | None = None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def _fake_dist(site: Path, name: str, version: str, files: dict[str, str], **extra: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for rel, text in extra.items():
        (info / rel).write_text(text, encoding="utf-8")
    record = [f"{rel},," for rel in files] + [f"{info.name}/{n},," for n in ("METADATA", "RECORD")]
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")


@pytest.fixture
def legacy_site(tmp_path: Path) -> Path:
    """A site folder holding a fake earlier SDK (fluxloop 0.1.8) and CLI (fluxloop-cli)."""
    site = tmp_path / "site"
    _fake_dist(
        site,
        "fluxloop",
        "0.1.8",
        # What matters: a fluxloop/__init__.py without our marker. It fails loudly if the
        # check imports it (it must only read it).
        {"fluxloop/__init__.py": '__version__ = "0.1.7"\nimport os\nos.environ["IMPORTED"]="1"\n'},
    )
    _fake_dist(
        site,
        "fluxloop-cli",
        "0.2.36",
        {"fluxloop_cli/__init__.py": "", "fluxloop_cli/main.py": "def app():\n    pass\n"},
        **{"entry_points.txt": "[console_scripts]\nfluxloop = fluxloop_cli.main:app\n"},
    )
    return site


def test_foreign_sdk_is_named_with_its_distribution_and_version(
    tmp_path: Path, legacy_site: Path
) -> None:
    result = _probe(tmp_path, legacy_site)
    legacy_init = str((legacy_site / "fluxloop" / "__init__.py").resolve())
    assert result["fluxloop_file"] == legacy_init  # the fake really shadows ours
    assert result["imported_by_check"] is False  # detected without importing it
    for key in ("before_import", "after_import", "given_module"):
        message = result[key]
        assert message is not None, key
        assert legacy_init in message
        assert "fluxloop 0.1.8" in message
        assert "pip uninstall -y fluxloop fluxloop-cli" in message
        assert "pip install --force-reinstall --no-deps pytest-fluxloop" in message
        assert "python -m pytest_fluxloop.cli" in message


def test_conflicting_distributions_are_listed_with_versions_and_reasons(
    tmp_path: Path, legacy_site: Path
) -> None:
    result = _probe(tmp_path, legacy_site)
    conflicts = result["conflicts"]
    assert result["cached"] is True
    assert len(conflicts) == 2, conflicts
    sdk = next(c for c in conflicts if c.startswith("fluxloop 0.1.8"))
    cli = next(c for c in conflicts if c.startswith("fluxloop-cli 0.2.36"))
    assert "fluxloop/__init__.py" in sdk
    assert "`fluxloop` command" in cli
    assert str(legacy_site.resolve()) in sdk


def test_nothing_is_reported_with_our_package(tmp_path: Path) -> None:
    result = _probe(tmp_path)
    assert result["fluxloop_file"] == fluxloop.__file__
    assert result["before_import"] is None
    assert result["after_import"] is None
    assert result["given_module"] is None
    assert result["conflicts"] == []


def test_a_local_fluxloop_folder_is_reported_as_unowned(tmp_path: Path) -> None:
    site = tmp_path / "shadow"
    (site / "fluxloop").mkdir(parents=True)
    (site / "fluxloop" / "__init__.py").write_text("x = 1\n", encoding="utf-8")
    result = _probe(tmp_path, site)
    message = result["before_import"]
    assert message is not None
    assert str((site / "fluxloop" / "__init__.py").resolve()) in message
    assert "no installed distribution owns it" in message
    assert result["conflicts"] == []


def test_our_package_is_recognised_in_process() -> None:
    assert distributions.is_ours(fluxloop)
    assert distributions.foreign_fluxloop_message(fluxloop) is None
    assert distributions.foreign_fluxloop_message() is None


def test_a_module_without_the_marker_is_foreign() -> None:
    fake = types.ModuleType("fluxloop")
    fake.__path__ = ["/somewhere/site-packages/fluxloop"]
    message = distributions.foreign_fluxloop_message(fake)
    assert message is not None
    assert "namespace package" in message
    assert "/somewhere/site-packages/fluxloop" in message
    assert distributions.conflict_advice() in message


def test_advice_names_the_cli_module_that_exists() -> None:
    advice = distributions.conflict_advice()
    assert "pip uninstall -y fluxloop fluxloop-cli" in advice
    assert f"python -m {distributions.CLI_MODULE}" in advice
    assert importlib.util.find_spec(f"{distributions.CLI_MODULE}.__main__") is not None


def test_conflict_report_is_one_message_with_the_advice_once() -> None:
    from pytest_fluxloop.distributions import conflict_advice, conflict_report

    assert conflict_report(None, []) is None
    report = conflict_report("`import fluxloop` loads /x/fluxloop", ["fluxloop 0.1.8 (/x): why"])
    assert report is not None
    lines = report.splitlines()
    assert lines[0] == "another FluxLoop installation conflicts with pytest-fluxloop."
    assert lines[1] == "`import fluxloop` loads /x/fluxloop"
    assert "  - fluxloop 0.1.8 (/x): why" in lines
    assert report.endswith(conflict_advice()) and report.count(conflict_advice()) == 1
