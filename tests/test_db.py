"""The database runner: statements off the event loop, admission bounded like the pool (EC-3)."""

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.config import Settings
from backend.db import Database, create_db_engine


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
