"""The read API: ``GET /api/experiments``, ``GET /api/traces`` and ``GET /api/traces/{id}``.

``GET /api/traces`` lists traces newest first (``started_at`` descending, then trace id
descending: a stable order), ``limit`` at a time (default 100, at most
:data:`~.store.MAX_PAGE`); the answer's ``next_cursor``, passed back as ``cursor``, gives the
next page and is null on the last. Filters: ``experiment``, ``run_id``, ``persona``,
``status``, ``since`` (inclusive) and ``until`` (exclusive) on ``started_at`` (ISO 8601; a
time without a zone is UTC).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from .moments import parse_utc
from .store import MAX_PAGE, Store, TraceQuery, decode_cursor

__all__ = ["DEFAULT_PAGE", "QueryError", "experiments", "get_trace", "list_traces", "parse_query"]

DEFAULT_PAGE = 100


class QueryError(ValueError):
    """A bad query parameter (a 400 naming it)."""


def _time(params: Any, name: str) -> datetime | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_utc(value)
    except ValueError:
        raise QueryError(f"{name}={value[:40]!r} is not an ISO 8601 date-time") from None


def parse_query(params: Any) -> TraceQuery:
    """The :class:`TraceQuery` of ``GET /api/traces``'s query parameters.

    Raises:
        QueryError: a parameter is not valid.
    """
    raw_limit = params.get("limit")
    limit = DEFAULT_PAGE
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise QueryError(f"limit={raw_limit[:20]!r} is not a number") from None
        if not 1 <= limit <= MAX_PAGE:
            raise QueryError(f"limit must be between 1 and {MAX_PAGE}")
    after = None
    cursor = params.get("cursor")
    if cursor:
        try:
            after = decode_cursor(cursor)
        except ValueError as exc:
            raise QueryError(str(exc)) from None

    def text(name: str) -> str | None:
        value = params.get(name)
        return value if value else None

    return TraceQuery(
        experiment=text("experiment"),
        run_id=text("run_id"),
        persona=text("persona"),
        status=text("status"),
        since=_time(params, "since"),
        until=_time(params, "until"),
        limit=limit,
        after=after,
    )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def experiments(request: Request) -> JSONResponse:
    """``GET /api/experiments``: every experiment (last seen first) with its runs
    (``run_id``, ``host``, ``status`` from its summary, ``trace_count``, ``first_seen``,
    ``last_seen``) and its ``trace_count``."""
    found = await run_in_threadpool(_store(request).experiments)
    return JSONResponse({"experiments": found})


async def list_traces(request: Request) -> JSONResponse:
    """``GET /api/traces``: one page of traces (see the module docstring)."""
    try:
        query = parse_query(request.query_params)
    except QueryError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    page = await run_in_threadpool(_store(request).traces, query)
    return JSONResponse({"traces": page.traces, "next_cursor": page.next_cursor})


async def get_trace(request: Request) -> JSONResponse:
    """``GET /api/traces/{trace_id}``: the trace (``trace``: its ``traces.jsonl`` line),
    its ``observations`` in order and the OTLP ``spans`` linked to it; a 404 when nothing
    has that id (neither a FluxLoop trace nor an OTLP trace)."""
    trace_id = request.path_params["trace_id"]
    found = await run_in_threadpool(_store(request).trace, trace_id)
    if found is None:
        return JSONResponse({"error": "no trace with this id"}, status_code=404)
    return JSONResponse(found)
