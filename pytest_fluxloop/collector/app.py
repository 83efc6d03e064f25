"""The collector's ASGI application (Starlette): routes, errors and the token check.

=======================  ======  ===========================================================
route                    token   what
=======================  ======  ===========================================================
``GET /health``          no      ``{"status": "ok", "store": ..., "schema_version": N}``
``POST /api/v1/batches`` yes     a FluxLoop batch (``shipping.wire``): per-item results
``POST /v1/traces``      yes     OTLP/HTTP traces, protobuf or JSON (:mod:`.otlp`)
``GET /api/experiments`` yes     experiments, their runs and trace counts (:mod:`.api`)
``GET /api/traces``      yes     traces, filtered and paged
``GET /api/traces/{id}`` yes     one trace, its observations and its OTLP spans
=======================  ======  ===========================================================

Every error is JSON ``{"error": reason}`` (on ``/v1/traces`` a ``google.rpc.Status`` in the
request's encoding, as OTLP asks): 400 malformed, 401 no or wrong token, 404 unknown route or
trace, 405 wrong method, 413 over the size cap, 415 unsupported media type or encoding, 503
(with ``Retry-After``) when the store is busy or unreachable. No answer repeats a request
header, so the token never comes back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ..shipping.wire import BATCHES_PATH, BatchError
from . import api, otlp
from .auth import BearerAuth
from .batches import ingest_batch
from .bodies import BodyError, read_body, require_media_type
from .errors import StoreBusy, StoreError
from .store import Store

__all__ = ["DEFAULT_MAX_BODY_BYTES", "RETRY_AFTER_SECONDS", "create_app"]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
"""The default cap of a request body, before and after decompression (``--max-body-mb``)."""

RETRY_AFTER_SECONDS = 2
"""``Retry-After`` of a 503."""

OTLP_PATH = "/v1/traces"

log = logging.getLogger("fluxloop.collector")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _busy(exc: StoreError) -> JSONResponse:
    log.warning("store busy: %s", exc)
    return _error(503, f"the collector's store is busy: {exc}", _retry_after())


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


async def _body(request: Request) -> bytes:
    max_bytes: int = request.app.state.max_body_bytes
    return await read_body(
        request.stream(),
        request.headers.get("content-length"),
        request.headers.get("content-encoding"),
        max_bytes,
    )


async def health(request: Request) -> JSONResponse:
    """``GET /health``: answered without a token (load balancers, the test harness)."""
    store: Store = request.app.state.store
    return JSONResponse(
        {"status": "ok", "store": store.kind, "schema_version": request.app.state.schema_version}
    )


async def post_batch(request: Request) -> Response:
    """``POST /api/v1/batches``: store a batch; one result per item (``shipping.wire``)."""
    try:
        require_media_type(request.headers.get("content-type"), ("application/json",))
        body = await _body(request)
    except BodyError as exc:
        return _error(exc.status, exc.message)
    store: Store = request.app.state.store
    try:
        # Validation and the write both block: a worker thread keeps the event loop free.
        answer = await run_in_threadpool(ingest_batch, store, body)
    except BatchError as exc:
        return _error(400, str(exc))
    except StoreBusy as exc:
        return _busy(exc)
    return JSONResponse(answer)


async def post_otlp_traces(request: Request) -> Response:
    """``POST /v1/traces``: OTLP/HTTP spans, answered in the request's content type."""
    try:
        media = require_media_type(request.headers.get("content-type"), otlp.MEDIA_TYPES)
    except BodyError as exc:
        return _error(exc.status, exc.message)
    answer_type = otlp.PROTOBUF if otlp.is_protobuf(media) else otlp.JSON

    def status(
        code: int, grpc_code: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        body = otlp.error_body(grpc_code, message, media)
        return Response(body, status_code=code, media_type=answer_type, headers=headers)

    try:
        body = await _body(request)
    except BodyError as exc:
        # gRPC codes: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED.
        return status(exc.status, 8 if exc.status == 413 else 3, exc.message)
    try:
        request_message, bad_ids = await run_in_threadpool(otlp.decode_request, body, media)
        spans = await run_in_threadpool(otlp.spans_of, request_message, bad_ids)
    except otlp.OTLPError as exc:
        return status(400, 3, str(exc))
    store: Store = request.app.state.store
    if spans.rows:
        try:
            await run_in_threadpool(store.write_spans, spans.rows)
        except StoreBusy as exc:
            log.warning("store busy: %s", exc)
            return status(503, 14, f"the collector's store is busy: {exc}", _retry_after())
    return Response(otlp.response_body(spans, media), media_type=answer_type)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Starlette's 404 and 405 as JSON like every other error.
    return JSONResponse(
        {"error": exc.detail}, status_code=exc.status_code, headers=dict(exc.headers or {})
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server's log (never the request's headers); the client gets
    # a 500 it may retry, without details.
    return _error(500, "internal error in the collector; see its log")


def create_app(
    store: Store,
    token: str | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    schema_version: int | None = None,
) -> ASGIApp:
    """The collector's ASGI app over an open, migrated ``store``. Without ``token`` every
    route is open (only ever on loopback: :func:`.auth.check_listen`). The store is closed when
    the server shuts down."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(store.close)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route(BATCHES_PATH, post_batch, methods=["POST"]),
        Route(OTLP_PATH, post_otlp_traces, methods=["POST"]),
        Route("/api/experiments", api.experiments, methods=["GET"]),
        Route("/api/traces", api.list_traces, methods=["GET"]),
        Route("/api/traces/{trace_id}", api.get_trace, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.store = store
    app.state.max_body_bytes = max_body_bytes
    app.state.schema_version = schema_version
    return BearerAuth(app, token)
