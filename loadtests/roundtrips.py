"""Count the SQL statements (= database round trips) each endpoint costs, with pg_stat_statements.

The backend talks to PostgreSQL with psycopg2's simple query protocol, so one statement is one
round trip; over Neon every round trip is network latency, which is why the targets are 1 per
request (2 for a list paged past its end) with no `BEGIN`/`COMMIT`/`SET` or ping around them.
`pg_stat_statements.track_utility` (on by default) makes those utility statements show up too.

Creates are counted three ways: without a key, with a fresh `Idempotency-Key` each, and as the
retry of one keyed create (the same key and body again): one statement each. Beside the count,
the database's own execution time per request (`total_exec_time`), which is where a keyed
create's second insert shows.

Method: warm the backend up (its pool holds open connections, so no connect-time statements fall
inside the window), then per endpoint snapshot the counters, make `calls` sequential requests
over one keep-alive connection, snapshot again and divide the difference. Counters are diffed
rather than reset, so this works without the privilege to reset them (e.g. on Neon), but other
traffic on the same database during the window would be counted too.
"""

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import jwt
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection

from loadtests.endpoints import (
    CREATE,
    CREATE_KEYED,
    DELETE,
    GET,
    LIST,
    TASKS,
    TOGGLE,
    UPDATE,
    Endpoint,
)

RETRY = Endpoint("retry", "POST", TASKS, 201, keyed=True)
"""A keyed create sent again: the same key every time, answered with the first create."""
# Left out: this module's own snapshots, and the backend's background cleanup of expired
# idempotency keys (no request's statement; it may run during a window).
_SNAPSHOT = text(
    "SELECT queryid, query, calls, total_exec_time FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND query NOT LIKE '%pg_stat_statements%' "
    "AND query NOT LIKE '%DELETE FROM idempotency_key%'"
)
WARM_UP_CALLS = 20


@dataclass(frozen=True)
class RoundTrips:
    endpoint: Endpoint
    calls: int
    statements: Counter[str]
    """Statements seen in the window, by their first keyword (SELECT, INSERT, BEGIN, ...)."""
    exec_ms: float
    """The database's execution time of those statements, in all."""

    @property
    def per_request(self) -> float:
        return sum(self.statements.values()) / self.calls

    @property
    def exec_ms_per_request(self) -> float:
        return self.exec_ms / self.calls

    @property
    def target(self) -> int:
        return 2 if self.endpoint is LIST else 1

    @property
    def on_target(self) -> bool:
        return self.per_request <= self.target


class _Probe:
    """A user of the API with its own tasks, making requests the way the frontend does."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.user_id = f"roundtrips-{int(time.time() * 1000)}"
        now = int(time.time())
        claims = {"sub": self.user_id, "iat": now, "exp": now + 3600}
        token = jwt.encode(claims, secret, algorithm="HS256")
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0
        )
        self.task_ids: list[int] = []

    def call(self, endpoint: Endpoint, task_id: int | None = None) -> None:
        url = endpoint.path.format(user_id=self.user_id, id=task_id)
        body = {"title": "counted", "description": "round trips"}
        sends_body = endpoint.method in ("POST", "PUT")
        headers = {"Idempotency-Key": self._key(endpoint)} if endpoint.keyed else None
        response = self.client.request(
            endpoint.method, url, json=body if sends_body else None, headers=headers
        )
        if response.status_code != endpoint.status:
            raise RuntimeError(f"{endpoint.label}: status {response.status_code} {response.text}")
        if endpoint in (CREATE, CREATE_KEYED):
            self.task_ids.append(int(response.json()["id"]))

    def _key(self, endpoint: Endpoint) -> str:
        """A fresh key for each keyed create; the one same key for every retry."""
        return "roundtrips-retry" if endpoint is RETRY else str(uuid.uuid4())

    def each(self, endpoint: Endpoint, calls: int) -> None:
        """`calls` requests to `endpoint`, on tasks made by earlier creates where one is needed."""
        if endpoint in (CREATE, CREATE_KEYED, RETRY, LIST):
            for _ in range(calls):
                self.call(endpoint)
        elif endpoint is DELETE:
            for _ in range(calls):
                self.call(endpoint, self.task_ids.pop())
        else:
            for index in range(calls):
                self.call(endpoint, self.task_ids[index % len(self.task_ids)])


def measure(base_url: str, secret: str, database_url: URL, calls: int) -> list[RoundTrips]:
    """Statements per request for each task endpoint (`calls` requests each)."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    probe = _Probe(base_url, secret)
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            for endpoint in (CREATE, CREATE_KEYED, RETRY, LIST, GET, UPDATE, TOGGLE, DELETE):
                probe.each(endpoint, WARM_UP_CALLS)
            order = (CREATE, CREATE_KEYED, RETRY, GET, UPDATE, TOGGLE, LIST, DELETE)
            return [_window(connection, endpoint, calls, probe.each) for endpoint in order]
    finally:
        probe.client.close()
        engine.dispose()


def _window(
    connection: Connection,
    endpoint: Endpoint,
    calls: int,
    run: Callable[[Endpoint, int], None],
) -> RoundTrips:
    before = _snapshot(connection)
    run(endpoint, calls)
    after = _snapshot(connection)
    statements: Counter[str] = Counter()
    exec_ms = 0.0
    for queryid, (query, count, total_ms) in after.items():
        _, count_before, total_ms_before = before.get(queryid, ("", 0, 0.0))
        if count > count_before:
            statements[_keyword(query)] += count - count_before
            exec_ms += total_ms - total_ms_before
    return RoundTrips(endpoint, calls, statements, exec_ms)


def _snapshot(connection: Connection) -> dict[int, tuple[str, int, float]]:
    rows = connection.execute(_SNAPSHOT).all()
    return {row.queryid: (row.query, row.calls, row.total_exec_time) for row in rows}


def _keyword(query: str) -> str:
    words = query.split(None, 1)
    return words[0].upper() if words else "?"


def table(results: Sequence[RoundTrips]) -> str:
    header = (
        f"{'endpoint':<10} {'calls':>6} {'stmts/req':>10} {'target':>7} {'db ms/req':>10}"
        "  statements seen"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        seen = ", ".join(
            f"{keyword} {count / result.calls:.2f}"
            for keyword, count in result.statements.most_common()
        )
        mark = "ok" if result.on_target else "OVER"
        lines.append(
            f"{result.endpoint.label:<10} {result.calls:>6} {result.per_request:>10.2f} "
            f"{'<= ' + str(result.target):>7} {result.exec_ms_per_request:>10.3f}"
            f"  {seen or '-'}  {mark}"
        )
    return "\n".join(lines)
