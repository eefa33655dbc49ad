"""The database pool: statements without blocking the event loop, admission bounded like the pool,
every statement bounded by the deadline (EC-3, SC-010); Neon's connection strings reach libpq
intact. Each test runs its own event loop against the test database."""

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.db import (
    Database,
    DatabaseUnavailableError,
    DatabaseUnreachableError,
    PoolTimeoutError,
    Row,
    StatementTimeoutError,
)
from backend.db_url import connect_params
from backend.main import database_limits

PID = "SELECT pg_backend_pid()"


@pytest.fixture
def make_database(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Database]]:
    """A `Database` on the test database, built from `Settings` overrides; closed afterwards."""
    made: list[Database] = []

    def make(**overrides: Any) -> Database:
        settings = make_settings(**overrides)
        assert settings.neon_database_url is not None
        url = settings.neon_database_url.get_secret_value()
        made.append(Database(url, database_limits(settings)))
        return made[-1]

    yield make
    for database in made:
        database.close()


async def sleep_in_database(database: Database, seconds: float) -> None:
    await database.fetch("SELECT pg_sleep(%(s)s)", {"s": seconds})


async def backend_pid(database: Database) -> int:
    return int((await database.fetch(PID))[0][0])


def statements_running(engine: Engine, like: str) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE :like"
    with engine.connect() as connection:
        return int(connection.execute(text(query), {"like": like}).scalar_one())


@pytest.mark.spec("EC-3", "SC-001")
def test_a_slow_statement_does_not_block_the_event_loop(
    make_database: Callable[..., Database],
) -> None:
    database = make_database()

    async def scenario() -> int:
        statement = asyncio.create_task(sleep_in_database(database, 0.5))
        ticks = 0
        while not statement.done():
            await asyncio.sleep(0.01)
            ticks += 1
        await statement
        return ticks

    # A loop blocked by the statement would tick once, not ~50 times (a busy machine: fewer).
    assert asyncio.run(scenario()) >= 5


@pytest.mark.spec("EC-3", "SC-010")
def test_admission_waits_no_longer_than_the_pool_timeout(
    make_database: Callable[..., Database],
) -> None:
    database = make_database(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.2)

    async def scenario() -> float:
        busy = asyncio.create_task(sleep_in_database(database, 1))
        await asyncio.sleep(0.1)  # it holds the only connection
        started = time.monotonic()
        try:
            with pytest.raises(PoolTimeoutError):
                await backend_pid(database)
            return time.monotonic() - started
        finally:
            await busy

    waited = asyncio.run(scenario())

    # Refused once the pool timeout has passed: not at once, and not a hang (generous bound).
    assert 0.15 < waited < 2


@pytest.mark.spec("EC-3", "SC-010")
def test_a_waiting_caller_gets_the_connection_returned_next(
    make_database: Callable[..., Database],
) -> None:
    database = make_database(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=2)

    async def scenario() -> tuple[int, int]:
        first = await backend_pid(database)
        busy = asyncio.create_task(sleep_in_database(database, 0.2))
        await asyncio.sleep(0.05)
        waiting = await backend_pid(database)  # waits for the busy one's connection
        await busy
        return first, waiting

    first, waiting = asyncio.run(scenario())
    assert waiting == first
    assert database.idle == 1


@pytest.mark.spec("EC-3", "SC-010")
def test_a_caller_cancelled_while_waiting_for_a_connection_leaves_the_queue(
    make_database: Callable[..., Database],
) -> None:
    """The connection the busy statement returns goes to the pool, not to a caller who left."""
    database = make_database(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=5)

    async def scenario() -> float:
        busy = asyncio.create_task(sleep_in_database(database, 0.3))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(backend_pid(database))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await busy
        started = time.monotonic()
        await backend_pid(database)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1  # served from the pool, not after the 5 s pool timeout
    assert database.idle == 1


@pytest.mark.spec("EC-3")
def test_closing_the_database_closes_a_busy_connection_when_it_comes_back(
    make_database: Callable[..., Database], db_engine: Engine
) -> None:
    database = make_database(db_pool_size=1, db_max_overflow=0)

    async def scenario() -> int:
        pid = await backend_pid(database)
        busy = asyncio.create_task(sleep_in_database(database, 0.2))  # on that same connection
        await asyncio.sleep(0.05)
        database.close()
        await busy
        return pid

    pid = asyncio.run(scenario())
    assert database.idle == 0
    query = "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # the server notices the goodbye within moments
        with db_engine.connect() as connection:
            if not connection.execute(text(query), {"pid": pid}).scalar_one():
                return
        time.sleep(0.02)
    pytest.fail(f"backend {pid} still connected after the database was closed")


@pytest.mark.spec("EC-3")
def test_connections_are_reused_last_in_first_out_and_overflow_is_closed(
    make_database: Callable[..., Database],
) -> None:
    """LIFO keeps the busy connections warm; beyond DB_POOL_SIZE, returned ones are closed."""
    database = make_database(db_pool_size=2, db_max_overflow=2)

    async def scenario() -> tuple[int, list[int]]:
        await asyncio.gather(*(sleep_in_database(database, 0.1) for _ in range(4)))
        opened = database.idle
        return opened, [await backend_pid(database) for _ in range(3)]

    kept, pids = asyncio.run(scenario())
    assert kept == 2  # four opened under load, two kept
    assert len(set(pids)) == 1  # sequential calls: always the connection returned last


@pytest.mark.spec("EC-3", "FR-020")
def test_a_statement_error_is_raised_and_the_connection_kept(
    make_database: Callable[..., Database],
) -> None:
    database = make_database(db_pool_size=1, db_max_overflow=0)

    async def scenario() -> tuple[int, int]:
        before = await backend_pid(database)
        with pytest.raises(psycopg2.errors.DivisionByZero):
            await database.fetch("SELECT 1 / 0")
        return before, await backend_pid(database)

    before, after = asyncio.run(scenario())
    assert after == before


@pytest.mark.spec("SC-010", "SC-001", "EC-3", "SC-011")
def test_a_statement_past_the_deadline_is_cancelled_and_its_connection_kept(
    make_database: Callable[..., Database], db_engine: Engine
) -> None:
    """The cancel is seen to land (the statement ends "canceling statement"), so no cancel is
    left to hit the connection's next statement, and the connection goes back to the pool.
    Before: it was closed, and under a noisy user's stream of such statements everyone else
    waited for fresh connections (a quiet user's 503 in a CPU-starved CI run)."""
    database = make_database(db_pool_size=1, db_max_overflow=0, db_statement_timeout_seconds=0.3)

    async def scenario() -> tuple[int, float, int, list[Row]]:
        before = await backend_pid(database)
        started = time.monotonic()
        with pytest.raises(StatementTimeoutError):
            await sleep_in_database(database, 5)
        waited = time.monotonic() - started
        await asyncio.sleep(0.2)  # the cancel, answered and settled
        after = await backend_pid(database)
        # Longer than any cancel could take to arrive: the next statement is not cancelled.
        return before, waited, after, await database.fetch("SELECT 1 FROM pg_sleep(0.2)")

    before, waited, after, rows = asyncio.run(scenario())

    assert waited < 2  # answered at the deadline (0.3 s), not after the 5 s sleep
    assert statements_running(db_engine, "SELECT pg_sleep%") == 0  # cancelled on the server
    assert after == before  # the same connection, reused
    assert rows == [(1,)]


@pytest.mark.spec("EC-3", "SC-010")
def test_a_caller_that_stops_waiting_cancels_its_statement_on_the_server(
    make_database: Callable[..., Database], db_engine: Engine
) -> None:
    """A request task cancelled mid-statement (shutdown, a client gone) leaves nothing running."""
    database = make_database(db_pool_size=1, db_max_overflow=0)

    async def scenario() -> None:
        statement = asyncio.create_task(sleep_in_database(database, 5))
        await asyncio.sleep(0.2)
        statement.cancel()
        with pytest.raises(asyncio.CancelledError):
            await statement
        await asyncio.sleep(0.2)  # the cancel request, on its own thread

    asyncio.run(scenario())
    assert statements_running(db_engine, "SELECT pg_sleep%") == 0


@pytest.mark.spec("EC-3", "SC-010", "FR-020", "SC-011")
def test_a_host_that_never_answers_is_unreachable_within_the_connect_timeout(
    make_database: Callable[..., Database],
) -> None:
    """The first caller waits out the connect timeout; after that the breaker is open and the
    next callers are answered at once (no second wait of the whole timeout)."""
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        database = make_database(
            neon_database_url=f"postgresql://user@127.0.0.1:{port}/db",
            db_connect_timeout_seconds=1,
            db_pool_size=1,
            db_max_overflow=0,
        )

        async def attempt() -> tuple[type[BaseException], float]:
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError) as failure:
                await backend_pid(database)
            return failure.type, time.monotonic() - started

        async def scenario() -> list[tuple[type[BaseException], float]]:
            return [await attempt(), await attempt()]

        (first, first_took), (second, second_took) = asyncio.run(scenario())
    assert first is DatabaseUnreachableError
    assert 0.9 < first_took < 3
    assert issubclass(second, DatabaseUnavailableError)
    assert second_took < 0.9  # the admission wait for the probe, not the connect timeout


@pytest.mark.spec("A-1")
@pytest.mark.parametrize(
    ("neon_string", "expected"),
    [
        (
            "postgresql://alex:AbC123dEf@ep-cool-darkness-123456.us-east-2.aws.neon.tech/dbname"
            "?sslmode=require&channel_binding=require",
            {"host": "ep-cool-darkness-123456.us-east-2.aws.neon.tech", "dbname": "dbname"},
        ),
        (
            "postgresql://alex:AbC123dEf@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
            "/dbname?sslmode=require&channel_binding=require",
            {"host": "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"},
        ),
        (
            "postgres://alex:AbC123dEf@ep-cool-darkness-123456.us-east-2.aws.neon.tech/dbname"
            "?sslmode=require",
            {"user": "alex", "password": "AbC123dEf", "sslmode": "require"},
        ),
        (
            "postgresql://alex:AbC123dEf@ep-cool-darkness-123456.us-east-2.aws.neon.tech/dbname"
            "?sslmode=require&options=endpoint%3Dep-cool-darkness-123456",
            {"options": "endpoint=ep-cool-darkness-123456", "sslmode": "require"},
        ),
    ],
)
def test_neon_connection_strings_reach_libpq_as_written(
    neon_string: str, expected: dict[str, str]
) -> None:
    """What Neon's console prints is handed to libpq unchanged (TLS, channel binding, endpoint)."""
    params = connect_params(neon_string)
    assert params | expected == params
    assert "channel_binding" not in neon_string or params["channel_binding"] == "require"
