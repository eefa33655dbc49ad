"""Connection-pooler compatibility (A-1): the whole API through PgBouncer in transaction mode.

Neon's pooled endpoint is PgBouncer in transaction mode: a server connection is shared between
clients between transactions, so no session state (prepared statements, `SET`, open
transactions) may be relied on. The backend runs against a real PgBouncer (a small server pool,
so connections really are shared) in front of the test database and performs every endpoint,
serially and from concurrent threads. Skipped only when `pgbouncer` is not installed and CI is
not "true"; in CI a missing PgBouncer fails.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL, Engine

from backend import migrate
from backend.config import Settings
from backend.main import create_app
from devtools.pgbouncer import PgBouncer, pgbouncer, pgbouncer_binary
from tests.support.hardening import HTTPResponse, private_postgres, report
from tests.support.helpers import AUTH_URL, SECRET, Caller, unavailable
from tests.support.neon import DEADLINE, ENDPOINT, run_locked_row_case

USER = Caller("pooled-user-0123456789abcdefghij")


@pytest.fixture(scope="module")
def bouncer(database_url: URL) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    with pgbouncer(binary, database_url, pool_size=3) as running:
        yield running


def pooled_settings(url: str) -> Settings:
    """The app on PgBouncer, with more connections of its own than PgBouncer has to the server."""
    return Settings(
        _env_file=None,
        better_auth_secret=SECRET,
        better_auth_url=AUTH_URL,
        neon_database_url=url,
        migrate_on_startup=False,
        db_pool_size=10,
    )


@pytest.fixture
def pooled_client(bouncer: PgBouncer, clean_db: None) -> Iterator[TestClient]:
    with TestClient(create_app(pooled_settings(bouncer.url))) as client:
        yield client


@pytest.mark.spec("A-1", "FR-013", "SC-005")
def test_every_endpoint_works_through_pgbouncer_in_transaction_mode(
    pooled_client: TestClient, bouncer: PgBouncer
) -> None:
    client, h = pooled_client, USER.headers
    steps: list[tuple[str, int, int]] = []

    def step(name: str, expected: int, response: HTTPResponse) -> HTTPResponse:
        steps.append((name, expected, response.status_code))
        return response

    step("health", 200, client.get("/health"))
    ids = []
    for title in ("Buy milk", "call Mum", "write report"):
        created = step("create", 201, client.post(USER.tasks, json={"title": title}, headers=h))
        ids.append(created.json()["id"])
    listed = step("list", 200, client.get(USER.tasks, headers=h))
    assert [t["id"] for t in listed.json()] == ids[::-1]
    query: dict[str, str | int] = {
        "search": "MILK",
        "sort": "title",
        "order": "asc",
        "limit": 5,
        "offset": 0,
    }
    searched = step("list filtered", 200, client.get(USER.tasks, params=query, headers=h))
    assert [t["title"] for t in searched.json()] == ["Buy milk"]
    step("get", 200, client.get(USER.task(ids[0]), headers=h))
    step("put", 200, client.put(USER.task(ids[0]), json={"title": "Buy oat milk"}, headers=h))
    step("patch alias", 200, client.patch(USER.task(ids[1]), json={"description": "x"}, headers=h))
    toggled = step("toggle", 200, client.patch(USER.task(ids[2]) + "/complete", headers=h))
    assert toggled.json()["completed"] is True
    step(
        "set via body",
        200,
        client.patch(USER.task(ids[2]) + "/complete", json={"completed": False}, headers=h),
    )
    step("pending filter", 200, client.get(USER.tasks, params={"status": "pending"}, headers=h))
    step("delete", 204, client.delete(USER.task(ids[1]), headers=h))
    step("get deleted", 404, client.get(USER.task(ids[1]), headers=h))
    step("delete again", 404, client.delete(USER.task(ids[1]), headers=h))

    # Concurrent traffic: 10 app connections share PgBouncer's 3 server connections.
    def mixed(i: int) -> int:
        created = client.post(USER.tasks, json={"title": f"concurrent {i}"}, headers=h)
        toggled = client.patch(USER.task(created.json()["id"]) + "/complete", headers=h)
        listed = client.get(USER.tasks, headers=h)
        return max(created.status_code - 1, toggled.status_code, listed.status_code)

    with ThreadPoolExecutor(10) as pool:
        concurrent = list(pool.map(mixed, range(30)))
    final = client.get(USER.tasks, params={"limit": 1000}, headers=h).json()

    wrong = [f"{name}: {status} (expected {expected})" for name, expected, status in steps]
    wrong = [line for line, (_, e, s) in zip(wrong, steps, strict=True) if e != s]
    wrong += [f"concurrent flow {i}: {s}" for i, s in enumerate(concurrent) if s != 200]
    report(
        "PgBouncer (transaction mode)",
        len(steps) + len(concurrent) * 3,
        len(wrong),
        "server pool of 3, app pool of 10",
    )
    assert not wrong, "\n".join(wrong)
    assert len(final) == 2 + 30
    assert "login attempt: db=postgres" in bouncer.log.read_text(errors="replace")


@pytest.mark.spec("A-1", "SC-010", "EC-3")
def test_the_statement_deadline_cancels_on_the_server_through_pgbouncer(
    bouncer: PgBouncer, clean_db: None, db_engine: Engine
) -> None:
    """Neon's pooler refuses a `statement_timeout` startup option, so the deadline must not need
    one: a cancel request goes through PgBouncer to the server. The URL is Neon's form for clients
    without SNI (`options=endpoint%3D…`), which the pooler consumes, as PgBouncer does here."""
    settings = Settings(
        _env_file=None,
        better_auth_secret=SECRET,
        better_auth_url=AUTH_URL,
        neon_database_url=f"{bouncer.url}?options=endpoint%3D{ENDPOINT}",
        migrate_on_startup=False,
        db_statement_timeout_seconds=DEADLINE,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        caller = Caller("pooled-deadline-user-0123456789ab")
        run_locked_row_case(client, db_engine, caller, "Locked row through PgBouncer")


@pytest.mark.spec("A-1", "FR-014", "FR-021")
def test_the_key_migration_and_keyed_creates_work_through_pgbouncer() -> None:
    """Migration 0002 applied through the pooler onto a database with tasks, then keyed creates:
    a retry is answered with the first task, and concurrent twins store one, while 10 app
    connections share PgBouncer's 2 server connections."""
    binary = pgbouncer_binary()
    if binary is None:
        unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    caller = Caller("pooled-keys-user-0123456789abcde")
    key = {**caller.headers, "Idempotency-Key": "pooled-key"}
    with private_postgres() as server:
        command.downgrade(migrate.alembic_config(server.url), "0001")
        with pgbouncer(binary, server.url, pool_size=2) as bouncer:
            before = TestClient(create_app(pooled_settings(bouncer.url)))
            with before:  # the API at 0001, as deployed before the migration
                existing = before.post(
                    caller.tasks, json={"title": "before"}, headers=caller.headers
                )
            migrate.upgrade(bouncer.url)
            with TestClient(create_app(pooled_settings(bouncer.url))) as client:
                first = client.post(caller.tasks, json={"title": "keyed"}, headers=key)
                retry = client.post(caller.tasks, json={"title": "keyed"}, headers=key)
                twins_key = {**caller.headers, "Idempotency-Key": "twins"}

                def twin(_: int) -> int:
                    twin_body = {"title": "twin"}
                    return client.post(caller.tasks, json=twin_body, headers=twins_key).status_code

                with ThreadPoolExecutor(10) as pool:
                    twins = list(pool.map(twin, range(10)))
                titles = [
                    t["title"] for t in client.get(caller.tasks, headers=caller.headers).json()
                ]
    report(
        "Key migration and keyed creates through PgBouncer",
        3 + len(twins),
        int(titles != ["twin", "keyed", "before"]) + sum(s not in (201, 409) for s in twins),
        f"twins: {twins.count(201)}x 201, {twins.count(409)}x 409; {len(titles)} stored",
    )
    assert existing.status_code == 201
    assert (first.status_code, retry.status_code, retry.json()) == (201, 201, first.json())
    assert set(twins) <= {201, 409}
    assert titles == ["twin", "keyed", "before"]
