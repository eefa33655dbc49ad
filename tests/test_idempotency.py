"""backend/idempotency.py: the header's value (RFC 8941 string, or bare), forgetting old keys, and
the two moments a keyed create meets another statement on its key.

The cleanup runs against the real database, through a proxy the tests switch off and on again
for the outage; old keys are made by moving a stored key's `created_at` back. The meetings are
staged with a transaction of another session held open until the create waits for it.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from backend import crud
from backend.config import Settings
from backend.db import Database
from backend.idempotency import ExpiredKeyCleanup, InvalidKeyError, parse_key
from backend.main import database_limits
from loadtests.latency_proxy import LatencyProxy
from tests.support.hardening import app_database, proxy_target
from tests.support.helpers import Caller

KEY = "Idempotency-Key"


@pytest.mark.spec("FR-021")
@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('  "padded"  ', "padded"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"with space"', "with space"),
        ("bare with space", "bare with space"),
        ('ends with "', 'ends with "'),
        ("k" * 255, "k" * 255),
        ('"' + "k" * 255 + '"', "k" * 255),
        ('"' + "\\\\" * 255 + '"', "\\" * 255),
    ],
)
def test_a_key_is_read_quoted_or_bare(value: str, key: str) -> None:
    assert parse_key(value) == key


@pytest.mark.spec("FR-021", "EC-2")
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ('""', "must not be empty"),
        ("k" * 256, "must be at most 255 characters"),
        ('"' + "k" * 256 + '"', "must be at most 255 characters"),
        ("caf\u00e9", "must be printable ASCII characters"),
        ("nul\x00", "must be printable ASCII characters"),
        ('"del\x7f"', "must be printable ASCII characters"),
        ('"unterminated', "a quoted key needs its closing quote"),
        ('"', "a quoted key needs its closing quote"),
        ('"escaped quote at the end\\"', "a quoted key needs its closing quote"),
        ('"bad \\escape"', 'in a quoted key a backslash escapes only \\" and \\\\'),
        ('"trailing backslash\\', 'in a quoted key a backslash escapes only \\" and \\\\'),
        ('"key" more', "nothing may come after a quoted key's closing quote"),
        ('"key";param=1', "nothing may come after a quoted key's closing quote"),
    ],
)
def test_anything_else_is_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidKeyError) as refused:
        parse_key(value)
    assert str(refused.value) == reason


# --- forgetting old keys ------------------------------------------------------------------


def age_key(engine: Engine, caller: Caller, key: str, age: timedelta) -> None:
    with engine.connect() as connection:
        connection.execute(
            text(
                "UPDATE idempotency_key SET created_at = now() - :age "
                "WHERE user_id = :user AND key = :key"
            ),
            {"age": age, "user": caller.id, "key": key},
        )


def stored_keys(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT key FROM idempotency_key")).scalars())


@pytest.mark.spec("FR-021")
def test_keys_are_kept_24_hours_then_forgotten_in_batches_and_the_key_creates_anew(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    created = {}
    for key in ("old-1", "old-2", "old-3", "almost-24h", "new"):
        response = client.post(
            alice.tasks, json={"title": key}, headers={**alice.headers, KEY: key}
        )
        created[key] = response.json()
    for key in ("old-1", "old-2", "old-3"):
        age_key(db_engine, alice, key, timedelta(hours=24, seconds=1))
    age_key(db_engine, alice, "almost-24h", timedelta(hours=23, minutes=59))
    cleanup = ExpiredKeyCleanup(app_database(client), batch=2)

    assert client.portal is not None
    deleted = client.portal.call(cleanup.sweep)
    assert deleted == 3
    assert stored_keys(db_engine) == {"almost-24h", "new"}

    forgotten = client.post(
        alice.tasks, json={"title": "old-1"}, headers={**alice.headers, KEY: "old-1"}
    )
    kept = client.post(
        alice.tasks, json={"title": "almost-24h"}, headers={**alice.headers, KEY: "almost-24h"}
    )
    assert forgotten.status_code == 201
    assert forgotten.json()["id"] != created["old-1"]["id"]  # a new task: the key was forgotten
    assert (kept.status_code, kept.json()["id"]) == (201, created["almost-24h"]["id"])
    assert len(client.get(alice.tasks, headers=alice.headers).json()) == len(created) + 1


@pytest.mark.spec("FR-021", "SC-010")
def test_the_app_runs_the_cleanup_in_the_background_and_cancels_it_at_shutdown(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    assert client.portal is not None

    async def cleanup_task() -> "asyncio.Task[object]":
        return next(t for t in asyncio.all_tasks() if t.get_name() == "idempotency-key-cleanup")

    running = client.portal.call(cleanup_task)
    assert not running.done()
    client.__exit__(None, None, None)
    assert running.cancelled()


@pytest.mark.spec("FR-021", "SC-010", "EC-3")
def test_a_cleanup_that_fails_is_logged_once_and_works_again_once_the_database_is_back(
    database_url: URL,
    make_settings: Callable[..., Settings],
    db_engine: Engine,
    client: TestClient,
    alice: Caller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.post(alice.tasks, json={"title": "t"}, headers={**alice.headers, KEY: "expired"})
    age_key(db_engine, alice, "expired", timedelta(days=2))
    proxy = LatencyProxy(proxy_target(database_url), 0)
    proxy.start()
    port = proxy.port
    proxy.stop()  # the database is unreachable from the start
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    database = Database(url, database_limits(make_settings(db_connect_timeout_seconds=2)))

    async def outage_then_recovery() -> None:
        cleanup = ExpiredKeyCleanup(database, interval=0.05)
        cleanup.start()
        await asyncio.sleep(0.5)  # about ten sweeps, each failing
        assert stored_keys(db_engine) == {"expired"}
        with LatencyProxy(proxy_target(database_url), 0, port=port):
            for _ in range(100):
                if not stored_keys(db_engine):
                    break
                await asyncio.sleep(0.05)
        await cleanup.stop()

    with caplog.at_level(logging.INFO, logger="backend"):
        try:
            asyncio.run(outage_then_recovery())
        finally:
            database.close()

    messages = [r.getMessage() for r in caplog.records if "idempotency keys" in r.getMessage()]
    assert stored_keys(db_engine) == set()
    assert len(messages) == 2, messages
    assert messages[0].startswith("expired idempotency keys not deleted (tried again every 0.05 s)")
    assert "DatabaseUnreachableError" in messages[0]
    assert messages[1] == "expired idempotency keys are deleted again"


# --- the moments two statements on one key meet -------------------------------------------


@contextmanager
def held(
    db_engine: Engine, *statements: tuple[str, dict[str, Any]]
) -> Iterator[Callable[[], None]]:
    """Run `statements` in a transaction of another session, left open; the block commits it."""
    connection = db_engine.connect().execution_options(isolation_level="READ COMMITTED")
    transaction = connection.begin()  # the engine is in autocommit: a real transaction here
    try:
        for sql, params in statements:
            connection.execute(text(sql), params)
        yield transaction.commit
    finally:
        if transaction.is_active:
            transaction.rollback()
        connection.close()


def wait_until_blocked(db_engine: Engine, like: str) -> None:
    """Until a statement matching `like` waits for a lock (the held transaction's)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q"
    )
    for _ in range(200):
        with db_engine.connect() as connection:
            if connection.execute(query, {"q": like}).scalar_one():
                return
        time.sleep(0.01)
    raise AssertionError(f"no statement like {like!r} waited for the lock")


@pytest.mark.spec("FR-021", "FR-018", "EC-4")
def test_a_twin_that_commits_while_the_create_waits_is_a_409_and_the_retry_gets_its_task(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    """The twin's key row is inserted, not yet committed, when the create arrives: the create
    waits for it, then sees the conflict but (its snapshot is older) not the row."""
    with ThreadPoolExecutor(1) as pool:
        with held(
            db_engine,
            ("INSERT INTO task (id, user_id, title) VALUES (4242, :u, 'twin')", {"u": alice.id}),
            (
                "INSERT INTO idempotency_key (user_id, key, fingerprint, task_id) "
                "VALUES (:u, 'twin-key', :f, 4242)",
                {"u": alice.id, "f": crud._fingerprint("twin", None, False)},
            ),
        ) as commit:
            waiting = pool.submit(
                client.post,
                alice.tasks,
                json={"title": "twin"},
                headers={**alice.headers, KEY: "twin-key"},
            )
            wait_until_blocked(db_engine, "%INSERT INTO idempotency_key%")
            commit()
        in_flight = waiting.result(timeout=10)
    retry = client.post(
        alice.tasks, json={"title": "twin"}, headers={**alice.headers, KEY: "twin-key"}
    )

    assert in_flight.status_code == 409, in_flight.text
    assert in_flight.headers["retry-after"] == "1"
    assert in_flight.json()["detail"].startswith("Another create with this Idempotency-Key")
    assert (retry.status_code, retry.json()["id"]) == (201, 4242)
    assert [t["id"] for t in client.get(alice.tasks, headers=alice.headers).json()] == [4242]


@pytest.mark.spec("FR-021")
def test_a_retry_that_meets_the_cleanup_of_its_expired_key_creates_anew_and_says_so(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    """The key is being deleted (past its 24 h) as the retry comes: the retry waits, creates a
    new task and answers with it; its older snapshot still shows the old key's row, which must
    not be the answer (the new task would be stored unacknowledged)."""
    first = client.post(
        alice.tasks, json={"title": "t"}, headers={**alice.headers, KEY: "k"}
    ).json()
    with ThreadPoolExecutor(1) as pool:
        with held(
            db_engine, ("DELETE FROM idempotency_key WHERE user_id = :u", {"u": alice.id})
        ) as commit:
            waiting = pool.submit(
                client.post, alice.tasks, json={"title": "t"}, headers={**alice.headers, KEY: "k"}
            )
            wait_until_blocked(db_engine, "%INSERT INTO idempotency_key%")
            commit()
        retry = waiting.result(timeout=10)

    listed = [t["id"] for t in client.get(alice.tasks, headers=alice.headers).json()]
    assert retry.status_code == 201
    assert retry.json()["id"] != first["id"]
    assert listed == [retry.json()["id"], first["id"]]
