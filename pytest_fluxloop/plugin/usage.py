"""The pytest boundary for our errors: each becomes a ``pytest.UsageError`` (exit code 4)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ..errors import FluxloopError


@contextmanager
def usage_errors(prefix: str = "") -> Iterator[None]:
    """Translate a :class:`FluxloopError` raised in the block into a ``pytest.UsageError``.

    The message keeps ours (file, key, fix) behind ``pytest-fluxloop: `` and ``prefix``;
    the traceback is dropped: it is the user's input that is wrong, not the code.
    """
    try:
        yield
    except FluxloopError as exc:
        raise pytest.UsageError(f"pytest-fluxloop: {prefix}{exc}") from None
