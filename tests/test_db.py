"""The database runner: statements off the event loop, admission bounded like the pool, every
statement bounded by the deadline (EC-3, SC-010); Neon's connection strings reach libpq intact."""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.config import Settings
from backend.db import Database, StatementTimeoutError, create_db_engine


@pytest.fixture
def make_database(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Database]]:
    """A `Database` on the test database, built from `Settings` overrides; closed afterwards."""
    made: list[Database] = []

    def make(**overrides: Any) -> Database:
        settings = make_settings(**overrides)
        assert settings.neon_database_url is not None
        engine = create_db_engine(settings.neon_database_url.get_secret_value(), settings)
        made.append(Database(engine, settings))
        return made[-1]

    yield make
    for database in made:
        database.close()


def sleep_in_database(engine: Engine, seconds: float) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})


def hold_a_connection(engine: Engine, holding: threading.Event, release: threading.Event) -> bool:
    """Stands for a slow statement: keeps a pooled connection until `release` (or 5 s)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        holding.set()
        return release.wait(timeout=5)


@pytest.mark.spec("EC-3", "SC-001")
def test_a_slow_statement_does_not_block_the_event_loop(
    make_database: Callable[..., Database],
) -> None:
    database = make_database()
    holding, release = threading.Event(), threading.Event()

    async def scenario() -> bool:
        statement = asyncio.create_task(database.run(hold_a_connection, holding, release))
        # Only a loop that keeps running while the statement is in flight gets here in time to
        # release it; run on the loop itself, the statement would give up waiting (False).
        await asyncio.to_thread(holding.wait, 5)
        release.set()
        return await statement

    assert asyncio.run(scenario()) is True


@pytest.mark.spec("EC-3", "SC-010")
def test_admission_waits_no_longer_than_the_pool_timeout(
    make_database: Callable[..., Database],
) -> None:
    database = make_database(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.2)
    holding, release = threading.Event(), threading.Event()

    async def scenario() -> float:
        busy = asyncio.create_task(database.run(hold_a_connection, holding, release))
        await asyncio.to_thread(holding.wait, 5)
        started = time.monotonic()
        try:
            with pytest.raises(PoolTimeoutError):
                await database.run(sleep_in_database, 0)
            return time.monotonic() - started
        finally:
            release.set()
            await busy

    waited = asyncio.run(scenario())

    # Refused once the pool timeout has passed: not at once, and not a hang (generous bound).
    assert 0.15 < waited < 2


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.spec("SC-010", "SC-001", "EC-3")
def test_a_statement_past_the_deadline_is_cancelled_and_its_connection_discarded(
    make_database: Callable[..., Database], db_engine: Engine
) -> None:
    database = make_database(db_pool_size=1, db_max_overflow=0, db_statement_timeout_seconds=0.3)

    async def scenario() -> tuple[int, float, int]:
        before = await database.run(backend_pid)
        started = time.monotonic()
        with pytest.raises(StatementTimeoutError):
            await database.run(sleep_in_database, 5)
        waited = time.monotonic() - started
        return before, waited, await database.run(backend_pid)

    before, waited, after = asyncio.run(scenario())

    assert waited < 2  # answered at the deadline (0.3 s), not after the 5 s sleep
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%'"
    )
    with db_engine.connect() as connection:
        sleeping = connection.execute(text(query)).scalar_one()
    assert sleeping == 0  # cancelled on the server, not merely abandoned
    assert after != before  # a cancel may still be on its way to it: never reused


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
    neon_string: str, expected: dict[str, str], settings: Settings
) -> None:
    """What Neon's console prints is handed to libpq unchanged (TLS, channel binding, endpoint)."""
    engine = create_db_engine(neon_string, settings)
    _, params = engine.dialect.create_connect_args(engine.url)
    engine.dispose()
    assert engine.url.drivername == "postgresql+psycopg2"
    assert params | expected == params
    assert "channel_binding" not in neon_string or params["channel_binding"] == "require"
