"""One rule for the output directory, however it is given (issue 8, item 9).

A symlink that leads out of the directory a path was given relative to (the project root for
``output_directory``, the current directory for ``--output-dir`` / ``--fluxloop-output-dir``),
or back out of the project once the path reached inside it, is refused the same way for the
config, the pytest option and the CLI option; an explicit absolute path outside the project is
the user's choice. The option tests use the real plugin (pytester) and the real CLI
(a subprocess).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.cli_helpers import describe, run_cli
from support.plugin_helpers import Project

from pytest_fluxloop.artifacts.paths import resolve_output_root
from pytest_fluxloop.errors import OutputPathError

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="symlinks need privileges on Windows"
)


def _link(link: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link


# --------------------------------------------------------------------------- the function


def test_relative_path_through_a_symlink_out_of_its_base_is_refused(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    outside = tmp_path / "elsewhere"
    _link(cwd / "out", outside)
    with pytest.raises(OutputPathError) as info:
        resolve_output_root("out", None, base=cwd)
    message = str(info.value)
    assert "'out'" in message and str(outside) in message and str(cwd) in message
    assert "absolute" in message  # the fix: name the real place on purpose


def test_relative_path_stays_relative_to_its_base_not_the_project(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    # The CLI's relative paths are taken from the current directory, which may hold the
    # project: a plain folder next to it is fine.
    assert resolve_output_root("out", project, base=tmp_path) == tmp_path / "out"


def test_absolute_path_into_the_project_then_out_by_symlink_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    outside = tmp_path / "elsewhere"
    _link(project / "experiments", outside)
    for spelled in (project / "experiments", project / "experiments" / "nightly"):
        with pytest.raises(OutputPathError) as info:
            resolve_output_root(str(spelled), project)
        message = str(info.value)
        assert str(project) in message and str(outside) in message
        assert "symlink" in message


def test_symlinked_spelling_of_the_project_is_inside(tmp_path: Path) -> None:
    project = tmp_path / "real-project"
    (project / "experiments").mkdir(parents=True)
    alias = _link(tmp_path / "alias", project)
    assert resolve_output_root(str(alias / "experiments"), project) == project / "experiments"


def test_absolute_real_path_outside_the_project_is_the_users_choice(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shared = tmp_path / "shared"
    assert resolve_output_root(str(shared), project, base=project) == shared
    # Also when the path leads there through a symlink of its own, outside the project.
    _link(tmp_path / "runs-link", shared)
    assert resolve_output_root(str(tmp_path / "runs-link"), project) == shared


# --------------------------------------------------------------------------- pytest option


@pytest.mark.parametrize("spelling", ["relative", "absolute"])
def test_pytest_option_symlink_out_of_the_project_is_a_usage_error(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, spelling: str
) -> None:
    project = Project(pytester).setup()
    outside = tmp_path_factory.mktemp("outside")
    _link(project.root / "results", outside)
    value = "results" if spelling == "relative" else str(project.root / "results")
    result = pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider",
        "--fluxloop-output-dir", value,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    err = result.stderr.str()
    assert "--fluxloop-output-dir" in err and str(outside) in err
    assert list(outside.iterdir()) == []  # nothing was written there


def test_pytest_option_same_path_as_config_is_refused_alike(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    project = Project(pytester).setup(extra="output_directory: results\n")
    _link(project.root / "results", outside)
    result = pytester.runpytest("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "output_directory" in result.stderr.str() and str(outside) in result.stderr.str()
    assert list(outside.iterdir()) == []


def test_pytest_option_plain_relative_dir_still_works(pytester: pytest.Pytester) -> None:
    project = Project(pytester).setup()
    result = pytester.runpytest(
        "--fluxloop-config", project.config, "-p", "no:cacheprovider",
        "--fluxloop-output-dir", "out",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=1)
    assert project.only_experiment("out").is_dir()


# --------------------------------------------------------------------------- CLI option


CLI_CONFIG = """\
name: demo
description: d
runner:
  target: "agent:run"
"""


def _cli_project(root: Path) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "inputs").mkdir()
    (root / "configs" / "simulation.yaml").write_text(CLI_CONFIG)
    (root / "inputs" / "generated.yaml").write_text('inputs:\n  - input: "hello"\n')
    (root / "agent.py").write_text("def run(input_text):\n    return input_text\n")
    return root / "configs" / "simulation.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("spelling", ["relative", "absolute"])
def test_cli_option_symlink_out_of_the_project_exits_4(tmp_path: Path, spelling: str) -> None:
    project = tmp_path / "project"
    _cli_project(project)
    outside = tmp_path / "elsewhere"
    _link(project / "results", outside)
    value = "results" if spelling == "relative" else str(project / "results")
    proc = run_cli("run", "experiment", "-y", "--output-dir", value, cwd=project)
    assert proc.returncode == 4, describe(proc)
    assert "--output-dir" in proc.stderr and str(outside) in proc.stderr, describe(proc)
    assert "[INFO]" not in proc.stdout, describe(proc)
    assert list(outside.iterdir()) == []


@pytest.mark.slow
def test_cli_option_real_absolute_dir_outside_is_allowed(tmp_path: Path) -> None:
    project = tmp_path / "project"
    _cli_project(project)
    shared = tmp_path / "shared"
    proc = run_cli("run", "experiment", "-y", "--output-dir", shared, cwd=project)
    assert proc.returncode == 0, describe(proc)
    assert len(list(shared.glob("exp_*"))) == 1
