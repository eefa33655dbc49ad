"""The application: `create_app()` builds it; `python -m backend` serves it (a factory:
`uvicorn --factory backend.main:create_app`, so importing this module needs no settings).

Start-up (lifespan) resolves the database (NEON_DATABASE_URL, or the embedded PostgreSQL),
applies migrations when `MIGRATE_ON_STARTUP` is on, and creates the database (its connection
pool) and token verifier the requests share, and starts the cleanup of expired idempotency
keys; shutdown stops and releases them.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from backend import migrate, openapi
from backend.auth.jwks import JwksConfig, JwksKeySource
from backend.auth.jwt import TokenPolicy, TokenVerifier
from backend.auth.sessions import SessionLookup
from backend.config import Settings, get_settings
from backend.db import Database, DatabaseLimits
from backend.db_url import resolve_database_url
from backend.dependencies import refuse_foreign_caller
from backend.errors import install_error_handlers, internal_error
from backend.idempotency import ExpiredKeyCleanup
from backend.lifecycle import Lifecycle
from backend.middleware import (
    ErrorResponseMiddleware,
    NormalizePathMiddleware,
    RequestLimitMiddleware,
    RequestLogMiddleware,
)
from backend.pool import PoolLimits
from backend.ratelimit import RateLimiter
from backend.routes import health, tasks


def database_limits(settings: Settings) -> DatabaseLimits:
    """The database layer's bounds, from the one `Settings` (which that layer never sees)."""
    pool = PoolLimits(
        keep=settings.db_pool_size,
        max=settings.db_pool_size + settings.db_max_overflow,
        wait=settings.db_pool_timeout_seconds,
        connect_timeout=settings.db_connect_timeout_seconds,
        recycle=settings.db_pool_recycle_seconds,
    )
    return DatabaseLimits(
        pool,
        deadline=settings.db_statement_timeout_seconds,
        ping_idle=settings.db_ping_idle_seconds,
        per_user=settings.db_statements_per_user,
    )


def token_policy(settings: Settings) -> TokenPolicy:
    """What proves a user, from the one `Settings` (which the auth layer never sees)."""
    return TokenPolicy(
        secret=settings.better_auth_secret.get_secret_value().encode(),
        leeway=settings.jwt_leeway_seconds,
        user_id_claims=tuple(settings.jwt_user_id_claims),
        issuer=tuple(settings.jwt_issuer),
        audience=tuple(settings.jwt_audience),
        origin=settings.auth_origin,
        jwks_ttl=settings.jwks_cache_ttl_seconds,
    )


def jwks_config(settings: Settings) -> JwksConfig:
    """Where Better Auth's keys are and how long a copy lasts, from the one `Settings`."""
    return JwksConfig(
        url=settings.jwks_url,
        timeout=settings.jwks_timeout_seconds,
        ttl=settings.jwks_cache_ttl_seconds,
        min_refetch=settings.jwks_min_refetch_seconds,
        max_staleness=settings.jwks_max_staleness_seconds,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    url = await run_in_threadpool(resolve_database_url, settings)
    if settings.migrate_on_startup:
        await run_in_threadpool(
            migrate.upgrade, url, connect_timeout=settings.db_connect_timeout_seconds
        )
    app.state.database = database = Database(url, database_limits(settings))
    sessions = (
        SessionLookup(database, settings.better_auth_secret.get_secret_value())
        if settings.better_auth_session_lookup
        else None
    )
    app.state.verifier = TokenVerifier(
        token_policy(settings), JwksKeySource(jwks_config(settings)), sessions
    )
    storage = settings.rate_limit_storage_url
    app.state.rate_limiter = limiter = RateLimiter(
        settings.rate_limit_per_minute, storage.get_secret_value() if storage else None
    )
    key_cleanup = ExpiredKeyCleanup(database)
    key_cleanup.start()
    try:
        yield
    finally:
        await key_cleanup.stop()
        await app.state.verifier.aclose()
        await limiter.aclose()
        database.close()


def create_app(settings: Settings | None = None, lifecycle: Lifecycle | None = None) -> FastAPI:
    """The app; `lifecycle` is the serving worker's (`backend.serving`), so `/health/ready` can
    say when it drains."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Todo API",
        version="1.0.0",
        description="Tasks of Better Auth users. Every `/api/` route needs a bearer JWT.",
        lifespan=lifespan,
        redirect_slashes=False,
        # Generated clients take their default base URL from here (openapi-fetch, hey-api).
        servers=[{"url": "http://localhost:8000", "description": "Local (`nox -s dev`)"}],
    )
    app.state.settings = settings
    app.state.lifecycle = lifecycle or Lifecycle()
    install_error_handlers(app, check_caller=refuse_foreign_caller)
    # FastAPI counts a streamed body against the limit; a declared one is refused earlier, by
    # RequestLimitMiddleware.
    app.include_router(
        tasks.router,
        max_body_size=settings.max_body_bytes,
        responses=openapi.body_too_large(settings.max_body_bytes),
    )
    app.include_router(health.router)
    # Added innermost first. Error answers (the 500, a 405's `Allow`) are made inside CORS, so
    # a browser can read them; the request log is outermost, so it sees preflights and the
    # status every answer really got.
    app.add_middleware(RequestLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ErrorResponseMiddleware, handler=internal_error)
    app.add_middleware(NormalizePathMiddleware)
    # Every answer (413, 431 and 500 included) carries the CORS headers a browser needs to let
    # the frontend read its `detail`.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
        expose_headers=[
            "Location",
            "X-Total-Count",
            "Retry-After",
            "WWW-Authenticate",
            "X-Request-ID",
        ],
        max_age=600,
    )
    hash_key = settings.log_user_hash_key
    app.add_middleware(
        RequestLogMiddleware,
        user_hash_key=hash_key.get_secret_value().encode() if hash_key else None,
    )
    return app
