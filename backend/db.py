"""The database: `Database.fetch` runs one statement, fairly, within its deadline; `ping` says
whether the database answers.

One statement is one transaction (asynchronous connections are always in autocommit: no
`BEGIN`/`COMMIT` round trips, no session state, as PgBouncer in transaction mode requires).
Every statement has a deadline counted once its connection is in hand, past which it is a 503
and cancelled on the server; a read that meets a connection closed in flight is rerun once, a
write only if it provably never ran; one user holds at most `DB_STATEMENTS_PER_USER` statements.
Why each, with figures: docs/decisions/0001-own-asyncio-pool.md and
0007-fairness-and-circuit-breaker.md.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg2
from sqlalchemy.engine import URL

from backend import pg
from backend.breaker import Breaker
from backend.db_errors import (
    CircuitOpenError,
    ConnectionLostError,
    DatabaseUnavailableError,
    DatabaseUnreachableError,
    PoolTimeoutError,
    StatementTimeoutError,
    TenantBusyError,
)
from backend.db_url import connect_params, normalize_url, resolve_database_url
from backend.pg import Row
from backend.pool import Pool, PoolLimits
from backend.tenants import TenantSlots

__all__ = [
    "CircuitOpenError",
    "ConnectionLostError",
    "Database",
    "DatabaseUnavailableError",
    "DatabaseUnreachableError",
    "PoolTimeoutError",
    "Row",
    "StatementTimeoutError",
    "TenantBusyError",
    "normalize_url",
    "resolve_database_url",
]

logger = logging.getLogger("backend")

# `/health` answers within this even while its probe still waits (SC-001).
PING_ANSWER_WITHIN = 1.5


@dataclass(frozen=True)
class DatabaseLimits:
    """What `Database` may hold, take and wait for (the `Settings` fields `db_*`:
    `backend.main.database_limits`)."""

    pool: PoolLimits = field(default_factory=PoolLimits)
    deadline: float = 1.5  # a statement's, once its connection is in hand
    ping_idle: float = 30.0  # a connection idle longer is pinged before use
    per_user: int = 5  # statements of one user in flight at once


class Database:
    """Built outside any event loop (no loop-bound state until the first call); used from one."""

    def __init__(self, url: str | URL, limits: DatabaseLimits) -> None:
        self._breaker = Breaker()
        self._pool = Pool(connect_params(url), limits.pool, self._breaker)
        health = replace(limits.pool, keep=1, max=1)
        self._health = Pool(connect_params(url), health, self._breaker)
        self._tenants = TenantSlots(limits.per_user)
        self._deadline = limits.deadline
        self._ping_idle = limits.ping_idle
        self._admission = limits.pool.wait
        self._probe: asyncio.Task[None] | None = None

    @property
    def idle(self) -> int:
        """Connections in the pool, ready to be handed out."""
        return self._pool.idle

    async def fetch(
        self, sql: str, params: Mapping[str, Any] | None = None, *, tenant: str | None = None
    ) -> list[Row]:
        """Run `sql` (psycopg2 `%(name)s` parameters) as its own transaction; the rows it returns.

        `tenant` (the user it runs for) holds one of that user's slots meanwhile. Raises
        `DatabaseUnavailableError` for an outage (503), `TenantBusyError` when the user's slots
        stayed taken (429); any other `psycopg2.Error` is the statement's own.
        """
        # One admission wait for both: the user's slot, then a connection.
        give_up = asyncio.get_running_loop().time() + self._admission
        if tenant is None:
            return await self._run(self._pool, sql, params, give_up)
        await self._tenants.acquire(tenant, give_up)
        try:
            return await self._run(self._pool, sql, params, give_up)
        finally:
            self._tenants.release(tenant)

    async def ping(self) -> None:
        """Return if the database answers, else `DatabaseUnavailableError`, within
        `PING_ANSWER_WITHIN`: one probe at a time on a connection of its own, shared by every
        concurrent caller, so health checks never queue behind users (nor pile up on an outage)."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._ping_once())
            self._probe.add_done_callback(_retrieve)
        try:
            async with asyncio.timeout(PING_ANSWER_WITHIN):
                await asyncio.shield(self._probe)
        except TimeoutError:
            raise DatabaseUnavailableError("no answer to the health probe in time") from None

    async def _ping_once(self) -> None:
        try:
            await self._run(self._health, "SELECT 1", None, None)
        except psycopg2.Error as failure:
            raise DatabaseUnavailableError(pg.first_line(failure)) from None

    async def _run(
        self, pool: Pool, sql: str, params: Mapping[str, Any] | None, give_up: float | None
    ) -> list[Row]:
        rerun = False
        while True:
            connection = await pool.acquire(None if rerun else give_up)
            sent = False  # a ping that fails proves the statement was never sent
            try:
                async with asyncio.timeout(self._deadline):
                    if time.monotonic() - connection.idle_since > self._ping_idle:
                        await pg.execute(connection.cursor(), "SELECT 1", None)
                    sent = True
                    rows = await pg.execute(connection.cursor(), sql, params)
            except TimeoutError:
                pool.abandon(connection)
                raise StatementTimeoutError("statement cancelled at the deadline") from None
            except psycopg2.Error as failure:
                if not pg.lost(failure, connection.raw):
                    pool.release(connection)
                    raise
                pool.discard(connection)
                never_ran = not sent or isinstance(failure, psycopg2.InterfaceError)
                if rerun or not (never_ran or pg.is_read(sql)):
                    raise ConnectionLostError(type(failure).__name__) from failure
                logger.info("database connection lost before the statement ran; rerunning it")
                rerun = True
                continue
            except BaseException:  # cancelled: the statement's fate is unknown
                pool.abandon(connection)
                raise
            pool.release(connection)
            return rows

    def close(self) -> None:
        """Close the idle connections now and the busy ones when they come back."""
        self._pool.close()
        self._health.close()


def _retrieve(task: "asyncio.Task[None]") -> None:
    """A probe whose callers all stopped waiting still has its outcome read (no warning)."""
    if not task.cancelled():
        task.exception()
