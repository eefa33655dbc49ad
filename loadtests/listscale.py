"""List latency against the number of tasks a user has: it must stay flat from 10 to 1 000.

The list is one statement that also carries the user's total, served by the
`(user_id, created_at, id)` index; what could grow with the task count is the count and the
sort. Method: one fresh user per size, its tasks inserted directly in one statement (seeding is
not what is measured) and the table analysed; then `calls` sequential list requests over one
keep-alive connection, for a fixed page of 10 (the cost of the user's size alone) and for the
default page (up to 100 rows, what a frontend asks for), all interleaved so that drift in machine
speed hits every size alike. Flat means that the page-of-10 median at the largest size is within
`FLAT_TOLERANCE` of the smallest size's (the default page is reported too).
"""

import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import jwt
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from loadtests.endpoints import TASKS

FLAT_TOLERANCE = 0.20
WARM_UP_CALLS = 20
PAGES = (10, None)
_SEED = text(
    "INSERT INTO task (user_id, title, description, completed) "
    "SELECT :owner, 'task ' || n, 'seeded for the list-scaling run', n % 3 = 0 "
    "FROM generate_series(1, :count) AS n"
)


@dataclass(frozen=True)
class Latency:
    tasks: int
    page: int | None
    """`limit` sent, or None for the default page."""
    p50: float
    p95: float


def measure(
    base_url: str, secret: str, database_url: URL, sizes: Sequence[int], calls: int
) -> list[Latency]:
    """p50/p95 per (size, page), the requests interleaved so drift hits every size alike."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    urls: dict[int, tuple[str, dict[str, str]]] = {}
    try:
        with engine.connect() as connection:
            for size in sizes:
                owner = f"listscale-{uuid.uuid4().hex}"
                connection.execute(_SEED, {"owner": owner, "count": size})
                now = int(time.time())
                token = jwt.encode({"sub": owner, "iat": now, "exp": now + 3600}, secret, "HS256")
                urls[size] = (TASKS.format(user_id=owner), {"Authorization": f"Bearer {token}"})
            # Fresh statistics, as autovacuum would have them a minute later: the plans measured
            # are the ones production settles on, not those of a table that just grew 10x.
            connection.execute(text("ANALYZE task"))
    finally:
        engine.dispose()
    cases = [(size, page) for size in sizes for page in PAGES]
    times: dict[tuple[int, int | None], list[float]] = {case: [] for case in cases}
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        for index in range(WARM_UP_CALLS + calls):
            for size, page in cases:
                url, headers = urls[size]
                params = {} if page is None else {"limit": page}
                started = time.perf_counter()
                response = client.get(url, headers=headers, params=params)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200 or len(response.json()) != min(size, page or 100):
                    raise RuntimeError(f"list: status {response.status_code} {response.text}")
                if index >= WARM_UP_CALLS:
                    times[size, page].append(elapsed)
    return [
        Latency(size, page, statistics.median(samples), statistics.quantiles(samples, n=20)[-1])
        for (size, page), samples in times.items()
    ]


def flat(results: Sequence[Latency]) -> tuple[bool, str]:
    """Judged on the page of 10: whether its median at the largest size is within tolerance of
    the smallest size's. The default page is reported beside it, not judged: it returns up to
    100 rows against 10, so it grows with the rows sent, not with the rows the user owns."""
    ratios = []
    for page in PAGES:
        by_size = sorted((r for r in results if r.page == page), key=lambda r: r.tasks)
        ratios.append((page, by_size[-1].p50 / by_size[0].p50, by_size[0], by_size[-1]))
    details = [
        f"{'default page' if page is None else f'page of {page}'} p50 x{ratio:.2f}"
        f" ({low.p50:.2f} -> {high.p50:.2f} ms)"
        for page, ratio, low, high in ratios
    ]
    sizes = f"{ratios[0][2].tasks} -> {ratios[0][3].tasks} tasks"
    passed = abs(ratios[0][1] - 1) <= FLAT_TOLERANCE
    return passed, f"{sizes}: {', '.join(details)}; limit x{1 + FLAT_TOLERANCE:.2f} (page of 10)"


def table(results: Sequence[Latency]) -> str:
    header = f"{'tasks/user':>10} {'page':>8} {'p50 ms':>8} {'p95 ms':>8}"
    lines = [header, "-" * len(header)]
    for result in results:
        page = "default" if result.page is None else str(result.page)
        lines.append(f"{result.tasks:>10} {page:>8} {result.p50:>8.2f} {result.p95:>8.2f}")
    return "\n".join(lines)
