"""The connection pool: LIFO, bounded like SQLAlchemy's, opening connections in the background.

Connections are checked at checkout without a round trip (a connection the server closed while
idle is readable), opened a few at a time for whoever waits, and cancelled on the server before
their socket closes when a statement is abandoned; a circuit breaker stops connecting into a
database that does not answer. The admission wait extends to the connect timeout only on a cold
start. Why: docs/decisions/0001-own-asyncio-pool.md, 0007-fairness-and-circuit-breaker.md.
"""

import asyncio
import time
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from backend import pg
from backend.breaker import MAX_PROBES, Breaker
from backend.db_errors import CircuitOpenError, DatabaseUnavailableError, PoolTimeoutError
from backend.handoff import Handoff

# Connection attempts in flight at once while the database is healthy.
OPENING = 8
# How long the server has to answer a cancel before the database counts as stalled, and how
# many cancels may be under way at once (the rest wait, and are skipped once the breaker opens).
CANCEL_TIMEOUT = 1.0
CANCELLING = 4


@dataclass(frozen=True)
class PoolLimits:
    """The pool's bounds (`Settings` fields `db_*`)."""

    keep: int = 20  # idle connections kept
    max: int = 40  # connections open at once, idle or not
    wait: float = 0.5  # admission: how long a caller waits for a connection
    connect_timeout: float = 5.0
    recycle: float = 1800.0  # a connection older than this is replaced at checkout


class Connection:
    """A pooled asynchronous psycopg2 connection and the times the checkout judges it by."""

    __slots__ = ("born", "idle_since", "raw", "statement")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.born = self.idle_since = time.monotonic()
        self.statement: Any = None  # the cursor of the last statement: kept for `pg.settle`

    def cursor(self) -> Any:
        """A cursor for the next statement, held here until the next one replaces it."""
        self.statement = self.raw.cursor()
        return self.statement

    async def cancel(self) -> str | None:
        """Cancel the statement in flight: None once the server answered, else why not."""
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                return await pg.cancel(self.raw)
        except TimeoutError:
            return f"no answer within {CANCEL_TIMEOUT:g} s"

    async def settle(self) -> bool:
        """After an answered cancel: whether it landed on the statement, so the connection may
        serve again. One that outlasts the cancel costs its connection, not the breaker."""
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                return await pg.settle(self.statement)
        except TimeoutError:
            return False

    def usable(self, recycle: float) -> bool:
        """Open, younger than `recycle`, and not closed by the server while it sat idle."""
        raw = self.raw
        return not (
            raw.closed or time.monotonic() - self.born > recycle or pg.readable(raw.fileno())
        )


class Pool:
    """Built outside any event loop (no loop-bound state until the first call); used from one."""

    def __init__(self, params: Mapping[str, Any], limits: PoolLimits, breaker: Breaker) -> None:
        self._params = params
        self._limits = limits
        self._breaker = breaker
        self._idle: list[Connection] = []
        self._size = 0  # open, opening or being cancelled
        self._opening = 0
        self._waiters: Handoff[Connection] = Handoff()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel_slots = asyncio.Semaphore(CANCELLING)
        self._closed = False
        # Only for libpq's host-name resolution when a connection starts.
        self._threads = ThreadPoolExecutor(OPENING + MAX_PROBES, thread_name_prefix="db-connect")

    @property
    def idle(self) -> int:
        """Connections in the pool, ready to be handed out."""
        return len(self._idle)

    async def acquire(self, give_up: float | None = None) -> Connection:
        """A live connection: an idle one, or the next that comes free or is opened.

        The wait ends at the loop time `give_up` (default: the admission wait from now)."""
        if self._closed:
            raise DatabaseUnavailableError("the server is shutting down")
        probing = self._breaker.open
        if probing:
            if not self._breaker.allow_probe():
                raise CircuitOpenError("the database did not answer lately; retrying shortly")
            self._start_open(probe=True)
            cold = False
        else:
            while self._idle:
                connection = self._idle.pop()
                if connection.usable(self._limits.recycle):
                    return connection
                self.discard(connection)
            # Nothing out, only connections being opened: the first ones after a lull, which
            # the connect timeout bounds (the margin lets its failure arrive first).
            cold = self._size == self._opening
        now = asyncio.get_running_loop().time()
        ends = now + self._limits.wait if give_up is None else give_up
        if cold:
            ends = max(ends, now + self._limits.connect_timeout + 0.5)
        self._grow(waiting=1)
        try:
            return await self._waiters.wait(ends, self.release)
        except TimeoutError:
            if probing:
                raise CircuitOpenError("the database has not answered again yet") from None
            raise PoolTimeoutError("no connection came free in time") from None

    def release(self, connection: Connection) -> None:
        """Back to the pool (or straight to a waiter); beyond `keep` idle, closed."""
        if self._closed or connection.raw.closed:
            self.discard(connection)
            return
        connection.idle_since = time.monotonic()
        if self._waiters.hand(connection):
            return
        if len(self._idle) < self._limits.keep:
            self._idle.append(connection)
        else:
            self.discard(connection)

    def discard(self, connection: Connection) -> None:
        pg.close(connection.raw)
        self._freed()

    def abandon(self, connection: Connection) -> None:
        """A statement may still run on the server: cancel it there, then close the socket."""
        if connection.raw.closed or self._closed:
            self.discard(connection)
        else:
            self._start(self._cancel(connection))

    def close(self) -> None:
        """Close the idle connections now, the busy ones when they come back."""
        self._closed = True
        while self._idle:
            self.discard(self._idle.pop())
        for task in list(self._tasks):
            task.cancel()
        self._threads.shutdown(wait=False)

    # --- inside ---------------------------------------------------------------------------

    def _grow(self, waiting: int = 0) -> None:
        """Open connections for the callers waiting (and `waiting` about to), a few at a time,
        within `max`."""
        while (
            len(self._waiters) + waiting > self._opening
            and self._size < self._limits.max
            and self._opening < OPENING
            and not self._breaker.open
            and not self._closed
        ):
            self._start_open(probe=False)

    def _start_open(self, *, probe: bool) -> None:
        self._size += 1
        self._opening += 1
        self._start(self._open(probe))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, probe: bool) -> None:
        raw = None
        try:
            raw = await pg.connect(self._params, self._threads, self._limits.connect_timeout)
        except DatabaseUnavailableError as failure:
            self._breaker.failed(str(failure))
            # Every caller waiting learns the database is down now, not at its timeout.
            self._waiters.fail(partial(type(failure), str(failure)))
        finally:
            self._opening -= 1
            if probe:
                self._breaker.probe_ended()
            if raw is None:  # failed, or cancelled as the pool closed
                self._freed()
        if raw is not None:
            self._breaker.succeeded()
            self.release(Connection(raw))
            self._grow()

    async def _cancel(self, connection: Connection) -> None:
        """Cancel a few at a time, none into a database known not to answer (a stall's stuck
        statements would each send one more connection into it); keep the connection if the
        cancel landed (a noisy user's deadlines then cost nobody a fresh connection)."""
        refused, settled = None, False
        try:
            async with self._cancel_slots:
                if not self._breaker.open:
                    refused = await connection.cancel()
                    settled = refused is None and await connection.settle()
        finally:
            (self.release if settled else self.discard)(connection)
        if refused is not None:
            self._breaker.failed(f"a statement past its deadline could not be cancelled: {refused}")

    def _freed(self) -> None:
        self._size -= 1
        self._grow()
