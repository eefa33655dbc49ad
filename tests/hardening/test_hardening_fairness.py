"""Fairness under overload (SC-011, A-7, SC-010): no tenant, burst or sick database takes the
service from everyone else.

- A noisy tenant (12 000 tasks of 1 000 characters that defeat the search index, 60 expensive
  searches kept in flight): that user gets 429s; another user's list keeps its latency and never
  gets a 503.
- A stall in the middle of traffic (the Neon-like proxy stops answering): every answer within
  2 s, connection attempts into the stall bounded, and service back within a second or so of the
  database answering again.
- 300 concurrent `/health` calls share one probe: one connection, not a pool's worth.
- A read whose client went away is cancelled on the server; a write runs to its end.
"""

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from backend.breaker import MAX_PROBES
from backend.config import Settings
from backend.pool import CANCELLING, OPENING
from devtools.servers import Server, backend_server, running
from loadtests.latency_proxy import LatencyProxy
from tests.support.hardening import backend_env, fill_pool, proxy_target, report, via
from tests.support.helpers import Caller

SC_001 = 2.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- 1. a noisy tenant -----------------------------------------------------------------------

NOISY = Caller("noisy-tenant-0123456789abcdefghi")
# Every description holds the pattern's trigrams, so the index cannot rule a row out and each
# search compares 12 MB of text: a statement that runs into the deadline.
SEARCH = {"search": "a" * 199 + "b"}


@pytest.fixture
def noisy_tenant(db_engine: Engine) -> Iterator[None]:
    with db_engine.connect() as connection:
        connection.execute(
            text(
                "INSERT INTO task (user_id, title, description) SELECT :user, 'task ' || g,"
                " repeat('a', 998) || 'ba' FROM generate_series(1, 12000) g"
            ),
            {"user": NOISY.id},
        )
        connection.execute(text("ANALYZE task"))
    yield
    with db_engine.connect() as connection:
        connection.execute(text("DELETE FROM task WHERE user_id = :user"), {"user": NOISY.id})


@pytest.mark.spec("SC-011", "A-7", "SC-001", "SC-002")
def test_a_noisy_tenant_gets_429s_and_the_others_keep_their_latency(
    database_url: URL, noisy_tenant: None
) -> None:
    """Before: the other user's list (normally 7-13 ms) answered 4 times in 8 s, p50 3.5 s."""
    victim = Caller("quiet-tenant-0123456789abcdefghi")
    stop = threading.Event()
    noisy: Counter[int] = Counter()

    def flood() -> None:
        with httpx.Client(headers=NOISY.headers, timeout=10) as http:
            while not stop.is_set():
                noisy[http.get(server.url + NOISY.tasks, params=SEARCH).status_code] += 1

    with (
        running(backend_server(backend_env(database_url), workers=2)) as (server,),
        httpx.Client(base_url=server.url, headers=victim.headers, timeout=10) as http,
    ):
        assert http.post(victim.tasks, json={"title": "mine"}).status_code == 201
        quiet = [timed(http, victim.tasks) for _ in range(20)]
        with ThreadPoolExecutor(60) as threads:
            floods = [threads.submit(flood) for _ in range(60)]
            time.sleep(1)  # every noisy search in flight
            during = [timed(http, victim.tasks) for _ in range(80)]
            stop.set()
            wait(floods)
    latencies = [seconds for seconds, _ in during]
    statuses = Counter(status for _, status in during)
    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    quiet_p95 = percentile([seconds for seconds, _ in quiet], 0.95)
    report(
        "Noisy tenant",
        sum(noisy.values()) + len(during),
        sum(statuses.values()) - statuses[200],
        f"60 searches in flight by one user: theirs {dict(noisy)}; another user's list "
        f"p50/p95 {p50 * 1000:.0f}/{p95 * 1000:.0f} ms during (p95 {quiet_p95 * 1000:.0f} ms "
        f"before), {dict(statuses)}",
    )
    assert statuses == {200: len(during)}  # nobody else gets a 503 (or a 429)
    # The target is 100 ms: 46-58 ms here, printed above. Under the suite's coverage
    # tracer (in the server too) the same run gives 176-389 ms: the bound is for that, and still
    # half of SC-001's 2 s (the old code's p50 was 3.5 s).
    assert p95 < 1.0
    assert noisy[429] > noisy[503]  # the flooding user is told to slow down


def timed(http: httpx.Client, path: str) -> tuple[float, int]:
    started = time.monotonic()
    status = http.get(path).status_code
    return time.monotonic() - started, status


# --- 2. a stall mid-traffic ------------------------------------------------------------------


@pytest.fixture
def stalling_proxy(database_url: URL) -> Iterator[LatencyProxy]:
    with LatencyProxy(proxy_target(database_url), 2) as proxy:
        yield proxy


@pytest.mark.spec("SC-011", "SC-010", "EC-3", "SC-001")
def test_a_stall_mid_traffic_is_answered_within_2_s_then_service_resumes(
    stalling_proxy: LatencyProxy, app_on: Callable[..., TestClient]
) -> None:
    """44 users list in a loop on the default pool; the database stalls for 3 s, then answers
    again. Before: the 503s took 2 to 6.5 s, 38 callers opening fresh connections into the
    stall, each waiting out the connect timeout."""
    proxy = stalling_proxy
    defaults = {"db_statement_timeout_seconds": 1.5, "db_connect_timeout_seconds": 5}
    client = app_on(via(proxy), **defaults)
    warm = Settings.model_fields["db_pool_size"].default
    fill_pool(client, warm)
    users = [Caller(f"stall-traffic-{n}-0123456789abcdef") for n in range(44)]
    answers: list[tuple[float, float, int]] = []  # (sent at, seconds, status)
    stop = threading.Event()

    def loop(user: Caller) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            status = client.get(user.tasks, headers=user.headers).status_code
            answers.append((sent, time.monotonic() - sent, status))

    with ThreadPoolExecutor(len(users)) as threads:
        for user in users:
            threads.submit(loop, user)
        time.sleep(1)
        before_stall = proxy.accepted
        proxy.stall()
        stalled_at = time.monotonic()
        time.sleep(3)
        attempts = proxy.accepted - before_stall
        proxy.resume()
        resumed_at = time.monotonic()
        time.sleep(2)
        stop.set()
    worst = max(seconds for _, seconds, _ in answers)
    during = Counter(s for sent, _, s in answers if stalled_at + 0.1 < sent < resumed_at - 2)
    recovered = min(sent + t for sent, t, s in answers if s == 200 and sent > resumed_at)
    after = Counter(s for sent, _, s in answers if sent > resumed_at + 1.5)
    # A few cancels and opens at once, then probes while the breaker is open.
    bound = CANCELLING + OPENING + 4 * MAX_PROBES
    report(
        "Stall mid-traffic",
        len(answers),
        sum(seconds > SC_001 + 0.5 for _, seconds, _ in answers) + (attempts > bound),
        f"44 users in a loop, 3 s stall: worst answer {worst:.2f} s, during the stall "
        f"{dict(during)}, {attempts} connection attempts into it (bound {bound}); first 200 "
        f"{recovered - resumed_at:.2f} s after the database answered again; after: {dict(after)}",
    )
    assert worst < SC_001 + 0.5  # 1.5-1.7 s measured; room for a loaded machine (old: 3.2 s)
    assert set(during) <= {503}
    assert attempts <= bound
    assert recovered - resumed_at < 1.5
    assert set(after) == {200}


# --- 3. health checks ------------------------------------------------------------------------


async def all_at_once(port: int, path: str, count: int) -> list[tuple[float, int]]:
    """`count` GETs of `path` sent at the same moment, each on a connection of its own."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[float, int]:
        started = time.monotonic()
        writer.write(request)
        answer = await reader.read()
        writer.close()
        return time.monotonic() - started, int(answer.split(b" ", 2)[1])

    return await asyncio.gather(*(one(*connection) for connection in connections))


def backend_connections(engine: Engine) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'todo-backend'"
    with engine.connect() as connection:
        return int(connection.execute(text(query)).scalar_one())


@pytest.mark.spec("FR-020", "SC-011")
def test_300_concurrent_health_checks_share_one_probe(database_url: URL, db_engine: Engine) -> None:
    """Before: each `/health` took a pool connection: 300 at once, p50 293 ms."""
    with running(backend_server(backend_env(database_url))) as (server,):
        httpx.get(server.url + "/health")
        opened_before = backend_connections(db_engine)
        port = int(server.url.rsplit(":", 1)[1])
        results = asyncio.run(all_at_once(port, "/health", 300))
        opened_after = backend_connections(db_engine)
    latencies = [seconds for seconds, _ in results]
    report(
        "300 concurrent /health",
        300,
        sum(status != 200 for _, status in results),
        f"p50 {statistics.median(latencies) * 1000:.0f} ms; backend connections "
        f"{opened_before} -> {opened_after}",
    )
    assert {status for _, status in results} == {200}
    assert opened_after <= opened_before + 1


# --- 4. clients that went away ---------------------------------------------------------------


def running_statements(engine: Engine, like: str) -> int:
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
        " AND application_name = 'todo-backend' AND query LIKE :like"
    )
    with engine.connect() as connection:
        return int(connection.execute(text(query), {"like": like}).scalar_one())


@pytest.fixture
def patient_backend(database_url: URL) -> Iterator[Server]:
    """A backend whose statements may run 6 s: long enough to tell a cancel from the deadline."""
    env = backend_env(database_url, DB_STATEMENT_TIMEOUT_SECONDS="6")
    with running(backend_server(env)) as (server,):
        yield server


@pytest.mark.spec("SC-011", "EC-3")
def test_a_read_whose_client_went_away_is_cancelled_on_the_server(
    patient_backend: Server, db_engine: Engine, noisy_tenant: None
) -> None:
    with (
        httpx.Client(base_url=patient_backend.url, headers=NOISY.headers) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.get(NOISY.tasks, params=SEARCH, timeout=0.5)  # then the client hangs up
    gone = time.monotonic()
    while running_statements(db_engine, "%ILIKE%") and time.monotonic() - gone < 5:
        time.sleep(0.05)
    assert running_statements(db_engine, "%ILIKE%") == 0
    assert time.monotonic() - gone < 2  # well before the statement's own 6 s deadline


@pytest.mark.spec("SC-011", "EC-4", "FR-010")
def test_a_write_whose_client_went_away_runs_to_its_end(
    patient_backend: Server, db_engine: Engine
) -> None:
    writer = Caller("gone-writer-0123456789abcdefghij")
    with httpx.Client(base_url=patient_backend.url, headers=writer.headers) as http:
        task = http.post(writer.tasks, json={"title": "before"}).json()
        transactional = db_engine.execution_options(isolation_level="READ COMMITTED")
        with transactional.connect() as locker, locker.begin():
            locker.execute(text("SELECT 1 FROM task WHERE id = :id FOR UPDATE"), {"id": task["id"]})
            with pytest.raises(httpx.ReadTimeout):  # the PUT waits for the lock; the client leaves
                http.put(writer.task(task["id"]), json={"title": "after"}, timeout=0.5)
            time.sleep(0.5)
        time.sleep(0.5)  # the lock is gone: the update goes through
        stored = http.get(writer.task(task["id"])).json()
    assert stored["title"] == "after"
