"""Shared fixtures for the plugin tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.plugin_helpers import Project


@pytest.fixture
def project(pytester: pytest.Pytester) -> Project:
    """An empty project; call ``.setup()`` to write the basic config, inputs and agent."""
    return Project(pytester)


@pytest.fixture
def run_experiment(project: Project) -> Callable[..., pytest.RunResult]:
    """Run the project's experiment in-process with extra pytest args."""

    def run(*args: str) -> pytest.RunResult:
        return project.pytester.runpytest(
            "--fluxloop-config", project.config, "-p", "no:cacheprovider", *args
        )

    return run
