"""What a real Neon does to a backend's connections (SC-010, EC-3, A-1), reproduced on loopback.

Each failure mode runs the real app against real PostgreSQL, through `LatencyProxy` where the
network has to misbehave: a locked row (a statement that would run forever), a compute or network
that stalls mid-request, a server closing idle connections while a request is on its way, more than
1024 open files, a server closing every connection at once, a migration against a host that
never answers, and a suspended compute waking up. Then the connection itself: TLS 1.3,
SCRAM-SHA-256 with channel binding, and Neon's console connection strings, end to end.

Every group prints one summary line (statuses, worst latency) for the hardening summary.
"""

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from backend import migrate
from loadtests.latency_proxy import LatencyProxy
from tests.support.hardening import (
    app_database,
    fetch_on,
    fill_pool,
    proxy_target,
    report,
    url_string,
    via,
)
from tests.support.helpers import SECRET, Caller, count_tasks, unavailable
from tests.support.neon import (
    CONNECT_TIMEOUT,
    DEADLINE,
    NEON_HOST,
    NEON_POOLER_HOST,
    TlsPostgres,
    require_postgres_bin_dir,
    run_locked_row_case,
    summary,
    timed,
)
from tests.support.neon import tls_postgres as start_tls_postgres

ROOT = Path(__file__).parent.parent.parent


# --- 1. a statement that never ends ----------------------------------------------------------


@pytest.mark.spec("SC-010", "SC-001", "EC-3")
def test_a_statement_on_a_locked_row_is_cancelled_at_the_deadline(
    make_client: Callable[..., TestClient], db_engine: Engine
) -> None:
    client = make_client(db_statement_timeout_seconds=DEADLINE)
    run_locked_row_case(client, db_engine, Caller("locked-row-user-0123456789abcdef"), "Locked row")


@pytest.mark.spec("SC-010", "EC-3", "SC-001")
def test_a_stalled_database_answers_503_at_the_deadline_and_admission_stays_bounded(
    proxy: LatencyProxy, app_on: Callable[..., TestClient]
) -> None:
    """The network stops answering mid-request: no cancel can arrive, the answer still comes."""
    pool = 4
    client = app_on(via(proxy), db_pool_size=pool, db_max_overflow=0, db_pool_timeout_seconds=1.0)
    callers = [Caller(f"stall-user-{n}-0123456789abcdefghij") for n in range(3 * pool)]
    fill_pool(client, pool)  # a warm pool: the stall hits statements

    proxy.stall()
    requests = len(callers)
    with ThreadPoolExecutor(requests) as threads:
        futures = [
            threads.submit(timed, client, "GET", caller.tasks, headers=caller.headers)
            for caller in callers
        ]
        done, _ = wait(futures, timeout=5)
        answered = [f.result() for f in futures if f in done]
        statuses: list[int | None] = [s for s, _ in answered] + [None] * (requests - len(answered))
        worst = max((t for _, t in answered), default=5.0) if len(answered) == requests else 5.0
        proxy.stop()  # the network comes back (as closed sockets): the cancels return
    report(
        "Stalled database",
        requests,
        sum(s != 503 for s in statuses),
        f"{requests} concurrent reads, pool {pool}: {summary(statuses, worst)} "
        f"(deadline {DEADLINE} s, pool timeout 1 s)",
    )
    assert statuses == [503] * requests
    assert worst < 1.0 + DEADLINE + 0.5  # the deadline, or admission's pool timeout


# --- 2. a close still travelling when the statement is sent --------------------------------

ROUND_TRIP_MS = 20
IDLE_CLOSE = 0.1


def in_flight_close_case(
    client: TestClient, proxy: LatencyProxy, request: Callable[[int], tuple[int, float]], n: int
) -> tuple[list[int | None], float]:
    """Each request leaves just as the server's close of its idle connection is on its way."""
    assert request(-1)[0] < 300  # warm: one pooled connection
    proxy.idle_close = IDLE_CLOSE
    statuses: list[int | None] = []
    worst = 0.0
    for i in range(n):
        # The proxy hangs up IDLE_CLOSE after the last byte passed it, which reaches the client
        # half a round trip later: sent now, the request crosses the close on the wire.
        time.sleep(IDLE_CLOSE - ROUND_TRIP_MS / 1000 / 2 + 0.004)
        status, elapsed = request(i)
        statuses.append(status)
        worst = max(worst, elapsed)
    proxy.idle_close = None
    return statuses, worst


@pytest.mark.spec("EC-3", "SC-010", "SC-003")
def test_reads_on_connections_closed_in_flight_never_fail(
    database_url: URL, app_on: Callable[..., TestClient]
) -> None:
    caller = Caller("inflight-read-user-0123456789abc")
    with LatencyProxy(proxy_target(database_url), ROUND_TRIP_MS) as proxy:
        client = app_on(via(proxy))
        task = client.post(caller.tasks, json={"title": "read me"}, headers=caller.headers)
        url = caller.task(task.json()["id"])
        statuses, worst = in_flight_close_case(
            client, proxy, lambda _: timed(client, "GET", url, headers=caller.headers), 24
        )
    report(
        "Idle connection closed in flight (reads)",
        len(statuses),
        sum(s != 200 for s in statuses),
        f"{ROUND_TRIP_MS} ms round trip, server idle close {IDLE_CLOSE} s: "
        f"{summary(statuses, worst)}",
    )
    assert statuses == [200] * len(statuses)


@pytest.mark.spec("EC-3", "SC-010", "US-1.1")
def test_writes_after_a_lull_are_sent_on_a_checked_connection_exactly_once(
    database_url: URL, app_on: Callable[..., TestClient], db_engine: Engine
) -> None:
    """A write is never rerun blindly; after a lull longer than DB_PING_IDLE_SECONDS the
    connection is pinged first, so a close on its way is seen before the INSERT is sent."""
    caller = Caller("inflight-write-user-0123456789ab")
    with LatencyProxy(proxy_target(database_url), ROUND_TRIP_MS) as proxy:
        client = app_on(via(proxy), db_ping_idle_seconds=IDLE_CLOSE / 2)

        def create(i: int) -> tuple[int, float]:
            body = {"title": f"write {i}"}
            return timed(client, "POST", caller.tasks, json=body, headers=caller.headers)

        statuses, worst = in_flight_close_case(client, proxy, create, 12)
    stored = count_tasks(db_engine, caller.id)
    report(
        "Idle connection closed in flight (writes)",
        len(statuses),
        sum(s != 201 for s in statuses) + abs(stored - len(statuses) - 1),
        f"{summary(statuses, worst)}; {stored - 1} of {len(statuses)} stored",
    )
    assert statuses == [201] * len(statuses)
    assert stored == len(statuses) + 1  # each exactly once (and the warm-up)


@pytest.mark.spec("EC-3", "SC-010", "US-1.1")
def test_a_write_that_meets_a_closed_connection_is_never_sent_twice(
    database_url: URL, app_on: Callable[..., TestClient], db_engine: Engine
) -> None:
    """Without the ping (a lull shorter than DB_PING_IDLE_SECONDS), a write that meets a close on
    its way may fail, but is not rerun blindly: what was acknowledged is stored, exactly once."""
    caller = Caller("inflight-honest-user-0123456789a")
    with LatencyProxy(proxy_target(database_url), ROUND_TRIP_MS) as proxy:
        client = app_on(via(proxy))

        def create(i: int) -> tuple[int, float]:
            body = {"title": f"write {i}"}
            return timed(client, "POST", caller.tasks, json=body, headers=caller.headers)

        statuses, worst = in_flight_close_case(client, proxy, create, 6)
    stored = count_tasks(db_engine, caller.id) - 1  # less the warm-up
    report(
        "Idle connection closed in flight (writes, no ping)",
        len(statuses),
        int(stored != statuses.count(201)) + sum(s not in (201, 503) for s in statuses),
        f"{summary(statuses, worst)}; {stored} stored",
    )
    assert set(statuses) <= {201, 503}
    assert stored == statuses.count(201)


def titles_of(db_engine: Engine, user_id: str) -> list[str]:
    with db_engine.connect() as connection:
        query = text("SELECT title FROM task WHERE user_id = :u ORDER BY title")
        return list(connection.execute(query, {"u": user_id}).scalars())


@pytest.mark.spec("FR-021", "EC-3", "SC-010")
def test_a_create_whose_fate_is_unknown_is_stored_exactly_once_when_retried_with_its_key(
    database_url: URL, app_on: Callable[..., TestClient], db_engine: Engine
) -> None:
    """What the key is for. The INSERT commits and the connection breaks before its answer is
    back: the backend cannot know, so it answers 503 and reruns nothing; the client's retry with
    the same key gets the task that was stored. And when the close reaches the statement first
    (nothing stored), the same retry creates it: either way, exactly once."""
    caller = Caller("unknown-fate-user-0123456789abcd")

    def create(client: TestClient, i: int) -> tuple[int, float]:
        headers = {**caller.headers, "Idempotency-Key": f'"create-{i}"'}
        return timed(client, "POST", caller.tasks, json={"title": f"write {i}"}, headers=headers)

    with LatencyProxy(proxy_target(database_url), ROUND_TRIP_MS) as proxy:
        client = app_on(via(proxy))
        assert create(client, 0)[0] == 201  # a warm pool: the loss hits the INSERT
        proxy.lose_answer_to(b"write 1")
        lost = create(client, 1)[0]
        retried = create(client, 1)[0]
        statuses, worst = in_flight_close_case(client, proxy, lambda i: create(client, 10 + i), 6)
        retries = [create(client, 10 + i)[0] for i, status in enumerate(statuses) if status != 201]
    titles = titles_of(db_engine, caller.id)
    expected = sorted(["write 0", "write 1", *(f"write {10 + i}" for i in range(-1, 6))])
    report(
        "Create of unknown fate, retried with its key",
        2 + len(statuses) + len(retries),
        int(titles != expected) + int((lost, retried) != (503, 201)) + len(set(retries) - {201}),
        f"answer lost: {lost} then {retried}; idle close in flight: {summary(statuses, worst)}, "
        f"{len(retries)} retried; {len(titles)} stored for {len(expected)} creates",
    )
    assert (lost, retried) == (503, 201)
    assert set(statuses) <= {201, 503}
    assert retries == [201] * len(retries)
    assert titles == expected


# --- 3. more than 1024 open files -------------------------------------------------------------


@pytest.fixture
def many_open_files() -> Iterator[int]:
    """Hold open files until new sockets get numbers above 1024 (what select() cannot watch)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096
    if hard != resource.RLIM_INFINITY and hard < wanted:
        unavailable(f"the hard open-files limit ({hard}) leaves no room above 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    held: list[int] = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield held[-1]
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.spec("EC-3", "SC-009", "US-1.1")
def test_connections_with_file_numbers_above_1024_work(
    many_open_files: int, database_url: URL, app_on: Callable[..., TestClient]
) -> None:
    client = app_on(url_string(database_url), db_pool_size=8, db_max_overflow=0)
    caller = Caller("many-files-user-0123456789abcdef")

    def create(i: int) -> tuple[int, float]:
        return timed(
            client, "POST", caller.tasks, json={"title": f"fd {i}"}, headers=caller.headers
        )

    with ThreadPoolExecutor(8) as threads:
        results = list(threads.map(create, range(16)))
    pooled = app_database(client)._pool._idle  # the pool's own sockets, as it holds them
    sockets = [connection.raw.fileno() for connection in pooled] or [0]
    statuses: list[int | None] = [s for s, _ in results]
    report(
        "Open files above 1024",
        len(results),
        sum(s != 201 for s in statuses),
        f"8 concurrent creates x2, socket numbers {min(sockets)}-{max(sockets)}: "
        f"{summary(statuses, max(t for _, t in results))}",
    )
    assert statuses == [201] * len(results)
    assert min(sockets) > 1024


# --- 4. smaller holes -------------------------------------------------------------------------


@pytest.mark.spec("EC-3", "SC-010", "FR-020")
def test_a_server_that_closes_every_connection_is_a_503_not_a_500(
    proxy: LatencyProxy, app_on: Callable[..., TestClient]
) -> None:
    """Every pooled connection is closed, and so is each new one right after its handshake: the
    read is rerun once, then answered 503 (SQLAlchemy's pool used to raise a 500 here)."""
    client = app_on(via(proxy))
    caller = Caller("closed-twice-user-0123456789abcd")
    assert client.get(caller.tasks, headers=caller.headers).status_code == 200
    proxy.idle_close = 0  # the server hangs up at once, even right after a new handshake
    time.sleep(0.15)  # ... and already has on the pooled connection
    status, elapsed = timed(client, "GET", caller.tasks, headers=caller.headers)
    health = client.get("/health").status_code
    proxy.idle_close = None
    after = client.get(caller.tasks, headers=caller.headers).status_code
    report(
        "Every checkout finds a closed connection",
        3,
        int(status != 503) + int(health != 503) + int(after != 200),
        f"{summary([status], elapsed)}, /health {health}, then {after} once the server behaves",
    )
    assert status == 503
    assert health == 503
    assert after == 200


@pytest.mark.spec("EC-3", "SC-010", "FR-015")
def test_migration_against_a_host_that_never_answers_fails_within_the_connect_timeout() -> None:
    import socket

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        env = {
            **os.environ,
            "BETTER_AUTH_SECRET": SECRET,
            "NEON_DATABASE_URL": f"postgresql://u:hunter2@127.0.0.1:{hole.getsockname()[1]}/db",
            "DB_CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
            "PYTHONPATH": str(ROOT),
        }
        started = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "backend.migrate"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=15,
            )
            returncode, stderr = done.returncode, done.stderr
        except subprocess.TimeoutExpired:
            returncode, stderr = None, "(still waiting after 15 s)"
        elapsed = time.monotonic() - started
    lines = stderr.strip().splitlines()
    report(
        "Migration against a silent host",
        1,
        int(returncode != 1 or len(lines) != 1),
        f"exit {returncode} after {elapsed:.1f} s (connect timeout {CONNECT_TIMEOUT} s): "
        f"{lines[-1] if lines else ''}",
    )
    assert returncode == 1, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Migration failed:")
    assert "timeout" in lines[0]
    assert "hunter2" not in lines[0]
    assert elapsed < CONNECT_TIMEOUT + 6  # interpreter start-up included


# --- Neon's connection: TLS, SCRAM with channel binding, console strings, cold starts --------


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[TlsPostgres]:
    with start_tls_postgres(require_postgres_bin_dir()) as server:
        migrate.upgrade(server.url())
        yield server


@pytest.mark.spec("A-1", "FR-013", "SC-005")
@pytest.mark.parametrize(
    ("form", "url_of"),
    [
        ("direct", lambda pg: pg.url()),
        ("postgres://", lambda pg: pg.url(scheme="postgres")),
        ("Neon host name", lambda pg: pg.url(host=NEON_HOST)),
        ("-pooler host name", lambda pg: pg.url(host=NEON_POOLER_HOST)),
    ],
)
def test_every_endpoint_over_tls_with_scram_channel_binding(
    form: str,
    url_of: Callable[[TlsPostgres], str],
    tls_postgres: TlsPostgres,
    app_on: Callable[..., TestClient],
) -> None:
    # The default deadline: this test is about the connection, not about timeouts, and a loaded
    # CI machine may take longer than the failure tests' short one.
    client = app_on(url_of(tls_postgres), db_statement_timeout_seconds=1.5)
    caller = Caller(f"tls-user-{''.join(c for c in form if c.isalnum())}-0123456789")
    h = caller.headers
    created = client.post(caller.tasks, json={"title": "over TLS"}, headers=h)
    assert created.status_code == 201, created.text
    task_url = caller.task(created.json()["id"])
    statuses = [
        created.status_code,
        client.get(caller.tasks, headers=h).status_code,
        client.get(task_url, headers=h).status_code,
        client.put(task_url, json={"title": "changed"}, headers=h).status_code,
        client.patch(task_url + "/complete", headers=h).status_code,
        client.delete(task_url, headers=h).status_code,
        client.get("/health").status_code,
    ]
    [(ssl, version)] = fetch_on(
        client, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    )
    assert statuses == [201, 200, 200, 200, 200, 204, 200]
    assert ssl is True
    assert version.startswith("TLSv1.")


@pytest.mark.spec("A-1", "EC-3")
def test_the_neon_like_server_refuses_what_neon_refuses(tls_postgres: TlsPostgres) -> None:
    """The fixture is as strict as Neon: no plain connection, no wrong password."""
    import psycopg2

    plain = tls_postgres.url().replace("sslmode=require&channel_binding=require", "sslmode=disable")
    wrong = tls_postgres.url().replace(tls_postgres.password, "wrong-password")
    for url in (plain, wrong):
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(url).close()


@pytest.mark.spec("SC-010", "EC-3", "A-1")
def test_a_cold_start_is_a_slow_success_not_a_503(
    tls_postgres: TlsPostgres, app_on: Callable[..., TestClient]
) -> None:
    """Neon suspends the compute (closing every connection) and wakes it on the next connect."""
    wake = 1.5
    with LatencyProxy(f"127.0.0.1:{tls_postgres.port}", 10, wake_ms=wake * 1000) as proxy:
        url = tls_postgres.url(host=NEON_HOST).replace(f":{tls_postgres.port}/", f":{proxy.port}/")
        client = app_on(url, db_connect_timeout_seconds=3)
        caller = Caller("cold-start-user-0123456789abcdef")
        assert client.get(caller.tasks, headers=caller.headers).status_code == 200
        proxy.suspend()
        time.sleep(0.05)  # the closes arrive: the pooled connections are readable now
        with ThreadPoolExecutor(4) as threads:
            results = list(
                threads.map(
                    lambda _: timed(client, "GET", caller.tasks, headers=caller.headers), range(4)
                )
            )
    statuses: list[int | None] = [s for s, _ in results]
    worst = max(t for _, t in results)
    report(
        "Cold start (suspend, wake)",
        len(results),
        sum(s != 200 for s in statuses),
        f"wake {wake} s, connect timeout 3 s, deadline {DEADLINE} s: {summary(statuses, worst)}",
    )
    assert statuses == [200] * len(results)
    assert wake - 0.1 < worst < 3
