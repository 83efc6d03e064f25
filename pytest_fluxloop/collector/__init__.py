"""``fluxloop collector serve``: the service that stores traces sent from many machines.

Built on an ASGI framework and server (the optional extra ``collector``: Starlette, Uvicorn,
the OpenTelemetry protocol classes; ``collector-postgres`` adds psycopg); nothing here is
imported by a run that does not serve.

==================  ==========================================================================
module              what
==================  ==========================================================================
``serve``           options, the token rule, open + migrate the store, run Uvicorn
``app``             the Starlette app: routes, errors, body limits
``auth``            the bearer token (constant-time), loopback-only when open
``bodies``          media types (415), size cap before and after gzip (413)
``batches``         ``POST /api/v1/batches``: items checked against the artifact JSON Schemas
``otlp``            ``POST /v1/traces``: OTLP/HTTP protobuf and JSON, partial success
``api``             the read API: experiments, traces (filtered, paged), one trace
``store``           the Store protocol, rows, the schema and its migrations, the shared SQL
``store_sqlite``    SQLite: WAL, busy timeout, one writer connection behind a lock
``store_postgres``  PostgreSQL (psycopg 3): a small pool, ON CONFLICT DO NOTHING
==================  ==========================================================================
"""
