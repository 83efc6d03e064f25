"""Agents written for the earlier FluxLoop tool: the names they declare are filled.

``persona`` is the persona's name *and* its profile (a ``str`` subclass), and the earlier
aliases (``user_persona``, ``persona_prompt``, ``messages``, ``history``, ``turns``,
``state``, ``dialog_state``, ``auto_approve_tools``, ``run_iteration``) get their values in
single-turn runs and in every turn of a conversation with the mock supervisor.
``runner.args`` are passed by name, warned about when the agent has no such parameter, and
refused when they would replace a value FluxLoop fills. Every test runs a real experiment
(config, inputs, agent module in ``tmp_path``) through ``Experiment``.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
import textwrap
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.engine_helpers import isolated_imports, make_case, target_of, unique

from pytest_fluxloop.engine import CaseExecutor, RunSettings, TargetOptions, resolve_target
from pytest_fluxloop.engine.binding import OPTIONAL_NAMES
from pytest_fluxloop.engine.persona import AgentPersona
from pytest_fluxloop.errors import FluxloopWarning, TargetError
from pytest_fluxloop.plan.cases import Case
from pytest_fluxloop.records import TraceRecord
from pytest_fluxloop.run import Experiment

NOVICE = {
    "name": "novice_user",
    "description": "New to the shop",
    "characteristics": ["impatient", "polite"],
    "language": "en",
    "expertise_level": "novice",
    "goals": ["get a refund"],
}
EXPERT = {"name": "expert_user", "description": "Knows the shop well", "goals": ["speed"]}
NOVICE_PROFILE = {**NOVICE, "constraints": [], "custom_attributes": {}}
"""NOVICE as the agent sees it: every profile field, the unset ones empty."""
SCRIPT = ["And how long does it take?"]


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def write_project(
    root: Path,
    agent: str,
    *,
    runner: dict[str, Any] | None = None,
    personas: list[dict[str, Any]] | None = None,
    inputs: list[dict[str, Any]] | None = None,
    multi_turn: dict[str, Any] | None = None,
) -> tuple[Path, str]:
    """A project with ``agent`` as module ``<name>.run``; returns the config and module."""
    module = unique("legacy")
    (root / f"{module}.py").write_text(textwrap.dedent(agent), encoding="utf-8")
    simulation: dict[str, Any] = {
        "name": "legacy",
        "description": "agents written for the earlier tool",
        "seed": 3,
        "runner": {"target": f"{module}:run", "timeout_seconds": 10, "max_retries": 0},
    }
    simulation["runner"].update(runner or {})
    if multi_turn is not None:
        simulation["multi_turn"] = multi_turn
    (root / "configs").mkdir(parents=True, exist_ok=True)
    config = root / "configs" / "simulation.yaml"
    config.write_text(yaml.safe_dump(simulation), encoding="utf-8")
    input_config: dict[str, Any] = {"personas": personas if personas is not None else [NOVICE]}
    if inputs is None:
        input_config["base_inputs"] = [{"input": "I want a refund"}]
    else:
        (root / "inputs").mkdir(exist_ok=True)
        (root / "inputs" / "generated.yaml").write_text(
            yaml.safe_dump({"inputs": inputs}), encoding="utf-8"
        )
    (root / "configs" / "input.yaml").write_text(yaml.safe_dump(input_config), encoding="utf-8")
    return config, module


def mock_conversation(**settings: Any) -> dict[str, Any]:
    """multi_turn settings: one scripted follow-up, so the agent is called twice."""
    return {
        "enabled": True,
        "max_turns": 5,
        "supervisor": {"provider": "mock", "metadata": {"scripted_questions": SCRIPT}},
        **settings,
    }


def run_first_case(config: Path) -> TraceRecord:
    experiment = Experiment.load(config)
    record = experiment.run_case(experiment.cases[0]).record
    assert record.success, record.error
    return record


def seen(module: str) -> list[dict[str, Any]]:
    """What the agent module recorded of its calls (its ``SEEN`` list)."""
    calls: list[dict[str, Any]] = sys.modules[module].SEEN
    return calls


# --------------------------------------------------------------------------- persona object

PERSONA_AGENT = """\
SEEN = []


def run(input_text, persona=None):
    SEEN.append(
        {
            "is_str": isinstance(persona, str),
            "equals_name": persona == "novice_user",
            "upper": persona.upper(),
            "formatted": f"[{persona}]",
            "json": __import__("json").dumps({"persona": persona}),
            "hash_as_name": hash(persona) == hash("novice_user"),
            "name": persona.name,
            "description": persona.description,
            "characteristics": persona.characteristics,
            "language": persona.language,
            "expertise_level": persona.expertise_level,
            "goals": persona.goals,
            "dict": persona.to_dict(),
        }
    )
    return f"[{persona}] {input_text}"
"""


def test_persona_is_the_name_string_and_the_configured_profile(tmp_path: Path) -> None:
    config, module = write_project(tmp_path, PERSONA_AGENT)
    record = run_first_case(config)
    # Agents that treat persona as a string see exactly what they saw before.
    assert record.output == "[novice_user] I want a refund"
    assert record.persona == "novice_user"
    (call,) = seen(module)
    assert call["is_str"] and call["equals_name"] and call["hash_as_name"]
    assert call["upper"] == "NOVICE_USER"
    assert call["formatted"] == "[novice_user]"
    assert call["json"] == '{"persona": "novice_user"}'
    # Agents written for the earlier tool read the profile.
    assert call["name"] == "novice_user"
    assert call["description"] == "New to the shop"
    assert call["characteristics"] == ["impatient", "polite"]
    assert call["language"] == "en"
    assert call["expertise_level"] == "novice"
    assert call["goals"] == ["get a refund"]
    assert call["dict"] == NOVICE_PROFILE


def test_persona_profile_from_the_inputs_file_description(tmp_path: Path) -> None:
    """A persona only the inputs file names: its entry's persona_description is the profile."""
    agent = """\
    SEEN = []


    def run(input_text, persona=None, persona_description=None):
        SEEN.append({"dict": persona.to_dict(), "description": persona_description})
        return str(persona)
    """
    inputs = [
        {"input": "hi", "persona": "walk_in", "persona_description": "Came in off the street"}
    ]
    config, module = write_project(tmp_path, agent, personas=[EXPERT], inputs=inputs)
    assert run_first_case(config).output == "walk_in"
    (call,) = seen(module)
    assert call["description"] == "Came in off the street"
    assert call["dict"] == {
        "name": "walk_in",
        "description": "Came in off the street",
        "characteristics": [],
        "language": None,
        "expertise_level": None,
        "goals": [],
        "constraints": [],
        "custom_attributes": {},
    }


def test_inputs_file_entry_of_a_configured_persona_gets_its_profile(tmp_path: Path) -> None:
    agent = """\
    SEEN = []


    def run(input_text, user_persona=None):
        SEEN.append(user_persona.to_dict())
        return "ok"
    """
    inputs = [{"input": "hi", "persona": "novice_user"}]
    config, module = write_project(tmp_path, agent, personas=[NOVICE, EXPERT], inputs=inputs)
    run_first_case(config)
    assert seen(module) == [NOVICE_PROFILE]


def test_no_persona_means_none_for_every_persona_name(tmp_path: Path) -> None:
    agent = """\
    SEEN = []


    def run(input_text, persona=None, user_persona=None, persona_prompt=None,
            persona_description=None):
        SEEN.append([persona, user_persona, persona_prompt, persona_description])
        return "ok"
    """
    config, module = write_project(tmp_path, agent, inputs=[{"input": "hi"}])
    run_first_case(config)
    assert seen(module) == [[None, None, None, None]]


def test_persona_object_survives_copies_and_pickles() -> None:
    persona = AgentPersona.from_profile("novice_user", NOVICE)
    for clone in (copy.deepcopy(persona), copy.copy(persona), pickle.loads(pickle.dumps(persona))):
        assert isinstance(clone, AgentPersona)
        assert clone == "novice_user"
        assert clone.to_dict() == NOVICE_PROFILE
    assert json.loads(json.dumps([persona])) == ["novice_user"]
    assert persona.to_prompt() == (
        "Persona: novice_user\nDescription: New to the shop\n"
        "Characteristics: impatient, polite\nGoals: get a refund"
    )


def test_case_persona_profile_round_trips_as_json(tmp_path: Path) -> None:
    """Cases cross process boundaries as JSON (model_dump): the profile comes back whole."""
    config, _module = write_project(tmp_path, PERSONA_AGENT)
    (case,) = Experiment.load(config).cases
    assert case.persona_profile == NOVICE_PROFILE
    again = Case.model_validate(json.loads(json.dumps(case.model_dump(mode="json"))))
    assert again == case
    assert again.persona_profile == NOVICE_PROFILE


# --------------------------------------------------------------------------- every new name

ALL_NAMES_AGENT = """\
import copy

SEEN = []


def run(
    input_text,
    persona=None,
    user_persona=None,
    persona_description=None,
    persona_prompt=None,
    iteration=None,
    run_iteration=None,
    conversation_state=None,
    state=None,
    dialog_state=None,
    messages=None,
    history=None,
    turns=None,
    auto_approve=None,
    auto_approve_tools=None,
):
    SEEN.append(
        {
            "input": input_text,
            "user_persona_is_persona": user_persona is persona,
            "user_persona_profile": user_persona.to_dict(),
            "persona_description": persona_description,
            "persona_prompt": persona_prompt,
            "iteration": iteration,
            "run_iteration": run_iteration,
            "state_is_conversation_state": state is conversation_state,
            "dialog_state_is_conversation_state": dialog_state is conversation_state,
            "state_turns": copy.deepcopy(conversation_state["turns"]),
            "messages": copy.deepcopy(messages),
            "history": copy.deepcopy(history),
            "turns": copy.deepcopy(turns),
            "auto_approve": auto_approve,
            "auto_approve_tools": auto_approve_tools,
        }
    )
    # Changing what it was given must not reach the next turn or the record.
    messages.append({"role": "user", "content": "INJECTED"})
    history.clear()
    return f"reply {len(SEEN)}"
"""

PROMPT = (
    "Persona: novice_user\nDescription: New to the shop\n"
    "Characteristics: impatient, polite\nGoals: get a refund"
)


def _common(call: dict[str, Any], auto_approve: bool) -> None:
    assert call["user_persona_is_persona"]
    assert call["user_persona_profile"] == NOVICE_PROFILE
    assert call["persona_description"] == "New to the shop"
    assert call["persona_prompt"] == PROMPT
    assert call["iteration"] == call["run_iteration"] == 0
    assert call["state_is_conversation_state"]
    assert call["dialog_state_is_conversation_state"]
    assert call["auto_approve"] is call["auto_approve_tools"] is auto_approve


def test_every_name_single_turn(tmp_path: Path) -> None:
    config, module = write_project(tmp_path, ALL_NAMES_AGENT)
    run_first_case(config)
    (call,) = seen(module)
    _common(call, auto_approve=True)
    user = {"role": "user", "content": "I want a refund"}
    assert call["messages"] == [user]
    assert call["history"] == [] and call["turns"] == []
    assert call["state_turns"] == [user]


def test_every_name_in_each_turn_of_a_conversation(tmp_path: Path) -> None:
    config, module = write_project(
        tmp_path, ALL_NAMES_AGENT, multi_turn=mock_conversation(auto_approve_tools=False)
    )
    record = run_first_case(config)
    assert record.multi_turn is not None and record.multi_turn.turn_count == 2
    first, second = seen(module)
    for call in (first, second):
        _common(call, auto_approve=False)
    user1 = {"role": "user", "content": "I want a refund"}
    reply1 = {"role": "assistant", "content": "reply 1"}
    user2 = {"role": "user", "content": SCRIPT[0]}
    assert first["input"] == "I want a refund" and second["input"] == SCRIPT[0]
    assert first["messages"] == [user1]
    assert first["history"] == first["turns"] == []
    # The conversation so far, ending with the message being answered; history before it.
    assert second["messages"] == [user1, reply1, user2]
    assert second["history"] == second["turns"] == [user1, reply1]
    assert second["state_turns"] == second["messages"]
    assert record.conversation_state is not None
    assert "INJECTED" not in json.dumps(record.conversation_state)


def test_persona_override_plays_the_override_profile(tmp_path: Path) -> None:
    agent = """\
    SEEN = []


    def run(input_text, persona=None, persona_description=None):
        SEEN.append([str(persona), persona.goals, persona_description])
        return "ok"
    """
    config, module = write_project(
        tmp_path,
        agent,
        personas=[NOVICE, EXPERT],
        multi_turn=mock_conversation(persona_override="expert_user"),
    )
    experiment = Experiment.load(config)
    case = next(c for c in experiment.cases if c.persona == "novice_user")
    record = experiment.run_case(case).record
    assert record.success, record.error
    assert record.persona == "expert_user"
    assert seen(module) == [["expert_user", ["speed"], "Knows the shop well"]] * 2


def test_agent_whose_first_parameter_is_messages_still_gets_the_input() -> None:
    """The later names are not skipped when the input falls back to the first parameter,
    so an agent that worked before they were filled keeps working the same way."""

    def run(messages: str, history: Any = None) -> list[Any]:
        return [messages, history]

    record = CaseExecutor(target_of(run), RunSettings(max_retries=0)).run(make_case("q")).record
    assert record.output == ["q", []]


def test_unfillable_parameter_error_lists_what_fluxloop_fills(tmp_path: Path) -> None:
    config, _module = write_project(tmp_path, "def run(input_text, api_client):\n    return 1\n")
    with pytest.raises(TargetError) as info:
        Experiment.load(config).prepare()
    message = str(info.value)
    assert "api_client" in message and "runner.args" in message
    for name in OPTIONAL_NAMES:
        assert name in message.split("FluxLoop passes")[1]


# --------------------------------------------------------------------------- runner.args


def test_args_are_passed_by_name_and_fill_required_parameters(tmp_path: Path) -> None:
    agent = """\
    def run(input_text, api_base, *, temperature=0.0, persona=None):
        return {"api_base": api_base, "temperature": temperature, "persona": persona}
    """
    config, _module = write_project(
        tmp_path, agent, runner={"args": {"api_base": "http://local", "temperature": 0.5}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", FluxloopWarning)  # nothing to warn about
        record = run_first_case(config)
    assert record.output == {
        "api_base": "http://local",
        "temperature": 0.5,
        "persona": "novice_user",
    }


def test_args_reach_an_agent_that_takes_kwargs(tmp_path: Path) -> None:
    agent = """\
    def run(input_text, **kwargs):
        return kwargs
    """
    args = {"model": "small", "options": {"depth": 2}}
    config, _module = write_project(tmp_path, agent, runner={"args": args})
    assert run_first_case(config).output == args


def test_args_the_agent_does_not_declare_are_warned_by_name(tmp_path: Path) -> None:
    agent = """\
    def run(input_text, model=None):
        return model
    """
    config, _module = write_project(
        tmp_path, agent, runner={"args": {"model": "big", "tempreature": 0.1, "top_k": 3}}
    )
    experiment = Experiment.load(config)
    with pytest.warns(FluxloopWarning) as caught:
        experiment.prepare()
    (message,) = [str(w.message) for w in caught]
    assert "runner.args.tempreature" in message and "runner.args.top_k" in message
    assert "runner.args.model" not in message
    assert message in experiment.notices
    assert experiment.run_case(experiment.cases[0]).record.output == "big"


def test_check_reports_undeclared_args_as_notices_without_warning(tmp_path: Path) -> None:
    """The CLI prints check()'s notices itself: no warning on top of them."""
    config, _module = write_project(
        tmp_path, "def run(input_text):\n    return 1\n", runner={"args": {"extra": 1}}
    )
    experiment = Experiment.load(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FluxloopWarning)
        experiment.check()
    assert any("runner.args.extra" in notice for notice in experiment.notices)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("input_text", "receives each case's input"),
        ("persona", "fills 'persona' itself"),
        ("iteration", "fills 'iteration' itself"),
        ("messages", "fills 'messages' itself"),
    ],
)
def test_args_may_not_replace_what_fluxloop_fills(tmp_path: Path, key: str, why: str) -> None:
    agent = """\
    def run(input_text, persona=None, iteration=None, messages=None):
        return 1
    """
    config, _module = write_project(tmp_path, agent, runner={"args": {key: "x"}})
    with pytest.raises(TargetError) as info:
        Experiment.load(config).prepare()
    message = str(info.value)
    assert message.startswith(f"runner.args.{key}:")
    assert why in message


def test_an_arg_named_like_the_input_of_another_agent_is_fine(tmp_path: Path) -> None:
    """Only the parameter that takes the input is off limits, not every input name."""
    agent = """\
    def run(input_text, query=None):
        return [input_text, query]
    """
    config, _module = write_project(tmp_path, agent, runner={"args": {"query": "fixed"}})
    assert run_first_case(config).output == ["I want a refund", "fixed"]


def test_args_fill_positional_only_parameters_in_order() -> None:
    def run(question: str, client: str, /, *, retries: int = 0) -> list[Any]:
        return [question, client, retries]

    module = types.ModuleType(unique("positional"))
    module.run = run  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    options = TargetOptions(args={"client": "c-1", "retries": 2})
    target = resolve_target(f"{module.__name__}:run", options)
    assert target.binding.positional == ("question", "client")
    assert target.binding.extras == () and target.notices == ()
    record = CaseExecutor(target, RunSettings(max_retries=0)).run(make_case("q")).record
    assert record.output == ["q", "c-1", 2]
