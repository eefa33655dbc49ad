"""Plain helpers of the hardening suite (fixtures are in this folder's conftest.py)."""

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi.testclient import TestClient
from hypothesis import settings
from sqlalchemy.engine import URL

from backend import embedded_db, migrate
from backend.db import Database, Row
from loadtests.latency_proxy import LatencyProxy
from tests.support.helpers import SECRET

SUMMARY: list[str] = []


def app_database(client: TestClient) -> Database:
    """The started app's `Database` (its pool lives on the TestClient's event loop)."""
    database: Database = client.app.state.database  # type: ignore[attr-defined]
    return database


def fetch_on(client: TestClient, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
    """Run one statement through the app's own pool, on the app's event loop."""
    assert client.portal is not None, "the TestClient must be started"
    return client.portal.call(app_database(client).fetch, sql, params)


def fill_pool(client: TestClient, size: int) -> None:
    """Open `size` connections at once and return them: the app's pool now holds that many."""
    database = app_database(client)

    async def concurrently() -> None:
        await asyncio.gather(*(database.fetch("SELECT pg_sleep(0.05)") for _ in range(size)))

    assert client.portal is not None, "the TestClient must be started"
    client.portal.call(concurrently)
    assert database.idle == size


class HTTPResponse(Protocol):
    """What tests read of a response, from `httpx` (real servers) or the TestClient alike."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def report(group: str, tried: int, failures: int, extra: str = "") -> str:
    """Record (and print) the one summary line of a group of hardening cases."""
    line = f"{group}: {tried} cases tried, {failures} failures" + (f"; {extra}" if extra else "")
    SUMMARY.append(line)
    print(line)
    return line


def hypothesis_settings(**overrides: object) -> settings:
    """The profile named by HYPOTHESIS_PROFILE (`hardening` unless set), with `overrides`."""
    name = os.environ.get("HYPOTHESIS_PROFILE", "hardening")
    try:
        parent = settings.get_profile(name)
    except Exception:
        parent = settings.get_profile("hardening")
    return settings(parent, **overrides)  # type: ignore[arg-type]


def proxy_target(url: URL) -> str:
    """A database as `LatencyProxy` reaches it: its Unix socket, or host:port."""
    host = str(url.query.get("host") or url.host or "127.0.0.1")
    port = str(url.query.get("port") or url.port or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"


def via(proxy: LatencyProxy, database: str = "postgres", user: str = "postgres") -> str:
    """The URL of the database behind `proxy`."""
    return f"postgresql://{user}@127.0.0.1:{proxy.port}/{database}"


def url_string(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def backend_env(database_url: URL, **extra: str) -> dict[str, str]:
    """Environment for a real backend process on `database_url` (already migrated)."""
    return {
        "BETTER_AUTH_SECRET": SECRET,
        "BETTER_AUTH_URL": "http://localhost:3000",
        "NEON_DATABASE_URL": url_string(database_url),
        "MIGRATE_ON_STARTUP": "false",
        "RATE_LIMIT_PER_MINUTE": "0",  # whatever a local .env says
        **extra,
    }


@dataclass
class PrivatePostgres:
    """A PostgreSQL of one test's own, which the test may crash and restart."""

    data_dir: Path
    url: URL = field(init=False)

    def start(self) -> URL:
        self.url = embedded_db.start(self.data_dir)
        return self.url

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: every backend killed, recovery on the next start."""
        embedded_db.stop(self.data_dir, "immediate")

    def stop(self) -> None:
        embedded_db.stop(self.data_dir, "fast")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh, migrated PostgreSQL, stopped and deleted however the block ends.

    Its directory is not under pytest's basetemp, which a concurrent pytest run may prune.
    """
    parent = Path(tempfile.mkdtemp(prefix="hardening-pg-"))
    server = PrivatePostgres(parent / "pgdata")
    try:
        server.start()
        migrate.upgrade(server.url)
        yield server
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


# --- raw HTTP -----------------------------------------------------------------------------------


def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send `request` bytes to 127.0.0.1:`port` and read until the server closes or times out."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may refuse mid-send; what it answered (if anything) still counts.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except OSError:
            pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_of(response: bytes) -> int | None:
    """The status code of a raw HTTP/1.1 response, or None when the server sent nothing."""
    if not response.startswith(b"HTTP/"):
        return None
    return int(response.split(b" ", 2)[1])
