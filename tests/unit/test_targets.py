"""Resolving ``runner.target`` and binding cases to agent parameters (faults 1-4).

Every runner pattern of seeds/000 is resolved from real modules written into ``tmp_path``
and run through the real executor. Each test uses its own module names and restores
``sys.path``, ``sys.modules`` and the cwd afterwards.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.engine_helpers import isolated_imports, make_case, resolve_in, unique, write_module

from pytest_fluxloop.config.models import RunnerConfig
from pytest_fluxloop.engine import CaseExecutor, RunSettings, Target, Workspace, resolve_target
from pytest_fluxloop.engine.binding import INPUT_NAMES
from pytest_fluxloop.errors import ConfigError, TargetError
from pytest_fluxloop.plan.cases import Case
from pytest_fluxloop.records import TraceRecord


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def run_case(target: Target, case: Case | None = None, **settings: Any) -> TraceRecord:
    settings.setdefault("max_retries", 0)
    settings.setdefault("timeout_seconds", 10.0)
    executor = CaseExecutor(target, RunSettings(**settings))
    return executor.run(case or make_case()).record


def ok(record: TraceRecord) -> Any:
    """The output of a successful record (with the error in the message otherwise)."""
    assert record.success, record.error
    assert record.status == "success"
    return record.output


# --------------------------------------------------------------------------- engine purity


def test_engine_import_does_not_import_pytest(tmp_path: Path) -> None:
    code = (
        "import sys, pytest_fluxloop.engine\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- patterns


def test_module_function_sync(tmp_path: Path) -> None:
    mod = unique()
    write_module(tmp_path, f"{mod}.py", "def run(input_text):\n    return 'echo: ' + input_text\n")
    target = resolve_in(tmp_path, f"{mod}:run")
    assert target.spec == f"{mod}:run"
    assert target.is_async is False
    assert ok(run_case(target, make_case("hi"))) == "echo: hi"


def test_module_function_async(tmp_path: Path) -> None:
    mod = unique()
    write_module(
        tmp_path,
        f"{mod}.py",
        """
        import asyncio

        async def run(input_text):
            await asyncio.sleep(0)
            return {"async": True, "input": input_text}
        """,
    )
    target = resolve_in(tmp_path, f"{mod}:run")
    assert target.is_async is True
    assert ok(run_case(target, make_case("hi"))) == {"async": True, "input": "hi"}


def test_class_method_gets_a_fresh_instance_per_case(tmp_path: Path) -> None:
    mod = unique()
    write_module(
        tmp_path,
        f"{mod}.py",
        """
        class Agent:
            instances = 0

            def __init__(self):
                Agent.instances += 1
                self.calls = 0

            def process(self, input_text):
                self.calls += 1
                return {"instance": Agent.instances, "calls_on_this_instance": self.calls}
        """,
    )
    target = resolve_in(tmp_path, f"{mod}:Agent.process")
    agent_cls = sys.modules[mod].Agent
    assert agent_cls.instances == 0, "resolving the target must not construct the class"
    outputs = [ok(run_case(target, make_case(f"q{i}"))) for i in range(3)]
    assert agent_cls.instances == 3
    assert [o["instance"] for o in outputs] == [1, 2, 3]
    # A fresh instance each time: no state carried from one case to the next.
    assert all(o["calls_on_this_instance"] == 1 for o in outputs)


def test_async_method_on_class(tmp_path: Path) -> None:
    mod = unique()
    write_module(
        tmp_path,
        f"{mod}.py",
        """
        class Agent:
            async def handle(self, message):
                return message.upper()
        """,
    )
    target = resolve_in(tmp_path, f"{mod}:Agent.handle")
    assert target.is_async is True
    assert ok(run_case(target, make_case("shout"))) == "SHOUT"


@pytest.mark.parametrize("attr", ["static_run", "class_run"])
def test_static_and_class_methods(tmp_path: Path, attr: str) -> None:
    mod = unique()
    write_module(
        tmp_path,
        f"{mod}.py",
        """
        class Agent:
            # A constructor FluxLoop could not call: static/class methods need no instance.
            def __init__(self, api_key):
                raise AssertionError("must not be constructed")

            @staticmethod
            def static_run(input_text):
                return "static:" + input_text

            @classmethod
            def class_run(cls, input_text):
                return cls.__name__ + ":" + input_text
        """,
    )
    target = resolve_in(tmp_path, f"{mod}:Agent.{attr}")
    expected = {"static_run": "static:x", "class_run": "Agent:x"}[attr]
    assert ok(run_case(target, make_case("x"))) == expected


def test_module_level_instance_method(tmp_path: Path) -> None:
    mod = unique()
    write_module(
        tmp_path,
        f"{mod}.py",
        """
        class Agent:
            def __init__(self, greeting):
                self.greeting = greeting
                self.calls = 0

            def handle(self, input_text):
                self.calls += 1
                return f"{self.greeting} {input_text} #{self.calls}"

        agent = Agent("hello")
        """,
    )
    target = resolve_in(tmp_path, f"{mod}:agent.handle")
    assert ok(run_case(target, make_case("a"))) == "hello a #1"
    # The module-level instance is the user's object: it is reused, not recreated.
    assert ok(run_case(target, make_case("b"))) == "hello b #2"


def test_nested_module(tmp_path: Path) -> None:
    pkg = unique("pkg")
    write_module(tmp_path, f"{pkg}/__init__.py", "")
    write_module(
        tmp_path, f"{pkg}/sub.py", "def run(input_text):\n    return 'sub:' + input_text\n"
    )
    target = resolve_in(tmp_path, f"{pkg}.sub:run")
    assert ok(run_case(target, make_case("x"))) == "sub:x"


def test_module_path_and_function_name(tmp_path: Path) -> None:
    pkg = unique("pkg")
    write_module(tmp_path, f"{pkg}/__init__.py", "")
    write_module(tmp_path, f"{pkg}/agent.py", "def run(query):\n    return 'mp:' + query\n")
    runner = RunnerConfig(module_path=f"{pkg}.agent", function_name="run")
    assert runner.target_spec == f"{pkg}.agent:run"
    Workspace.from_runner(runner, tmp_path).activate()
    target = resolve_target(runner.target_spec)
    assert ok(run_case(target, make_case("x"))) == "mp:x"


# --------------------------------------------------------------------------- workspace


def test_python_path_entries_are_relative_to_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique()
    write_module(tmp_path, f"src/{mod}.py", "def run(input_text):\n    return 'from src'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the process cwd must not matter
    runner = RunnerConfig(target=f"{mod}:run", python_path=["src"])
    workspace = Workspace.from_runner(runner, tmp_path)
    assert workspace.python_path == ((tmp_path / "src").resolve(),)
    assert workspace.working_directory == tmp_path.resolve()
    workspace.activate()
    assert ok(run_case(resolve_target(f"{mod}:run"))) == "from src"


def test_lazy_import_inside_agent_needs_python_path(tmp_path: Path) -> None:
    mod, lib = unique(), unique("lib")
    write_module(tmp_path, f"libs/{lib}.py", "def shout(text):\n    return text.upper() + '!'\n")
    write_module(
        tmp_path,
        f"app/{mod}.py",
        f"""
        def run(input_text):
            import {lib}  # imported lazily, at call time

            return {lib}.shout(input_text)
        """,
    )
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(lib)  # not importable without the python_path entry
    runner = RunnerConfig(target=f"{mod}:run", working_directory="app", python_path=["libs"])
    Workspace.from_runner(runner, tmp_path).activate()
    target = resolve_target(f"{mod}:run")
    assert ok(run_case(target, make_case("hey"))) == "HEY!"


def test_working_directory_is_the_cwd_of_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique()
    write_module(
        tmp_path,
        f"app/{mod}.py",
        """
        import os

        def run(input_text):
            with open("data/prompt.txt", encoding="utf-8") as fh:
                return fh.read().strip() + " | " + os.path.basename(os.getcwd())
        """,
    )
    (tmp_path / "app" / "data").mkdir()
    (tmp_path / "app" / "data" / "prompt.txt").write_text("You are helpful.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # started from the project root, as the CLI does
    runner = RunnerConfig(target=f"{mod}:run", working_directory="app")
    Workspace.from_runner(runner, tmp_path).activate()
    target = resolve_target(f"{mod}:run")
    assert ok(run_case(target)) == "You are helpful. | app"


def test_workspace_active_restores_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "app").mkdir()
    monkeypatch.chdir(tmp_path)
    workspace = Workspace(working_directory=(tmp_path / "app").resolve(), python_path=())
    with workspace.active():
        assert Path.cwd() == (tmp_path / "app").resolve()
    assert Path.cwd() == tmp_path


def test_missing_working_directory_is_a_target_error(tmp_path: Path) -> None:
    runner = RunnerConfig(target="agent:run", working_directory="no_such_dir")
    with pytest.raises(TargetError, match="no_such_dir") as info:
        Workspace.from_runner(runner, tmp_path)
    assert isinstance(info.value, ConfigError)


# --------------------------------------------------------------------------- fault 1: form


@pytest.mark.parametrize("spec", ["{mod}", "{mod}:", ":run", "{mod}.run"])
def test_target_without_function_names_the_expected_form(tmp_path: Path, spec: str) -> None:
    mod = unique()
    marker = tmp_path / "imported.txt"
    write_module(
        tmp_path,
        f"{mod}.py",
        f"open({str(marker)!r}, 'w').close()\n\ndef run(input_text):\n    return 'x'\n",
    )
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, spec.format(mod=mod))
    message = str(info.value)
    assert "module:function" in message
    assert "module:Class.method" in message
    # Nothing runs: the module was not even imported.
    assert not marker.exists()
    assert mod not in sys.modules


# --------------------------------------------------------------------------- fault 2: import


def test_missing_module_is_named(tmp_path: Path) -> None:
    mod = unique("missing")
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, f"{mod}:run")
    message = str(info.value)
    assert f"'{mod}'" in message
    assert "not found" in message


def test_missing_submodule_is_named(tmp_path: Path) -> None:
    pkg = unique("pkg")
    write_module(tmp_path, f"{pkg}/__init__.py", "")
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, f"{pkg}.nope:run")
    assert f"'{pkg}.nope'" in str(info.value)


def test_module_whose_import_raises_keeps_the_original_traceback(tmp_path: Path) -> None:
    mod = unique()
    path = write_module(
        tmp_path,
        f"{mod}.py",
        """
        import os


        def helper():
            raise RuntimeError("kaboom at import time")


        helper()
        """,
    )
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, f"{mod}:run")
    message = str(info.value)
    assert f"'{mod}'" in message
    assert "RuntimeError" in message
    assert "kaboom at import time" in message
    assert "Traceback" in message
    # The original frames: the module file, the raising line and the calling line.
    assert str(path) in message
    assert "line 5" in message  # raise RuntimeError(...)
    assert "line 8" in message  # helper()


def test_module_importing_a_missing_dependency_names_the_dependency(tmp_path: Path) -> None:
    mod, dep = unique(), unique("not_installed_dep")
    write_module(tmp_path, f"{mod}.py", f"import {dep}\n\ndef run(input_text):\n    return 1\n")
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, f"{mod}:run")
    message = str(info.value)
    assert f"'{mod}'" in message
    assert dep in message
    # Not "module <agent> not found": the agent module exists, its dependency does not.
    assert f"module '{mod}' not found" not in message


def test_system_exit_at_import_is_a_target_error(tmp_path: Path) -> None:
    mod = unique()
    write_module(tmp_path, f"{mod}.py", "raise SystemExit(3)\n")
    with pytest.raises(TargetError, match=mod):
        resolve_in(tmp_path, f"{mod}:run")


# --------------------------------------------------------------------------- fault 3: attribute

AGENT_MODULE = """
LIMIT = 3


def run(input_text):
    return input_text


class Agent:
    limit = 5

    def process(self, input_text):
        return input_text


class NeedsKey:
    def __init__(self, api_key, *, region):
        self.api_key = api_key

    def process(self, input_text):
        return input_text


agent = Agent()
"""


@pytest.mark.parametrize(
    ("attr", "words"),
    [
        ("nope", ["'nope'", "not found"]),
        ("Agent.nope", ["'nope'", "not found", "Agent"]),
        ("agent.nope", ["'nope'", "not found", "agent"]),
        ("Missing.run", ["'Missing'", "not found"]),
    ],
)
def test_attribute_not_found_names_attribute_and_module(
    tmp_path: Path, attr: str, words: list[str]
) -> None:
    mod = unique()
    write_module(tmp_path, f"{mod}.py", AGENT_MODULE)
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, f"{mod}:{attr}")
    message = str(info.value)
    assert mod in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("attr", ["LIMIT", "Agent.limit"])
def test_attribute_not_callable_names_attribute_and_module(tmp_path: Path, attr: str) -> None:
    mod = unique()
    write_module(tmp_path, f"{mod}.py", AGENT_MODULE)
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, f"{mod}:{attr}")
    message = str(info.value)
    assert "not callable" in message
    assert mod in message
    assert attr.split(".")[-1] in message


def test_a_class_as_target_asks_for_a_method(tmp_path: Path) -> None:
    mod = unique()
    write_module(tmp_path, f"{mod}.py", AGENT_MODULE)
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, f"{mod}:Agent")
    assert "method" in str(info.value)


def test_class_method_with_required_constructor_args(tmp_path: Path) -> None:
    mod = unique()
    write_module(tmp_path, f"{mod}.py", AGENT_MODULE)
    with pytest.raises(TargetError) as info:
        resolve_in(tmp_path, f"{mod}:NeedsKey.process")
    message = str(info.value)
    assert "NeedsKey" in message
    assert "api_key" in message
    assert "region" in message
    assert "instance.method" in message  # the fix


# --------------------------------------------------------------------------- fault 4: signature


def agent_target(tmp_path: Path, source: str, name: str = "run") -> Target:
    mod = unique()
    write_module(tmp_path, f"{mod}.py", source)
    return resolve_in(tmp_path, f"{mod}:{name}")


def test_required_parameter_fluxloop_cannot_fill_is_listed(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as info:
        agent_target(
            tmp_path, "def run(input_text, api_client, *, retries, timeout=3):\n    return 1\n"
        )
    message = str(info.value)
    assert "api_client" in message
    assert "retries" in message
    assert "timeout" not in message.split("FluxLoop passes")[0]


@pytest.mark.parametrize(
    "source",
    [
        "def run():\n    return 1\n",
        "def run(persona=None, seed=None):\n    return 1\n",
        "def run(*, foo):\n    return 1\n",
        "def run(**kwargs):\n    return 1\n",
    ],
    ids=["no-params", "only-optional-names", "keyword-only-unknown", "only-kwargs"],
)
def test_agent_without_an_input_parameter_is_an_error(tmp_path: Path, source: str) -> None:
    with pytest.raises(TargetError) as info:
        agent_target(tmp_path, source)
    message = str(info.value)
    assert "input" in message
    assert "input_text" in message  # says how to fix it


def test_required_conversation_state_is_an_error_before_any_case_runs(tmp_path: Path) -> None:
    """Single-turn runs have no conversation_state to pass: fail at resolve, not per case."""
    source = "def run(input_text, conversation_state):\n    return 'ok'\n"
    try:
        target = agent_target(tmp_path, source)
    except TargetError as exc:
        assert "conversation_state" in str(exc)
        return
    record = run_case(target)
    assert record.success, (
        "an agent with a required conversation_state was accepted at resolve time but the "
        f"case failed when called: {record.error}"
    )


# --------------------------------------------------------------------------- binding


@pytest.mark.parametrize("name", INPUT_NAMES)
def test_input_goes_to_a_recognised_name(tmp_path: Path, name: str) -> None:
    source = f"def run(context=None, {name}=None):\n    return {{'got': {name}, 'ctx': context}}\n"
    target = agent_target(tmp_path, source)
    assert target.binding.input_param == name
    assert ok(run_case(target, make_case("q"))) == {"got": "q", "ctx": None}


def test_input_names_are_tried_in_documented_order(tmp_path: Path) -> None:
    # All optional, declared in reverse preference order: the documented order decides.
    params = ", ".join(f"{n}=None" for n in reversed(INPUT_NAMES))
    target = agent_target(tmp_path, f"def run({params}):\n    return input_text\n")
    assert target.binding.input_param == "input_text"
    target = agent_target(tmp_path, "def run(content=None, message=None):\n    return message\n")
    assert target.binding.input_param == "message"
    assert ok(run_case(target, make_case("m"))) == "m"


def test_input_falls_back_to_the_first_parameter(tmp_path: Path) -> None:
    target = agent_target(
        tmp_path, "def run(prompt, history=None):\n    return [prompt, history]\n"
    )
    assert target.binding.input_param == "prompt"
    # history is filled too: the turns before this message, none in a single turn.
    assert ok(run_case(target, make_case("p"))) == ["p", []]


def test_fallback_skips_optional_names(tmp_path: Path) -> None:
    target = agent_target(tmp_path, "def run(persona, prompt):\n    return [persona, prompt]\n")
    assert target.binding.input_param == "prompt"
    assert ok(run_case(target, make_case("p", persona="expert"))) == ["expert", "p"]


def test_extras_are_passed_when_declared(tmp_path: Path) -> None:
    target = agent_target(
        tmp_path,
        """
        def run(input_text, persona, iteration, metadata, auto_approve, seed):
            return {
                "input": input_text,
                "persona": persona,
                "iteration": iteration,
                "metadata": metadata,
                "auto_approve": auto_approve,
                "seed": seed,
            }
        """,
    )
    case = make_case("hi", persona="expert", iteration=2, metadata={"k": "v"}, seed=99)
    record = run_case(target, case, auto_approve_tools=False)
    assert ok(record) == {
        "input": "hi",
        "persona": "expert",
        "iteration": 2,
        "metadata": {"k": "v"},
        "auto_approve": False,
        "seed": 99,
    }


def test_extras_are_not_passed_when_not_declared(tmp_path: Path) -> None:
    # Would raise TypeError if persona/iteration/... were passed.
    target = agent_target(tmp_path, "def run(query):\n    return query\n")
    assert target.binding.extras == ()
    assert ok(run_case(target, make_case("only input", persona="expert"))) == "only input"


def test_some_extras_declared(tmp_path: Path) -> None:
    target = agent_target(tmp_path, "def run(message, *, seed=None):\n    return [message, seed]\n")
    assert target.binding.extras == ("seed",)
    assert ok(run_case(target, make_case("m", seed=5))) == ["m", 5]


def test_positional_only_input(tmp_path: Path) -> None:
    target = agent_target(tmp_path, "def run(q, /, persona=None):\n    return [q, persona]\n")
    assert target.binding.positional == ("q",)
    assert ok(run_case(target, make_case("pos", persona="expert"))) == ["pos", "expert"]


def test_positional_only_optional_parameter_is_not_passed_by_keyword(tmp_path: Path) -> None:
    """``persona`` here can't be passed by keyword: pass it positionally, or not at all."""
    target = agent_target(tmp_path, "def run(text, persona=None, /):\n    return text\n")
    record = run_case(target, make_case("pos"))
    assert record.success, record.error
    assert record.output == "pos"


def test_var_keyword_agent_gets_only_the_input(tmp_path: Path) -> None:
    target = agent_target(
        tmp_path, "def run(input_text, **kwargs):\n    return [input_text, kwargs]\n"
    )
    assert ok(run_case(target, make_case("i"))) == ["i", {}]


def test_var_positional_agent_gets_the_input_positionally(tmp_path: Path) -> None:
    target = agent_target(tmp_path, "def run(*args, **kwargs):\n    return [list(args), kwargs]\n")
    assert ok(run_case(target, make_case("i"))) == [["i"], {}]


def test_keyword_only_recognised_input(tmp_path: Path) -> None:
    target = agent_target(tmp_path, "def run(*, user_message):\n    return user_message\n")
    assert ok(run_case(target, make_case("kw"))) == "kw"


def test_method_binding_skips_self(tmp_path: Path) -> None:
    mod = unique()
    write_module(
        tmp_path,
        f"{mod}.py",
        """
        class Agent:
            def process(self, prompt, persona=None):
                return [prompt, persona]
        """,
    )
    target = resolve_in(tmp_path, f"{mod}:Agent.process")
    assert target.binding.input_param == "prompt"
    params = list(inspect.signature(sys.modules[mod].Agent.process).parameters)
    assert params[0] == "self"
    assert ok(run_case(target, make_case("p", persona="x"))) == ["p", "x"]
