"""One asynchronous psycopg2 connection on the event loop: open it, run a statement, cancel one.

psycopg2's asynchronous connections send without blocking, and the loop waits on their socket
like on any other, so no statement needs a thread (decisions/0001-own-asyncio-pool.md). Only the
start of a connection runs on a thread: libpq resolves the host name there, blocking. A cancel is
libpq 17's non-blocking one (`PQcancelCreate`/`PQcancelPoll`, through ctypes, on the very libpq
psycopg2 is linked with): on the loop, bounded by the caller, never a thread stuck on a dead
network.
"""

import asyncio
import contextlib
import ctypes
import select
from collections.abc import Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Any

import psycopg2
import psycopg2._psycopg
import psycopg2.extensions

from backend.db_errors import DatabaseUnreachableError

Row = tuple[Any, ...]

# dlsym searches a library's dependencies: these are the libpq psycopg2 itself calls.
_libpq = ctypes.CDLL(psycopg2._psycopg.__file__)
for _name, _result in (
    ("PQcancelCreate", ctypes.c_void_p),
    ("PQcancelStart", ctypes.c_int),
    ("PQcancelPoll", ctypes.c_int),
    ("PQcancelSocket", ctypes.c_int),
    ("PQcancelErrorMessage", ctypes.c_char_p),
    ("PQcancelFinish", None),
):
    getattr(_libpq, _name).argtypes = [ctypes.c_void_p]
    getattr(_libpq, _name).restype = _result
# PostgresPollingStatusType
_POLLING_FAILED, _POLLING_READING, _POLLING_WRITING, _POLLING_OK = 0, 1, 2, 3


async def _ready(fd: int, *, writing: bool) -> None:
    """Until `fd` can be read (or written)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    add, remove = (
        (loop.add_writer, loop.remove_writer) if writing else (loop.add_reader, loop.remove_reader)
    )
    add(fd, _set_ready, ready)
    try:
        await ready
    finally:
        remove(fd)


def _set_ready(ready: "asyncio.Future[None]") -> None:
    if not ready.done():
        ready.set_result(None)


async def wait(raw: Any) -> None:
    """Drive `raw` (connecting, or running a statement) until psycopg2 says it is done."""
    while True:
        state = raw.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        # POLL_WRITE: the statement did not fit in the socket buffer at once.
        await _ready(raw.fileno(), writing=state == psycopg2.extensions.POLL_WRITE)


async def connect(params: Mapping[str, Any], threads: Executor, connect_timeout: float) -> Any:
    """A new connection within `connect_timeout`, or `DatabaseUnreachableError` (libpq's reason)."""
    loop = asyncio.get_running_loop()
    start = loop.run_in_executor(threads, partial(psycopg2.connect, async_=True, **params))
    try:
        async with asyncio.timeout(connect_timeout):
            raw = await start
            try:
                await wait(raw)
            except BaseException:
                close(raw)
                raise
    except BaseException as failure:
        if not start.done():  # still resolving the host: close what it opens, if anything
            start.add_done_callback(_close_started)
        if isinstance(failure, TimeoutError):
            raise DatabaseUnreachableError(
                f"no connection within the {connect_timeout:g} s connect timeout"
            ) from None
        if isinstance(failure, psycopg2.Error):
            raise DatabaseUnreachableError(first_line(failure)) from failure
        raise
    return raw


def _close_started(start: "asyncio.Future[Any]") -> None:
    if not start.cancelled() and start.exception() is None:
        close(start.result())


async def execute(cursor: Any, sql: str, params: Mapping[str, Any] | None) -> list[Row]:
    """Run `sql` on `cursor` (a new one of its connection's); the rows, and the cursor closed.

    Left open when the statement stops some other way (the deadline, a cancel): closing a
    cursor whose statement still runs raises and would hide why; and `settle` needs it."""
    cursor.execute(sql, params)
    await wait(cursor.connection)
    rows: list[Row] = cursor.fetchall() if cursor.description is not None else []
    cursor.close()
    return rows


async def cancel(raw: Any) -> str | None:
    """Ask the server to cancel the statement `raw` runs: None once it answered, else why not.

    Unbounded by itself (a stalled network never answers): the caller sets the deadline."""
    handle = _libpq.PQcancelCreate(raw.pgconn_ptr)
    if not handle:
        return "no memory for a cancel request"
    try:
        if not _libpq.PQcancelStart(handle):
            return _cancel_error(handle)
        while True:
            state = _libpq.PQcancelPoll(handle)
            if state == _POLLING_OK:
                return None
            if state == _POLLING_FAILED:
                return _cancel_error(handle)
            await _ready(_libpq.PQcancelSocket(handle), writing=state == _POLLING_WRITING)
    finally:
        _libpq.PQcancelFinish(handle)


async def settle(cursor: Any) -> bool:
    """After a cancel the server answered: wait for the end of the statement `cursor` runs
    (psycopg2 reads its result into that very cursor); True if the cancel landed on it, so
    none is left to hit the connection's next statement. Unbounded, like `cancel`."""
    try:
        await wait(cursor.connection)
    except psycopg2.extensions.QueryCanceledError:
        return not cursor.connection.closed
    except psycopg2.Error:
        return False
    return False  # it ended first: the cancel may still be on its way to the next statement


def _cancel_error(handle: int) -> str:
    message: bytes | None = _libpq.PQcancelErrorMessage(handle)
    return (message or b"cancel failed").decode(errors="replace").strip()


def readable(fd: int) -> bool:
    """Anything to read on an idle connection means the server closed it (`poll`: any fd number)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def lost(failure: psycopg2.Error, raw: Any) -> bool:
    """The connection itself failed (no SQLSTATE from the server, or a connection-class one)."""
    code = failure.pgcode or ""
    return (
        bool(raw.closed)
        or isinstance(failure, psycopg2.InterfaceError)
        or not code
        or code.startswith(("08", "57P"))
    )


def is_read(sql: str) -> bool:
    """A plain SELECT: every read of ours is one, without side effects (a write never starts so)."""
    return sql.lstrip()[:6].upper() == "SELECT"


def close(raw: Any) -> None:
    with contextlib.suppress(psycopg2.Error):
        raw.close()


def first_line(failure: BaseException) -> str:
    return (str(failure).strip().splitlines() or [type(failure).__name__])[0]
