"""The earlier FluxLoop fixtures: ``fluxloop_runner``, ``fluxloop_runner_multi_turn``,
``fluxloop_cli``.

Projects made by the earlier FluxLoop tool (``fluxloop-cli`` 0.2.x) carry a smoke test that
runs the whole experiment from one test and asserts on the outcome::

    def test_fluxloop_smoke(fluxloop_runner):
        result = fluxloop_runner(
            project_root=PROJECT_ROOT,
            simulation_config=PROJECT_ROOT / "configs/simulation.yaml",
            env={"PYTHONPATH": str(PROJECT_ROOT)},
        )
        result.require_success(label="fluxloop smoke")

These fixtures keep that test working on top of :class:`~pytest_fluxloop.run.Experiment`
(the same loader, cases, engine and artifact writer as every other way of running). Each
returns a function; calling it runs every case of the experiment once and returns a
:class:`FluxloopRunResult`. Only the function's keyword arguments differ between fixtures:

``project_root`` (required)
    The project folder, holding ``configs/``.
``simulation_config``
    The simulation config; relative paths are taken from ``project_root``, a directory
    means its ``simulation.yaml``. Default: ``configs/simulation.yaml``, else the older
    single-file ``setting.yaml`` in ``project_root`` (the earlier tool's fallback). A path
    that is given but missing is an error, not a fallback.
``overrides``
    ``{key: value}`` settings for this run. A key is an override name of
    ``fluxloop run experiment`` (``iterations``, ``personas``, ``max_turns``,
    ``supervisor_provider``, ``output_directory`` ... : the rows of
    :data:`pytest_fluxloop.config.overrides.OVERRIDES`), or the dotted simulation.yaml key
    such a row sets (``multi_turn.max_turns``, ``multi_turn.supervisor.provider``, ``name``);
    nested mappings are flattened (``{"multi_turn": {"max_turns": 3}}``). Any other key fails
    the test naming it: a setting with no override cannot be applied without changing the
    config file. Relative paths are taken from ``project_root``.
``timeout``
    Seconds for the whole call (default 600, as before; None: no limit). Exceeding it fails
    the test with an AssertionError naming it. In-process (``mode="sdk"``) it is checked as
    each case finishes: no case starts after it, but a case already running ends only by its
    own ``runner.timeout_seconds`` (Python cannot stop a thread). ``mode="cli"`` kills the
    run at the timeout.
``env``
    Environment variables for the run (values ``str()``-ed). In-process, the environment is
    put back as it was afterwards (the project's ``.env`` too), and ``PYTHONPATH`` entries
    are also put on ``sys.path`` for the run, which is what that variable means to a
    subprocess.
``mode``
    ``"sdk"`` (default): in this process, through ``Experiment``: fast, and an agent's
    breakpoints work. ``"cli"``: in a subprocess running ``python -m pytest_fluxloop.cli run
    experiment --yes``, as a person would (the project's own pytest plugins and conftest
    apply there); its output is kept in ``stdout_path``/``stderr_path``.

Where results go: a new ``exp_*`` folder under ``<tmp_path>/fluxloop``, the test's own
temporary directory (pytest keeps the last three runs' ``basetemp``), so a test run never
writes into the user's project. ``result.output_dir`` names the folder and failure
messages print it. Set ``overrides={"output_directory": "experiments"}`` to keep results
in the project as ``fluxloop run experiment`` does. (The earlier fixtures wrote into the
config's ``output_directory`` in-process, and into a ``.fluxloop_pytest`` folder of the
project from the CLI.)

In-process, the run's changes to the process are undone when the call returns: the working
directory, ``sys.path``, the environment, and the project modules the run imported (projects
made from the earlier template all name their agent ``examples.simple_agent``; the next
project's run must import its own). The ``pytest_fluxloop_modify_cases`` and
``pytest_fluxloop_supervisor`` hooks apply as for ``@pytest.mark.fluxloop`` tests. Settings
that are accepted but only partly in effect are reported as ``FluxloopWarning``\\ s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .legacy_run import (
        DEFAULT_TIMEOUT_SECONDS,
        FluxloopRunError,
        FluxloopRunResult,
        FluxLoopTestResult,
    )

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "FluxLoopTestResult",
    "FluxloopRunError",
    "FluxloopRunResult",
    "fluxloop_cli",
    "fluxloop_runner",
    "fluxloop_runner_multi_turn",
]


def __getattr__(name: str) -> Any:
    # The result types live with the implementation, imported only when asked for.
    if name in (
        "DEFAULT_TIMEOUT_SECONDS",
        "FluxLoopTestResult",
        "FluxloopRunError",
        "FluxloopRunResult",
    ):
        from . import legacy_run

        return getattr(legacy_run, name)
    raise AttributeError(name)


def _runner(
    request: pytest.FixtureRequest, tmp_path: Path, name: str, **kwargs: Any
) -> Callable[..., FluxloopRunResult]:
    from .legacy_run import _Runner

    return _Runner(request, tmp_path, name, **kwargs)


# --------------------------------------------------------------------------- the fixtures

RunnerCallable = Callable[..., "FluxloopRunResult"]


@pytest.fixture
def fluxloop_runner(request: pytest.FixtureRequest, tmp_path: Path) -> RunnerCallable:
    """Run a FluxLoop project's experiment from a test (the earlier FluxLoop fixture).

    ``fluxloop_runner(project_root=..., simulation_config=None, overrides=None,
    timeout=600, env=None, mode="sdk")`` runs every case once and returns a
    ``FluxloopRunResult``; ``result.require_success(label=...)`` fails the test listing the
    failed cases. Results go to the test's ``tmp_path`` unless ``overrides`` set
    ``output_directory``. See ``pytest_fluxloop.plugin.legacy_runner`` for every argument.
    """
    return _runner(request, tmp_path, "fluxloop_runner")


@pytest.fixture
def fluxloop_runner_multi_turn(request: pytest.FixtureRequest, tmp_path: Path) -> RunnerCallable:
    """``fluxloop_runner`` with multi-turn conversations on, whatever the config says.

    Also takes ``max_turns`` and ``auto_approve_tools``; left out (None) they keep the
    config's values, whose defaults are the earlier ones (8 turns, tools auto-approved). The
    supervisor is the config's ``multi_turn.supervisor`` (``overrides={"supervisor_provider":
    "mock"}`` plays the scripted questions), or the ``pytest_fluxloop_supervisor`` hook's.
    """
    return _runner(request, tmp_path, "fluxloop_runner_multi_turn", multi_turn=True)


@pytest.fixture
def fluxloop_cli(request: pytest.FixtureRequest, tmp_path: Path) -> RunnerCallable:
    """``fluxloop_runner`` with ``mode="cli"`` by default: the run is a
    ``python -m pytest_fluxloop.cli run experiment --yes`` subprocess (the earlier
    FluxLoop fixture of the same name)."""
    return _runner(request, tmp_path, "fluxloop_cli", mode="cli")
