"""What a started backend holds besides CPU: its processes' memory and its database connections
(for sizing workers: each worker is a whole interpreter with a pool of its own)."""

import contextlib

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL


def memory_mib(pid: int) -> tuple[int, float, float]:
    """(processes, RSS summed, PSS summed) of process `pid` and everything below it, in MiB.

    RSS counts the pages processes share (libraries) once per process; PSS splits them, so its
    sum is what the tree costs the machine.
    """
    root = psutil.Process(pid)
    count, rss, pss = 0, 0, 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            memory = process.memory_full_info()
            count, rss, pss = count + 1, rss + memory.rss, pss + memory.pss
    return count, rss / 2**20, pss / 2**20


def client_connections(url: URL) -> int:
    """Client connections the database holds now, this query's own left out."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            query = (
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            return int(connection.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


def line(pid: int, url: URL | None) -> str:
    processes, rss, pss = memory_mib(pid)
    described = (
        f"backend after the load: {processes} processes, RSS {rss:.0f} MiB, PSS {pss:.0f} MiB"
    )
    if url is not None:
        described += f"; PostgreSQL client connections: {client_connections(url)}"
    return described
