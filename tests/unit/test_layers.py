"""The layer rules hold: the import contracts in pyproject.toml, and what ``import fluxloop``
really loads at run time (production agents import it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# What the SDK may load of ours: the SDK itself and the leaf modules below it.
SDK_ALLOWED = {
    "pytest_fluxloop",
    "pytest_fluxloop.errors",
    "pytest_fluxloop.jsonsafe",
    "pytest_fluxloop.records",
    "pytest_fluxloop.redact",
}
HEAVY = (
    "pytest",
    "_pytest",
    "yaml",
    "openai",
    "anthropic",
    "httpx",
    "click",
    "jsonschema",
    "dotenv",  # fluxloop.load_env() imports it when called, never at import
)


def _python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")
def test_import_contracts_are_kept() -> None:
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_import_fluxloop_loads_only_the_sdk() -> None:
    out = _python(
        "import json, sys, fluxloop\n"
        "@fluxloop.agent()\n"
        "def run(text):\n"
        "    return text\n"
        "assert run('hi') == 'hi'\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = set(json.loads(out))
    ours = {m for m in modules if m.split(".")[0] == "pytest_fluxloop"}
    outside = sorted(
        m for m in ours if m not in SDK_ALLOWED and not m.startswith("pytest_fluxloop.sdk")
    )
    assert outside == [], f"import fluxloop loaded harness modules: {outside}"
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"import fluxloop loaded heavy packages: {heavy}"


def test_distribution_check_loads_nothing_of_ours() -> None:
    """The CLI and the plugin call it before trusting ``import fluxloop``: stdlib only."""
    out = _python(
        "import json, sys\n"
        "from pytest_fluxloop import distributions\n"
        "distributions.foreign_fluxloop_message()\n"
        "distributions.conflicting_distributions()\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = set(json.loads(out))
    ours = sorted(m for m in modules if m.split(".")[0] in ("pytest_fluxloop", "fluxloop"))
    assert ours == ["pytest_fluxloop", "pytest_fluxloop.distributions"]
    heavy = sorted(m for m in modules if m.split(".")[0] in (*HEAVY, "pydantic"))
    assert heavy == []


def test_harness_names_still_reachable_from_fluxloop() -> None:
    out = _python(
        "import fluxloop\n"
        "print(fluxloop.Experiment.__module__, fluxloop.load_config.__module__,"
        " fluxloop.Case.__module__)"
    )
    assert out.split() == [
        "pytest_fluxloop.run.experiment",
        "pytest_fluxloop.config.loader",
        "pytest_fluxloop.plan.cases",
    ]


def test_llm_layer_imports_no_provider_sdk_until_used() -> None:
    out = _python(
        "import json, sys, pytest_fluxloop.llm, pytest_fluxloop.supervisors\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = {m.split(".")[0] for m in json.loads(out)}
    assert not loaded & {"openai", "anthropic", "httpx", "pytest"}


def test_capture_hooks_load_no_provider_sdk_or_framework() -> None:
    """Capture hooks an SDK only once the agent has imported it: a run that uses none of
    them pays nothing for them (no openai, anthropic or LangChain import)."""
    out = _python(
        "import json, sys\n"
        "from pytest_fluxloop.integrations import case_capture, install\n"
        "from pytest_fluxloop.sdk.context import trace_context\n"
        "assert install() == []\n"
        "with trace_context('t') as ctx, case_capture(ctx) as notices:\n"
        "    assert notices == []\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = {m.split(".")[0] for m in json.loads(out)}
    assert not loaded & {"openai", "anthropic", "httpx", "httpx2", "langchain_core", "pytest"}
