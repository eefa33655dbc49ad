"""The database: an engine tuned for Neon, and the threads its blocking statements run on.

Tuned for one round trip per request over a network hop (Neon): the connection runs in autocommit,
so a single `INSERT/UPDATE/DELETE … RETURNING` is its own transaction with no `BEGIN`/`COMMIT`
round trips, and stale pooled connections are detected without a ping (see `_drop_if_closed`).
Autocommit also keeps no session state between statements, which is what PgBouncer in
transaction mode (Neon's pooled endpoint) requires.
"""

import asyncio
import select
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

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


P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """The engine, and a thread pool sized to its connection pool that runs its statements.

    psycopg2 blocks, so statements must not run on the event loop. FastAPI's way out, a plain
    `def` handler, hands the whole request to its thread pool; measured here that costs ~390 µs
    of CPU per request against ~160 µs for `run_in_executor` on a dedicated pool, a third of
    the backend's CPU per request. So handlers are `async def` and `await database.run(...)`.

    One thread per pooled connection: a statement never waits in the executor for a connection
    that cannot exist. Admission is bounded like the pool: a request that cannot get a thread
    within `DB_POOL_TIMEOUT_SECONDS` fails as the pool would (503), instead of queueing forever.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        threads = settings.db_pool_size + settings.db_max_overflow
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")
        self._slots = asyncio.Semaphore(threads)
        self._admission_timeout = settings.db_pool_timeout_seconds

    async def run(
        self, call: Callable[Concatenate[Engine, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`call(engine, *args, **kwargs)` on a database thread."""
        try:
            async with asyncio.timeout(self._admission_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeoutError("no database thread free within the pool timeout") from None
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, partial(call, self.engine, *args, **kwargs)
            )
        finally:
            self._slots.release()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()


def resolve_database_url(settings: Settings) -> URL:
    """`NEON_DATABASE_URL` when set; otherwise the embedded PostgreSQL, started on demand."""
    if settings.neon_database_url is not None:
        return normalize_url(settings.neon_database_url.get_secret_value())
    from backend import embedded_db

    return embedded_db.start(settings.embedded_db_dir)
