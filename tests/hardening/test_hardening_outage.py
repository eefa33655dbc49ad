"""Database outage (SC-010, EC-3, FR-020): 503 fast while PostgreSQL is down, then recovery.

The test owns a PostgreSQL of its own and runs the app (in process) against it, with a pool of
several connections already open. It crashes PostgreSQL (`pg_ctl stop -m immediate`): every API
call must answer 503 with `Retry-After` and a string `detail` within the connect timeout, and
`/health` 503. Then it starts PostgreSQL again: with no restart of the app, the very first
request and every one after must succeed — each pooled connection the crash killed is dropped at
checkout, without a ping.
"""

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.db import Row
from backend.main import create_app
from tests.support.hardening import (
    PrivatePostgres,
    app_database,
    fill_pool,
    private_postgres,
    report,
    url_string,
)
from tests.support.helpers import AUTH_URL, SECRET, Caller

POOL_SIZE = 5
CONNECT_TIMEOUT = 2
POOL_TIMEOUT = 1.0
USER = Caller("outage-user-0123456789abcdefghij")


@pytest.fixture(scope="module")
def outage_db() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture
def outage_client(outage_db: PrivatePostgres) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,
        better_auth_secret=SECRET,
        better_auth_url=AUTH_URL,
        neon_database_url=url_string(outage_db.url),
        migrate_on_startup=False,
        db_pool_size=POOL_SIZE,
        db_max_overflow=0,
        db_pool_timeout_seconds=POOL_TIMEOUT,
        db_connect_timeout_seconds=CONNECT_TIMEOUT,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def api_calls(task_id: int) -> list[tuple[str, str, dict[str, object] | None]]:
    return [
        ("GET", USER.tasks, None),
        ("POST", USER.tasks, {"title": "during the outage"}),
        ("GET", USER.task(task_id), None),
        ("PUT", USER.task(task_id), {"title": "changed during the outage"}),
        ("PATCH", USER.task(task_id), {"completed": True}),
        ("PATCH", USER.task(task_id) + "/complete", None),
        ("DELETE", USER.task(task_id), None),
    ]


@pytest.mark.spec("SC-010", "EC-3", "FR-020", "FR-013")
def test_outage_is_a_quick_503_and_the_service_recovers_by_itself(
    outage_db: PrivatePostgres, outage_client: TestClient
) -> None:
    client = outage_client
    created = client.post(USER.tasks, json={"title": "before"}, headers=USER.headers)
    assert created.status_code == 201
    task_id = created.json()["id"]
    fill_pool(client, POOL_SIZE)

    outage_db.crash()
    failures: list[str] = []
    slowest = 0.0
    calls = api_calls(task_id) * 2
    for method, url, body in calls:
        started = time.monotonic()
        response = client.request(method, url, json=body, headers=USER.headers)
        elapsed = time.monotonic() - started
        slowest = max(slowest, elapsed)
        if (
            response.status_code != 503
            or not response.headers.get("retry-after", "").isdigit()
            or not isinstance(response.json().get("detail"), str)
            or elapsed > CONNECT_TIMEOUT + 1
        ):
            failures.append(f"{method} {url}: {response.status_code} in {elapsed:.2f}s")
    health = client.get("/health")
    if health.status_code != 503 or "retry-after" not in health.headers:
        failures.append(f"/health during the outage: {health.status_code}")

    restarted = time.monotonic()
    outage_db.start()
    restart_seconds = time.monotonic() - restarted
    first = client.get(USER.task(task_id), headers=USER.headers)
    recovered_after = time.monotonic() - restarted
    if first.status_code != 200 or first.json()["title"] != "before":
        failures.append(f"first request after the restart: {first.status_code} {first.text}")
    after = [client.request(m, u, json=b, headers=USER.headers) for m, u, b in api_calls(task_id)]
    bad_after = [f"{r.request.method} {r.url.path}: {r.status_code}" for r in after if r.is_error]
    failures += [f"after recovery: {line}" for line in bad_after]
    if client.get("/health").status_code != 200:
        failures.append("/health after recovery is not 200")

    report(
        "Database outage",
        len(calls) + 1 + 1 + len(after) + 1,
        len(failures),
        f"outage-to-503 slowest {slowest * 1000:.0f} ms (connect timeout {CONNECT_TIMEOUT} s), "
        f"PostgreSQL restart {restart_seconds:.2f} s, first success "
        f"{(recovered_after - restart_seconds) * 1000:.0f} ms after it, "
        f"{len(bad_after) + (first.status_code != 200)} failed requests after recovery",
    )
    assert not failures, "\n".join(failures)


@pytest.mark.spec("SC-010", "EC-3")
def test_every_pooled_connection_killed_by_a_restart_is_replaced_silently(
    outage_db: PrivatePostgres, outage_client: TestClient
) -> None:
    """No request in between: the pool holds only dead connections when traffic resumes."""
    client = outage_client
    assert client.get(USER.tasks, headers=USER.headers).status_code == 200
    fill_pool(client, POOL_SIZE)

    outage_db.crash()
    outage_db.start()

    statuses = [client.get(USER.tasks, headers=USER.headers).status_code for _ in range(10)]
    statuses.append(client.get("/health").status_code)
    # And at the pool's level, as many statements at once as it has connections (the ones the
    # requests above did not reach lie below in the LIFO pool, dead since the restart).
    database = app_database(client)

    async def all_at_once() -> list[list[Row]]:
        return await asyncio.gather(*(database.fetch("SELECT 1") for _ in range(POOL_SIZE)))

    assert client.portal is not None
    values = [rows[0][0] for rows in client.portal.call(all_at_once)]
    report(
        "Restart with a full pool of dead connections",
        len(statuses) + POOL_SIZE,
        sum(s != 200 for s in statuses) + values.count(0),
    )
    assert statuses == [200] * len(statuses)
    assert values == [1] * POOL_SIZE


@pytest.mark.spec("EC-3", "SC-010")
def test_an_exhausted_pool_is_a_503_within_the_pool_timeout(outage_client: TestClient) -> None:
    """A database too slow to hand back connections: 503 after the pool timeout, not a hang."""
    client = outage_client
    assert client.portal is not None
    fill_pool(client, POOL_SIZE)  # open already: the statements below take them at once
    # Statements that hold every connection past the pool timeout (within the 1.5 s deadline).
    database = app_database(client)
    held = [
        client.portal.start_task_soon(database.fetch, "SELECT pg_sleep(1.3)", None)
        for _ in range(POOL_SIZE)
    ]
    waited = time.monotonic()
    while database.idle and time.monotonic() - waited < 1:
        time.sleep(0.01)
    assert database.idle == 0
    started = time.monotonic()
    response = client.get(USER.tasks, headers=USER.headers)
    elapsed = time.monotonic() - started
    for statement in held:
        statement.exception(timeout=5)  # finished (or past its deadline: either way, returned)
    report(
        "Exhausted pool",
        1,
        int(response.status_code != 503),
        f"503 after {elapsed * 1000:.0f} ms (pool timeout {POOL_TIMEOUT} s)",
    )
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert isinstance(response.json()["detail"], str)
    assert elapsed < POOL_TIMEOUT + 2
    assert client.get(USER.tasks, headers=USER.headers).status_code == 200


@pytest.mark.spec("EC-3", "SC-010", "FR-020")
def test_a_database_that_never_answers_is_a_503_within_the_connect_timeout() -> None:
    """A black hole (TCP accepted, not a byte back): the connect timeout bounds the wait."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        port = hole.getsockname()[1]
        settings = Settings(
            _env_file=None,
            better_auth_secret=SECRET,
            neon_database_url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            migrate_on_startup=False,
            db_connect_timeout_seconds=1,
        )
        with TestClient(create_app(settings)) as client:
            started = time.monotonic()
            response = client.get(USER.tasks, headers=USER.headers)
            elapsed = time.monotonic() - started
            health = client.get("/health")
    report(
        "Unresponsive database",
        2,
        int(response.status_code != 503) + int(health.status_code != 503),
        f"503 after {elapsed * 1000:.0f} ms (connect timeout 1 s)",
    )
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert health.status_code == 503
    assert elapsed < 4
