"""Connecting to a provider (key, base URL, SDK check, client) and the llm layer's boundaries."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_fluxloop.llm as llm
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.llm import (
    OpenAIClient,
    create_client,
    require_sdk,
    resolve_api_key,
    resolve_base_url,
)

LLM_DIR = Path(llm.__file__).resolve().parent
#: The only project modules the llm layer may import (it sits below every role).
# sdk: the role context (acting_as), so captured calls are the role's, not the agent's.
ALLOWED = {"errors", "records", "redact", "jsonsafe", "sdk"}
VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "JUDGE_KEY", "OPENAI_BASE_URL")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --------------------------------------------------------------------------- API key


def test_key_order_explicit_then_callers_variables_then_providers(env: pytest.MonkeyPatch) -> None:
    env.setenv("OPENAI_API_KEY", "provider-key")
    assert resolve_api_key("openai", None, env=("JUDGE_KEY",), config_key="judge") == "provider-key"
    env.setenv("JUDGE_KEY", " judge-key ")
    assert resolve_api_key("openai", None, env=("JUDGE_KEY",), config_key="judge") == "judge-key"
    assert (
        resolve_api_key("openai", "explicit", env=("JUDGE_KEY",), config_key="judge") == "explicit"
    )
    assert resolve_api_key("openai", "   ", env=("JUDGE_KEY",), config_key="judge") == "judge-key"


def test_missing_key_names_every_place_to_set_one(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_api_key(
            "openai",
            None,
            env=("JUDGE_KEY",),
            config_key="evaluation.judge",
            role="judge",
            cli_flag="--judge-api-key",
            fallback="or disable the judge",
        )
    assert str(info.value).startswith(
        "the openai judge needs an API key: set OPENAI_API_KEY or JUDGE_KEY in the environment, "
        "pass --judge-api-key, or set evaluation.judge.api_key (or disable the judge). For a local"
    )


def test_missing_anthropic_key_without_extras(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_api_key("anthropic", None, config_key="judge")
    assert str(info.value) == (
        "the anthropic llm needs an API key: set ANTHROPIC_API_KEY in the environment, "
        "or set judge.api_key."
    )


# --------------------------------------------------------------------------- base URL / SDK


def test_base_url_explicit_then_provider_variable(env: pytest.MonkeyPatch) -> None:
    assert resolve_base_url("openai", None, config_key="judge") is None
    env.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    assert resolve_base_url("openai", None, config_key="judge") == "http://localhost:11434/v1"
    assert resolve_base_url("openai", "https://x/v1", config_key="judge") == "https://x/v1"
    with pytest.raises(ConfigError, match=r"^judge\.base_url must start with http"):
        resolve_base_url("openai", "localhost:11434", config_key="judge")


def test_missing_sdk_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    require_sdk("openai")
    monkeypatch.setitem(sys.modules, "anthropic", None)  # makes the package unimportable
    with pytest.raises(
        ConfigError,
        match=r"^judge provider 'anthropic' needs the anthropic package: pip install "
        r"'pytest-fluxloop\[anthropic\]'$",
    ):
        require_sdk("anthropic", role="judge")


def test_create_client_resolves_the_default_base_url(env: pytest.MonkeyPatch) -> None:
    client = create_client("openai", api_key="k" * 20, base_url=None, model="m", role="judge")
    assert isinstance(client, OpenAIClient)
    assert (client.base_url, client.model, client.role) == (
        "https://api.openai.com/v1",
        "m",
        "judge",
    )
    with pytest.raises(ConfigError, match="unknown LLM provider 'mistral'"):
        create_client("mistral", api_key="k", base_url=None, model="m")


@pytest.mark.skipif(importlib.util.find_spec("anthropic") is None, reason="no anthropic")
def test_create_anthropic_client(env: pytest.MonkeyPatch) -> None:
    env.delenv("ANTHROPIC_BASE_URL", raising=False)
    client = create_client("anthropic", api_key="k" * 20, base_url=None, model="claude-x")
    assert (client.provider, client.base_url) == ("anthropic", "https://api.anthropic.com")


# --------------------------------------------------------------------------- layering


def test_importing_llm_loads_no_sdk_and_no_pytest() -> None:
    code = (
        "import sys, pytest_fluxloop.llm; "
        "print(sorted({'openai', 'anthropic', 'httpx', 'pytest'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def _project_imports(path: Path) -> set[str]:
    """The pytest_fluxloop modules ``path`` imports, relative to the package root."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level >= 2:
            found.add((node.module or "").split(".")[0] or "<package>")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pytest_fluxloop"):
            found.add((node.module or "").split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("pytest_fluxloop.")
            )
    return found


def test_llm_imports_only_leaf_modules() -> None:
    files = sorted(LLM_DIR.glob("*.py"))
    assert len(files) >= 8
    wrong = {f.name: _project_imports(f) - ALLOWED for f in files}
    assert {name: bad for name, bad in wrong.items() if bad} == {}


def test_llm_imports_no_pytest_or_role_packages() -> None:
    for path in LLM_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        }
        names |= {
            (n.module or "").split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.level == 0
        }
        assert not names & {"pytest", "_pytest", "pluggy"}, path.name
