"""The database: a pool of psycopg2 connections driven by the event loop, tuned for Neon.

**On the event loop, not on threads.** Connections are psycopg2's asynchronous ones: a statement is
sent without blocking, and the loop waits for the answer on the socket like for any other I/O, so
nothing blocks the loop and no thread is involved. Handing each statement to a thread instead (as
`run_in_executor` or FastAPI's `def` handlers do) cost more CPU in thread wake-ups and GIL
hand-overs than the statement itself (figures: loadtests/README.md). SQLAlchemy's pools
block, so the pool is here: LIFO, bounded like SQLAlchemy's (`DB_POOL_SIZE` kept,
`DB_MAX_OVERFLOW` more under load, `DB_POOL_TIMEOUT_SECONDS` to wait for one), and SQLAlchemy
still turns the URL into libpq's parameters. Threads remain only for what cannot be asynchronous:
starting a connection (libpq resolves the host name) and sending a cancel.

One round trip per request: asynchronous connections are always in autocommit, so a single
`INSERT/UPDATE/DELETE … RETURNING` is its own transaction with no `BEGIN`/`COMMIT` round trips,
and no session state outlives a statement, which PgBouncer in transaction mode (Neon's pooled
endpoint) requires.

What Neon does to connections, and the answer to each:

- **A statement that never ends** (a locked row, a compute or network that stalls after
  accepting): `Database.fetch` gives every call a deadline, `DB_STATEMENT_TIMEOUT_SECONDS`, counted
  from the moment a connection is in hand (opening one is bounded by `DB_CONNECT_TIMEOUT_SECONDS`,
  so a Neon cold start stays a slow success). Past it the caller gets `StatementTimeoutError` (a
  503) at once, the connection is closed, and the statement is cancelled on the server with
  libpq's `PQcancel`: a cancel request on a connection of its own, which PgBouncer forwards, so
  it works through Neon's pooler — unlike a `statement_timeout` startup option, which the pooler
  refuses, or a `SET`, which would cost a round trip. `PQcancel` blocks, so it runs on a thread,
  called through ctypes: psycopg2's `connection.cancel()` holds the GIL while it waits, and on a
  dead network one cancel would freeze the whole process.
- **Connections the server closed while idle** (Neon suspending a compute, a restart): the socket
  is readable, which the checkout sees with `poll` at zero round trips, and the connection is
  replaced — what `pool_pre_ping` does, without its `SELECT 1` per request.
- **A close still travelling when the statement is sent** (`idle_session_timeout`, a pooler
  restart, the compute suspending just then): no check before sending can see it. Three layers:
  the pool is LIFO, so under steady traffic the connections in use stay warm and the idle ones
  sink to the bottom; a connection idle longer than `DB_PING_IDLE_SECONDS` (below any server idle
  timeout, above the gaps of steady traffic) is pinged first, so the one round trip of a ping is
  paid only after a lull; and a read that still meets a closed connection is rerun once on a fresh
  one. Only reads are rerun: a write the server may have executed before it closed must not be
  run twice (an INSERT would duplicate), unless psycopg2 refused to send it at all (connection
  already closed), which proves it never ran.
"""

import asyncio
import contextlib
import ctypes
import logging
import select
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import psycopg2
import psycopg2._psycopg
import psycopg2.extensions
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine import URL, make_url

from backend.config import Settings

logger = logging.getLogger("backend")

Row = tuple[Any, ...]

# How long a socket survives a dead network: unacknowledged data for 15 s, or silence for 10 s
# then 3 unanswered probes 5 s apart, and the kernel closes it.
_TCP_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}

# libpq's cancel API, resolved through psycopg2's own extension module so that it is the very libpq
# psycopg2 is linked with (dlsym searches a library's dependencies). ctypes releases the GIL.
_libpq = ctypes.CDLL(psycopg2._psycopg.__file__)
_libpq.PQgetCancel.argtypes = [ctypes.c_void_p]
_libpq.PQgetCancel.restype = ctypes.c_void_p
_libpq.PQfreeCancel.argtypes = [ctypes.c_void_p]
_libpq.PQfreeCancel.restype = None
_libpq.PQcancel.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
_libpq.PQcancel.restype = ctypes.c_int


class DatabaseUnavailableError(Exception):
    """The database cannot answer now (an outage, not a bug): the API answers 503."""


class StatementTimeoutError(DatabaseUnavailableError):
    """A statement outlived `DB_STATEMENT_TIMEOUT_SECONDS` and was cancelled."""


class PoolTimeoutError(DatabaseUnavailableError):
    """Every connection stayed busy for `DB_POOL_TIMEOUT_SECONDS`."""


class DatabaseUnreachableError(DatabaseUnavailableError):
    """No connection within the connect timeout (also the migration's one-line start-up error)."""


class ConnectionLostError(DatabaseUnavailableError):
    """The connection broke during the statement, and rerunning it was not safe or failed too."""


def normalize_url(url: str | URL) -> URL:
    """Accept the `postgres://` / `postgresql://` URLs Neon and Heroku print, for psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def connect_params(url: str | URL) -> dict[str, Any]:
    """libpq's parameters for `url` (SQLAlchemy's translation: query options pass as written).

    No `connect_timeout`: libpq ignores it on an asynchronous connection, whose opening
    `Database` bounds itself."""
    _, params = PGDialect_psycopg2().create_connect_args(normalize_url(url))  # type: ignore[no-untyped-call]
    return {"application_name": "todo-backend", **_TCP_OPTIONS, **params}


class _Connection:
    """A pooled asynchronous psycopg2 connection and the times the checkout judges it by."""

    __slots__ = ("born", "idle_since", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.born = self.idle_since = time.monotonic()


async def _wait(raw: Any) -> None:
    """Drive `raw` (connecting, or running a statement) until psycopg2 says it is done."""
    loop = asyncio.get_running_loop()
    while True:
        state = raw.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        ready = loop.create_future()
        fd = raw.fileno()
        if state == psycopg2.extensions.POLL_READ:
            loop.add_reader(fd, _set_ready, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
        else:  # POLL_WRITE: the statement did not fit in the socket buffer at once
            loop.add_writer(fd, _set_ready, ready)
            try:
                await ready
            finally:
                loop.remove_writer(fd)


def _set_ready(ready: "asyncio.Future[None]") -> None:
    if not ready.done():
        ready.set_result(None)


def _readable(fd: int) -> bool:
    """Anything to read on an idle connection means the server closed it (`poll`: any fd number)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _lost(failure: psycopg2.Error, raw: Any) -> bool:
    """The connection itself failed (no SQLSTATE from the server, or a connection-class one)."""
    code = failure.pgcode or ""
    return (
        bool(raw.closed)
        or isinstance(failure, psycopg2.InterfaceError)
        or not code
        or code.startswith(("08", "57P"))
    )


def _is_read(sql: str) -> bool:
    """A plain SELECT: every read of ours is one, without side effects (a write never starts so)."""
    return sql.lstrip()[:6].upper() == "SELECT"


def _cancel_and_close(handle: int, raw: Any) -> None:
    """Ask the server to cancel the running statement (blocks: it opens a connection)."""
    reason = ctypes.create_string_buffer(256)
    try:
        if not _libpq.PQcancel(handle, reason, len(reason)):
            logger.warning("could not cancel a statement past its deadline: %s", reason.value)
    finally:
        _libpq.PQfreeCancel(handle)
        _close(raw)


def _close(raw: Any) -> None:
    with contextlib.suppress(psycopg2.Error):
        raw.close()


class Database:
    """The pool, and `fetch`: one statement on a live connection within the deadline.

    Built outside any event loop (no loop-bound state until the first call); used from one loop.
    """

    def __init__(self, url: str | URL, settings: Settings) -> None:
        self._params = connect_params(url)
        self._keep = settings.db_pool_size
        self._max = settings.db_pool_size + settings.db_max_overflow
        self._admission_timeout = settings.db_pool_timeout_seconds
        self._connect_timeout = settings.db_connect_timeout_seconds
        self._deadline = settings.db_statement_timeout_seconds
        self._ping_idle = settings.db_ping_idle_seconds
        self._recycle = settings.db_pool_recycle_seconds
        self._idle: list[_Connection] = []  # LIFO: the last returned is the next handed out
        self._size = 0  # connections open or opening
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._closed = False
        self._connects = ThreadPoolExecutor(max_workers=self._max, thread_name_prefix="db-connect")
        self._cancels = ThreadPoolExecutor(max_workers=self._max, thread_name_prefix="db-cancel")

    @property
    def idle(self) -> int:
        """Connections in the pool, ready to be handed out."""
        return len(self._idle)

    async def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run `sql` (psycopg2 `%(name)s` parameters) as its own transaction; the rows it returns.

        Raises `DatabaseUnavailableError` for an outage (503); any other `psycopg2.Error` is the
        statement's own (a bug, or what the caller asked for, such as a missing table).
        """
        rerun = False
        while True:
            connection = await self._acquire()
            sent = False  # a ping that fails proves the statement was never sent
            try:
                async with asyncio.timeout(self._deadline):
                    if time.monotonic() - connection.idle_since > self._ping_idle:
                        await self._execute(connection.raw, "SELECT 1", None)
                    sent = True
                    rows = await self._execute(connection.raw, sql, params)
            except TimeoutError:
                self._abandon(connection)
                raise StatementTimeoutError("statement cancelled at the deadline") from None
            except psycopg2.Error as failure:
                if not _lost(failure, connection.raw):
                    self._release(connection)
                    raise
                self._discard(connection)
                never_ran = not sent or isinstance(failure, psycopg2.InterfaceError)
                if rerun or not (never_ran or _is_read(sql)):
                    raise ConnectionLostError(type(failure).__name__) from failure
                logger.info("database connection lost before the statement ran; rerunning it")
                rerun = True
                continue
            except BaseException:  # cancelled: the statement's fate is unknown
                self._abandon(connection)
                raise
            self._release(connection)
            return rows

    @staticmethod
    async def _execute(raw: Any, sql: str, params: Mapping[str, Any] | None) -> list[Row]:
        # No `with`: closing a cursor whose statement is still running raises, and would hide
        # why it stopped (the deadline, a cancel). An unclosed cursor is freed with its object.
        cursor = raw.cursor()
        cursor.execute(sql, params)
        await _wait(raw)
        rows: list[Row] = cursor.fetchall() if cursor.description is not None else []
        cursor.close()
        return rows

    async def _acquire(self) -> _Connection:
        """A live connection: an idle one, a new one while under the limit, or the next returned."""
        give_up: float | None = None
        while True:
            while self._idle:
                connection = self._idle.pop()
                if self._usable(connection):
                    return connection
                self._discard(connection)
            if self._size < self._max:
                return await self._open()
            if give_up is None:
                give_up = asyncio.get_running_loop().time() + self._admission_timeout
            returned = await self._next_returned(give_up)
            if returned is not None:
                if self._usable(returned):
                    return returned
                self._discard(returned)

    def _usable(self, connection: _Connection) -> bool:
        raw = connection.raw
        return not (
            raw.closed
            or time.monotonic() - connection.born > self._recycle
            or _readable(raw.fileno())
        )

    async def _next_returned(self, give_up: float) -> _Connection | None:
        """The next connection returned to the pool, or None when a slot frees up (to open one)."""
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(give_up):
                return await waiter
        except BaseException as failure:
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()  # handed over just as the wait ended: pass it on
                if handed is not None:
                    self._release(handed)
                else:
                    self._hand_over(None)
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(failure, TimeoutError):
                raise PoolTimeoutError("no connection free within the pool timeout") from None
            raise

    async def _open(self) -> _Connection:
        self._size += 1
        loop = asyncio.get_running_loop()
        start = loop.run_in_executor(
            self._connects, partial(psycopg2.connect, async_=True, **self._params)
        )
        try:
            async with asyncio.timeout(self._connect_timeout):
                raw = await start
                try:
                    await _wait(raw)
                except BaseException:
                    _close(raw)
                    raise
        except BaseException as failure:
            self._freed()
            if not start.done():  # still resolving the host: close what it opens, if anything
                start.add_done_callback(_close_started)
            if isinstance(failure, TimeoutError):
                raise DatabaseUnreachableError(
                    f"no connection within the {self._connect_timeout} s connect timeout"
                ) from None
            if isinstance(failure, psycopg2.Error):
                raise DatabaseUnreachableError(_first_line(failure)) from failure
            raise
        return _Connection(raw)

    def _release(self, connection: _Connection) -> None:
        """Back to the pool (or straight to a waiter); beyond `DB_POOL_SIZE` idle, closed."""
        if self._closed or connection.raw.closed:
            self._discard(connection)
            return
        connection.idle_since = time.monotonic()
        if self._hand_over(connection):
            return
        if len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            self._discard(connection)

    def _discard(self, connection: _Connection) -> None:
        _close(connection.raw)
        self._freed()

    def _abandon(self, connection: _Connection) -> None:
        """A statement may still run on the server: cancel it there, and never reuse the socket.

        The socket is closed once the cancel is sent: PgBouncer matches a cancel to a client
        connection it still has, and drops it otherwise (the statement would run on). Until then
        the connection still counts against the pool's limit, so a stalled network (where the
        cancel itself hangs) bounds admission instead of drawing a storm of new connections.
        """
        raw = connection.raw
        handle = None if raw.closed or self._closed else _libpq.PQgetCancel(raw.pgconn_ptr)
        if not handle:
            self._discard(connection)
            return
        loop = asyncio.get_running_loop()
        cancel = self._cancels.submit(_cancel_and_close, handle, raw)
        cancel.add_done_callback(lambda _: _call_soon(loop, self._freed))

    def _freed(self) -> None:
        self._size -= 1
        self._hand_over(None)

    def _hand_over(self, connection: _Connection | None) -> bool:
        """To the first caller still waiting: a connection, or None for a free slot to open one
        in. False when nobody waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def close(self) -> None:
        """Close the idle connections now and the busy ones when they come back."""
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())
        self._connects.shutdown(wait=False)
        self._cancels.shutdown(wait=False)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """From another thread; a loop already closed has nobody left to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


def _close_started(start: "asyncio.Future[Any]") -> None:
    if not start.cancelled() and start.exception() is None:
        _close(start.result())


def _first_line(failure: BaseException) -> str:
    return (str(failure).strip().splitlines() or [type(failure).__name__])[0]


def resolve_database_url(settings: Settings) -> URL:
    """`NEON_DATABASE_URL` when set; otherwise the embedded PostgreSQL, started on demand."""
    if settings.neon_database_url is not None:
        return normalize_url(settings.neon_database_url.get_secret_value())
    from backend import embedded_db

    return embedded_db.start(settings.embedded_db_dir)
