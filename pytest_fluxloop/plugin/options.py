"""Command-line options and ini keys of the plugin, and turning them into config overrides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..config.loader import Overrides

SUPERVISOR_PROVIDERS = ("openai", "anthropic", "mock")
SUPERVISOR_KEY_ENV = "FLUXLOOP_SUPERVISOR_API_KEY"


def add_options(parser: pytest.Parser) -> None:
    """Register ``--fluxloop-*`` options (in their own group) and the ``fluxloop_config`` ini."""
    group = parser.getgroup("fluxloop", "FluxLoop agent simulation")
    group.addoption(
        "--fluxloop-config",
        metavar="PATH",
        default=None,
        help="simulation.yaml of the experiment to run as test items",
    )
    group.addoption(
        "--fluxloop-iterations", type=int, metavar="N", default=None, help="override iterations"
    )
    group.addoption(
        "--fluxloop-personas",
        metavar="A,B",
        default=None,
        help="comma-separated personas to run (default: all)",
    )
    group.addoption(
        "--fluxloop-inputs",
        metavar="PATH",
        default=None,
        help="inputs file (default: inputs/generated.yaml)",
    )
    group.addoption(
        "--fluxloop-output-dir", metavar="PATH", default=None, help="override output_directory"
    )
    group.addoption(
        "--fluxloop-experiment-name",
        metavar="NAME",
        default=None,
        help="experiment name (also the results folder suffix)",
    )
    group.addoption(
        "--fluxloop-multi-turn",
        dest="fluxloop_multi_turn",
        action="store_true",
        default=None,
        help="enable multi-turn conversations",
    )
    group.addoption(
        "--fluxloop-no-multi-turn",
        dest="fluxloop_multi_turn",
        action="store_false",
        help="disable multi-turn conversations",
    )
    group.addoption(
        "--fluxloop-max-turns",
        type=int,
        metavar="N",
        default=None,
        help="maximum turns per conversation",
    )
    group.addoption(
        "--fluxloop-auto-approve-tools",
        dest="fluxloop_auto_approve_tools",
        action="store_true",
        default=None,
        help="auto-approve tool calls",
    )
    group.addoption(
        "--fluxloop-manual-approve-tools",
        dest="fluxloop_auto_approve_tools",
        action="store_false",
        help="do not auto-approve tool calls",
    )
    group.addoption(
        "--fluxloop-persona-override",
        metavar="ID",
        default=None,
        help="force one persona in multi-turn conversations",
    )
    group.addoption(
        "--fluxloop-supervisor-provider",
        choices=SUPERVISOR_PROVIDERS,
        default=None,
        help="override the supervisor provider",
    )
    group.addoption(
        "--fluxloop-supervisor-model",
        metavar="MODEL",
        default=None,
        help="override the supervisor model",
    )
    group.addoption(
        "--fluxloop-supervisor-temperature",
        type=float,
        metavar="T",
        default=None,
        help="override the supervisor temperature",
    )
    group.addoption(
        "--fluxloop-resume", metavar="DIR", default=None, help="resume an earlier experiment folder"
    )
    group.addoption(
        "--fluxloop-progress",
        action="store_true",
        default=False,
        help="show a FluxLoop progress bar instead of per-test characters",
    )
    parser.addini(
        "fluxloop_config",
        "simulation.yaml run as test items (like --fluxloop-config)",
        default=None,
    )


def config_path(config: pytest.Config) -> Path | None:
    """The experiment config given by option or ini, resolved against the rootdir."""
    value = config.getoption("fluxloop_config") or config.getini("fluxloop_config")
    if not value:
        return None
    path = Path(str(value)).expanduser()
    # Command-line paths are relative to the invocation dir, like pytest's own arguments;
    # the ini value is relative to the rootdir (where the ini file lives).
    base = config.invocation_params.dir if config.getoption("fluxloop_config") else config.rootpath
    return (path if path.is_absolute() else base / path).resolve()


def overrides_from_options(config: pytest.Config, **extra: Any) -> Overrides:
    """Build config overrides from the ``--fluxloop-*`` options (and a marker's kwargs)."""
    import os

    from ..config.loader import Overrides

    def opt(name: str) -> Any:
        return config.getoption(name)

    def path_opt(name: str) -> str | None:
        value = opt(name)
        if value is None:
            return None
        return str((config.invocation_params.dir / Path(value).expanduser()).resolve())

    personas = opt("fluxloop_personas")
    values: dict[str, Any] = {
        "iterations": opt("fluxloop_iterations"),
        "personas": [p.strip() for p in personas.split(",") if p.strip()] if personas else None,
        "inputs_file": path_opt("fluxloop_inputs"),
        "output_directory": path_opt("fluxloop_output_dir"),
        "experiment_name": opt("fluxloop_experiment_name"),
        "multi_turn": opt("fluxloop_multi_turn"),
        "max_turns": opt("fluxloop_max_turns"),
        "auto_approve_tools": opt("fluxloop_auto_approve_tools"),
        "persona_override": opt("fluxloop_persona_override"),
        "supervisor_provider": opt("fluxloop_supervisor_provider"),
        "supervisor_model": opt("fluxloop_supervisor_model"),
        "supervisor_temperature": opt("fluxloop_supervisor_temperature"),
        "supervisor_api_key": os.environ.get(SUPERVISOR_KEY_ENV) or None,
        "resume": path_opt("fluxloop_resume"),
    }
    values.update({k: v for k, v in extra.items() if v is not None})
    return Overrides(style="pytest", **values)
