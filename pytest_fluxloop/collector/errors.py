"""The collector's errors; all are :class:`~pytest_fluxloop.errors.FluxloopError` (the CLI
shows them as one ``Error:`` line and exits non-zero)."""

from __future__ import annotations

from ..errors import FluxloopError

__all__ = ["CollectorError", "SchemaError", "StoreBusy", "StoreError"]


class CollectorError(FluxloopError):
    """The collector cannot start as asked (a missing token, a missing extra, a bad --db)."""


class StoreError(CollectorError):
    """The store cannot be opened or used (a bad URL, an unreachable server, a failed query)."""


class StoreBusy(StoreError):
    """The store did not accept a write in time: the client should retry later (a 503)."""


class SchemaError(StoreError):
    """The database's schema is not one this collector can use (a newer version)."""
