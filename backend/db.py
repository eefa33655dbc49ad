"""Database engine and the per-request session.

Tuned for one round trip per request over a network hop (Neon): the connection runs in autocommit,
so a single `INSERT/UPDATE/DELETE … RETURNING` is its own transaction with no `BEGIN`/`COMMIT`
round trips, and stale pooled connections are detected without a ping (see `_drop_if_closed`).
Autocommit also keeps no session state between statements, which is what PgBouncer in
transaction mode (Neon's pooled endpoint) requires.
"""

import select
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError

from backend.config import Settings


def normalize_url(url: str | URL) -> URL:
    """Accept the `postgres://` / `postgresql://` URLs Neon and Heroku print, for psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def create_db_engine(url: str | URL, settings: Settings) -> Engine:
    engine = create_engine(
        normalize_url(url),
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=settings.db_pool_recycle_seconds,
        # Autocommit leaves no transaction to roll back when a connection returns to the pool.
        pool_reset_on_return=None,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            "application_name": "todo-backend",
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    )
    event.listen(engine, "checkout", _drop_if_closed)
    return engine


def _drop_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect check at zero round trips.

    An idle connection has nothing to read unless the server closed it (restart, failover, Neon
    suspending the compute): then the socket is readable. Raising `DisconnectionError` here makes
    the pool discard it and hand out a fresh one, so no request fails on a stale connection —
    what `pool_pre_ping` does, without its extra `SELECT 1` per request.
    """
    if dbapi_connection.closed:
        raise DisconnectionError("connection closed")
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    if readable:
        raise DisconnectionError("connection closed by the server while idle")


def resolve_database_url(settings: Settings) -> URL:
    """`NEON_DATABASE_URL` when set; otherwise the embedded PostgreSQL, started on demand."""
    if settings.neon_database_url is not None:
        return normalize_url(settings.neon_database_url.get_secret_value())
    from backend import embedded_db

    return embedded_db.start(settings.embedded_db_dir)
