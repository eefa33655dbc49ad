"""The database: an engine tuned for Neon, and the threads its blocking statements run on.

Tuned for one round trip per request over a network hop (Neon): the connection runs in autocommit,
so a single `INSERT/UPDATE/DELETE … RETURNING` is its own transaction with no `BEGIN`/`COMMIT`
round trips. Autocommit also keeps no session state between statements, which is what PgBouncer
in transaction mode (Neon's pooled endpoint) requires.

What Neon does to connections, and the answer to each:

- **A statement that never ends** (a locked row, a compute or network that stalls after
  accepting): `Database.run` gives every call a deadline, `DB_STATEMENT_TIMEOUT_SECONDS`, counted
  from the moment a connection is in hand (connecting is bounded by `DB_CONNECT_TIMEOUT_SECONDS`,
  so a Neon cold start stays a slow success). Past it the request gets 503 at once and the
  statement is cancelled on the server with libpq's `PQcancel`: a cancel request on a connection
  of its own, which PgBouncer forwards, so it works through Neon's pooler — unlike a
  `statement_timeout` startup option, which the pooler refuses, or a `SET`, which would cost a
  round trip. The connection is then discarded, never reused (the cancel may still be on its way).
  `PQcancel` is called through ctypes, not psycopg2's `connection.cancel()`: psycopg2 holds the
  GIL while it waits, so on a dead network one cancel would freeze the whole process (seen here:
  every thread and the event loop stuck behind one cancel to a stalled server).
  If the network itself is dead the cancel cannot arrive: the answer still comes at the deadline,
  and the thread stays blocked (holding its admission slot, so admission stays bounded) until TCP
  gives up on the socket (`tcp_user_timeout`, keepalives: tens of seconds).
- **Connections the server closed while idle** (Neon suspending a compute, a restart): the socket
  is readable, which `_Guard.checkout` sees with `poll` at zero round trips and swaps for a fresh
  connection — what `pool_pre_ping` does, without its `SELECT 1` per request.
- **A close still travelling when the statement is sent** (`idle_session_timeout`, a pooler
  restart, the compute suspending just then): no check before sending can see it. Three layers:
  the pool is LIFO, so under steady traffic the connections in use stay warm and the idle ones
  sink to the bottom; a connection idle longer than `DB_PING_IDLE_SECONDS` (below any server idle
  timeout, above the gaps of steady traffic) is pinged first, so the one round trip of a ping is
  paid only after a lull; and a read that still meets a closed connection is rerun once on a fresh
  one. Only reads are rerun: a write the server may have executed before it closed must not be
  run twice (an INSERT would duplicate), unless psycopg2 refused to send it at all ("connection
  already closed"), which proves it never ran.
"""

import asyncio
import contextlib
import ctypes
import logging
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg2
import psycopg2._psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidRequestError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, PoolResetState

from backend.config import Settings

logger = logging.getLogger("backend")

# How long a blocked socket survives a dead network: unacknowledged data for 15 s, or silence for
# 10 s then 3 unanswered probes 5 s apart, and the kernel closes it (the blocked thread returns).
_TCP_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}
_IDLE_SINCE = "todo_idle_since"

# libpq's cancel API, resolved through psycopg2's own extension module so that it is the very libpq
# psycopg2 is linked with (dlsym searches a library's dependencies). ctypes releases the GIL.
_libpq = ctypes.CDLL(psycopg2._psycopg.__file__)
_libpq.PQgetCancel.argtypes = [ctypes.c_void_p]
_libpq.PQgetCancel.restype = ctypes.c_void_p
_libpq.PQfreeCancel.argtypes = [ctypes.c_void_p]
_libpq.PQfreeCancel.restype = None
_libpq.PQcancel.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
_libpq.PQcancel.restype = ctypes.c_int

P = ParamSpec("P")
T = TypeVar("T")


class StatementTimeoutError(SQLAlchemyError):
    """A statement outlived `DB_STATEMENT_TIMEOUT_SECONDS` and was cancelled: a 503."""


class DatabaseUnreachableError(SQLAlchemyError):
    """No connection within the connect timeout (the migration's one-line start-up error)."""


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
        pool_use_lifo=True,
        # Autocommit leaves no transaction to roll back when a connection returns to the pool.
        pool_reset_on_return=None,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            "application_name": "todo-backend",
            **_TCP_OPTIONS,
        },
    )
    guard = _Guard(settings.db_ping_idle_seconds)
    event.listen(engine, "checkout", guard.checkout)
    event.listen(engine, "reset", guard.checkin)
    event.listen(engine, "handle_error", guard.error)
    return engine


class _Call:
    """One `Database.run` call, as its watchdog (on the event loop) and its thread both see it.

    `lock` orders the two: the watchdog marks the call expired, and takes the handle to cancel with,
    only while the thread still holds its connection; the thread, returning the connection, sees
    the mark and invalidates it, so a cancel still on its way can never hit the statement of the
    next request on a reused connection. `cancel` (libpq's `PGcancel`, made at checkout by the
    thread that owns the connection) belongs to whoever takes it: the watchdog, to cancel, or the
    thread at checkin, to free it.
    """

    __slots__ = ("cancel", "expired", "lock", "refused", "rerunnable", "since", "watch")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancel: int | None = None  # PGcancel* for the checked-out connection
        self.since = 0.0  # when it was checked out (time.monotonic)
        self.expired = False
        self.rerunnable = False  # the last failure proves a rerun is safe
        self.refused = 0  # connections the checkout found closed
        self.watch: asyncio.TimerHandle | None = None

    def hold(self, dbapi_connection: Any) -> None:
        """A connection is in hand: the deadline's clock starts (unless the caller left)."""
        handle = _libpq.PQgetCancel(dbapi_connection.pgconn_ptr)
        with self.lock:
            expired = self.expired
            if not expired:
                self.cancel, self.since = handle, time.monotonic()
        if expired:  # e.g. a ping outlived the deadline: run nothing after the 503
            _libpq.PQfreeCancel(handle)
            raise StatementTimeoutError("the caller stopped waiting")

    def release(self) -> bool:
        """The connection goes back: free the cancel handle; True if the call expired meanwhile."""
        with self.lock:
            handle, self.cancel = self.cancel, None
            expired = self.expired
        if handle is not None:
            _libpq.PQfreeCancel(handle)
        return expired


_current = threading.local()  # `.call`: the `_Call` the database thread is running


def _current_call() -> _Call | None:
    return getattr(_current, "call", None)


class _Guard:
    """Pool and engine event listeners: stale-connection checks and the deadline's bookkeeping."""

    def __init__(self, ping_idle_seconds: float) -> None:
        self.ping_idle_seconds = ping_idle_seconds

    def checkout(
        self, dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        """Hand out only a live connection; start the deadline's clock (a ping counts in it)."""
        call = _current_call()
        if call is not None:
            call.hold(dbapi_connection)
        if dbapi_connection.closed or _readable(dbapi_connection.fileno()):
            self._refuse(call, "connection closed by the server while idle")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and time.monotonic() - idle_since > self.ping_idle_seconds:
            try:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
            except psycopg2.Error:
                self._refuse(call, "idle connection failed its ping")

    @staticmethod
    def _refuse(call: _Call | None, reason: str) -> None:
        """The pool discards the connection and checks out a freshly opened one instead."""
        if call is not None:
            call.release()
            call.refused += 1
        raise DisconnectionError(reason)

    @staticmethod
    def checkin(dbapi_connection: Any, record: ConnectionPoolEntry, _state: PoolResetState) -> None:
        """Note when the connection went idle; discard it if its statement was cancelled."""
        record.info[_IDLE_SINCE] = time.monotonic()
        call = _current_call()
        if call is not None and call.release():
            record.invalidate()

    @staticmethod
    def error(context: ExceptionContext) -> None:
        """On a lost connection, decide whether rerunning the call is safe (see module docs)."""
        call = _current_call()
        if call is None or not context.is_disconnect:
            return
        # Drop this connection only: the others are checked one by one at their next checkout.
        context.invalidate_pool_on_disconnect = False
        never_sent = isinstance(context.original_exception, psycopg2.InterfaceError)
        call.rerunnable = never_sent or _is_read(context)


def _is_read(context: ExceptionContext) -> bool:
    """A plain SELECT: every read of ours is one, without side effects (a write never starts so)."""
    return (context.statement or "").lstrip()[:6].upper() == "SELECT"


def _readable(fd: int) -> bool:
    """Anything to read on an idle connection means the server closed it (`poll`: any fd number)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _run_call(call: _Call, work: Callable[[], T]) -> T:
    """`work()` on a database thread, rerun once when its failure proves that is safe."""
    _current.call = call
    try:
        try:
            return _attempt(call, work)
        except DBAPIError as failure:
            if not (failure.connection_invalidated and call.rerunnable) or call.expired:
                raise
            logger.info("database connection lost before the statement ran; rerunning it once")
        call.rerunnable = False
        return _attempt(call, work)
    finally:
        _current.call = None


def _attempt(call: _Call, work: Callable[[], T]) -> T:
    try:
        return work()
    except InvalidRequestError as failure:
        # SQLAlchemy's "This connection is closed": both checkout attempts found the connection
        # closed. An outage, not a bug: a 503 like any lost connection (on a rerun too).
        if not call.refused:
            raise
        raise DisconnectionError("no live connection at checkout") from failure


def _cancel(handle: int) -> None:
    """Ask the server to cancel the running statement (blocks: it opens a connection)."""
    reason = ctypes.create_string_buffer(256)
    try:
        if not _libpq.PQcancel(handle, reason, len(reason)):
            logger.warning("could not cancel a statement past its deadline: %s", reason.value)
    finally:
        _libpq.PQfreeCancel(handle)


class Database:
    """The engine, and a thread pool sized to its connection pool that runs its statements.

    psycopg2 blocks, so statements must not run on the event loop. FastAPI's way out, a plain
    `def` handler, hands the whole request to its thread pool, at more than twice the CPU of a
    hop to a dedicated pool (figures: loadtests/README.md). So handlers are `async def` and
    `await database.run(...)`.

    One thread per pooled connection: a statement never waits in the executor for a connection
    that cannot exist. Admission is bounded like the pool: a request that cannot get a thread
    within `DB_POOL_TIMEOUT_SECONDS` fails as the pool would (503), instead of queueing forever.
    A thread stays counted until it really returns, even when its caller stopped waiting.

    The deadline is watched from the event loop (one timer per call, nothing added on the
    database's side), and the cancel runs on a thread of its own since it blocks.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        threads = settings.db_pool_size + settings.db_max_overflow
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")
        self._cancels = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db-cancel")
        self._slots = asyncio.Semaphore(threads)
        self._admission_timeout = settings.db_pool_timeout_seconds
        self._deadline = settings.db_statement_timeout_seconds

    async def run(
        self, call: Callable[Concatenate[Engine, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`call(engine, *args, **kwargs)` on a database thread, within the statement deadline."""
        try:
            async with asyncio.timeout(self._admission_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeoutError("no database thread free within the pool timeout") from None
        loop = asyncio.get_running_loop()
        state = _Call()
        job = self._executor.submit(_run_call, state, partial(call, self.engine, *args, **kwargs))
        answer = asyncio.wrap_future(job, loop=loop)
        state.watch = loop.call_later(self._deadline, self._watch, state, job, answer)
        try:
            return await answer
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if state.expired and task is not None and not task.cancelling():
                raise StatementTimeoutError("statement cancelled at the deadline") from None
            raise
        finally:
            if state.watch is not None:
                state.watch.cancel()
            if job.done():
                self._slots.release()
            else:
                job.add_done_callback(partial(self._release_later, loop))

    def _watch(self, state: _Call, job: "Future[Any]", answer: "asyncio.Future[Any]") -> None:
        """On the loop: past the deadline, stop waiting and cancel; otherwise look again later."""
        if job.done():
            return
        with state.lock:
            handle = state.cancel
            left = self._deadline
            if handle is not None:  # else still connecting: bounded by the connect timeout
                left = state.since + self._deadline - time.monotonic()
                if left <= 0:
                    state.expired, state.cancel = True, None
        if left > 0:
            state.watch = answer.get_loop().call_later(left, self._watch, state, job, answer)
            return
        assert handle is not None
        self._cancels.submit(_cancel, handle)
        answer.cancel()

    def _release_later(self, loop: asyncio.AbstractEventLoop, _job: "Future[Any]") -> None:
        """On the thread that finally returned: give its admission slot back."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nothing left to admit
            loop.call_soon_threadsafe(self._slots.release)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._cancels.shutdown(wait=False)
        self.engine.dispose()


def resolve_database_url(settings: Settings) -> URL:
    """`NEON_DATABASE_URL` when set; otherwise the embedded PostgreSQL, started on demand."""
    if settings.neon_database_url is not None:
        return normalize_url(settings.neon_database_url.get_secret_value())
    from backend import embedded_db

    return embedded_db.start(settings.embedded_db_dir)
