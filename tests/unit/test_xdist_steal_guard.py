"""A worksteal request to a worker that has just died is dropped, not an INTERNALERROR."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_fluxloop.plugin.xdist import guard_steal_requests


class _Node:
    def __init__(self, error: BaseException | None = None) -> None:
        self.sent: list[Any] = []
        self.error = error

    def send_steal(self, indices: Any) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(indices)


def test_steal_requests_reach_a_live_worker() -> None:
    node = _Node()
    guard_steal_requests(node)
    node.send_steal([3, 4])
    assert node.sent == [[3, 4]]


def test_a_steal_request_to_a_dead_worker_is_dropped() -> None:
    node = _Node(OSError("cannot send (already closed?)"))
    guard_steal_requests(node)
    node.send_steal([1])  # no exception: xdist's crash handling reschedules the items


def test_other_errors_still_raise() -> None:
    node = _Node(ValueError("bad indices"))
    guard_steal_requests(node)
    with pytest.raises(ValueError, match="bad indices"):
        node.send_steal([1])
