"""The database runner: statements off the event loop, admission bounded like the pool, every
statement bounded by the deadline (EC-3, SC-010); Neon's connection strings reach libpq intact."""

import asyncio
import itertools
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


@pytest.mark.spec("EC-3", "SC-001")
def test_a_slow_statement_does_not_block_the_event_loop(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    database = Database(
        create_db_engine(settings.neon_database_url.get_secret_value(), settings), settings
    )  # type: ignore[union-attr]

    async def scenario() -> list[float]:
        ticks: list[float] = []

        async def ticker() -> None:
            for _ in range(10):
                await asyncio.sleep(0.02)
                ticks.append(time.monotonic())

        await asyncio.gather(database.run(sleep_in_database, 0.3), ticker())
        return ticks

    ticks = asyncio.run(scenario())

    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < 0.1  # the loop kept ticking every ~20 ms while the database slept


@pytest.mark.spec("EC-3", "SC-010")
def test_admission_waits_no_longer_than_the_pool_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.2)
    database = Database(
        create_db_engine(settings.neon_database_url.get_secret_value(), settings), settings
    )  # type: ignore[union-attr]

    async def scenario() -> float:
        busy = asyncio.create_task(database.run(sleep_in_database, 1.0))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(PoolTimeoutError):
            await database.run(sleep_in_database, 0)
        waited = time.monotonic() - started
        await busy
        return waited

    waited = asyncio.run(scenario())

    assert 0.15 < waited < 0.6


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

    assert 0.25 < waited < 0.8
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
