"""CLI tests: each test starts and ends with the same imports, sys.path and cwd.

``fluxloop run experiment`` resolves the target before showing the plan
(``Experiment.check``), so an in-process run (``CliRunner``) imports the project's agent
module into the test process. Left in ``sys.modules``, an ``agent`` module from one test's
folder would be found by a later test's run of another folder's ``agent:run``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.engine_helpers import isolated_imports


@pytest.fixture(autouse=True)
def _isolated_imports() -> Iterator[None]:
    with isolated_imports():
        yield
