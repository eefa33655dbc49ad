"""Bring up what a load run targets: database, optional latency proxy, mock_auth and backend.

Everything started here is stopped when the `started()` block ends, however it ends (failure,
Ctrl-C, SIGTERM turned into SystemExit by the runner). With `target` set nothing is started: the
run hits that backend, minting tokens with `BETTER_AUTH_SECRET` from the environment.
"""

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from backend import embedded_db
from backend.db import normalize_url
from devtools.servers import (
    Server,
    backend_server,
    free_port,
    mock_auth_server,
    redis_server,
    running,
)
from loadtests.latency_proxy import LatencyProxy

# Room for every pool of every worker (20 + 20 overflow each) and the round-trip probe.
MAX_CONNECTIONS = 400


@dataclass(frozen=True)
class Stack:
    """Where the load goes, and how its users get tokens."""

    target: str
    secret: str | None
    auth_url: str | None
    database_url: URL | None
    """The database as the backend would reach it without the proxy (for round-trip counts)."""
    servers: tuple[Server, ...] = field(default=())

    @property
    def backend_pid(self) -> int | None:
        """The uvicorn master started for this run (its workers are its children), if any."""
        backends = [s.process for s in self.servers if s.name == "backend"]
        return backends[0].pid if backends and backends[0] is not None else None

    def exited(self) -> list[str]:
        """Servers that are no longer running: their numbers would be meaningless."""
        return [s.name for s in self.servers if s.process is None or s.process.poll() is not None]


@contextmanager
def started(
    *,
    target: str | None,
    database_url: str | None,
    latency_ms: float,
    workers: int,
    sign_in: bool,
    app_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """The stack for one run; `sign_in` also starts mock_auth for users to sign up at.

    `app_dir` serves the backend of another checkout (say a `git worktree` of an older commit), so
    that two versions can be measured on one machine back to back; the database, the load
    generator and everything else stay this checkout's. `env` is added to the backend's
    environment (`RATE_LIMIT_STORAGE_URL=redis` starts a throw-away Redis for it).
    """
    if target:
        url = normalize_url(database_url) if database_url else None
        yield Stack(target.rstrip("/"), os.environ.get("BETTER_AUTH_SECRET"), None, url)
        return
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="loadtests-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        if database_url:
            url = normalize_url(database_url)
        else:
            url = _embedded_postgres(workdir / "postgres")
            cleanup.callback(embedded_db.stop, workdir / "postgres")
        backend_url = url
        if latency_ms > 0:
            proxy = cleanup.enter_context(LatencyProxy(_socket_address(url), latency_ms))
            backend_url = _via(url, proxy.port)
        secret = secrets.token_urlsafe(32)
        env = {
            "BETTER_AUTH_SECRET": secret,
            "NEON_DATABASE_URL": backend_url.render_as_string(hide_password=False),
            "MIGRATE_ON_STARTUP": "true",
            # Each simulated user sends requests in a closed loop, far above the per-user limit
            # a real frontend never meets: off, unless a variant measures it.
            "RATE_LIMIT_PER_MINUTE": "0",
            **(env or {}),
        }
        if env.get("RATE_LIMIT_STORAGE_URL") == "redis":
            redis = cleanup.enter_context(redis_server())
            if redis is None:
                raise RuntimeError("RATE_LIMIT_STORAGE_URL=redis needs redis-server")
            env["RATE_LIMIT_STORAGE_URL"] = redis.url
        servers: list[Server] = []
        auth_url = None
        if sign_in:
            auth = mock_auth_server(env)
            auth.env |= {"BETTER_AUTH_URL": auth.url, "MOCK_AUTH_MODE": "eddsa"}
            env["BETTER_AUTH_URL"] = auth_url = auth.url
            servers.append(auth)
        if app_dir is None:
            # Its request log goes to a file, as production's stdout would.
            servers.append(backend_server(env, workers=workers, log_path=workdir / "backend.log"))
        else:
            servers.append(backend_of(app_dir.resolve(), env, workers, workdir / "backend.log"))
        cleanup.enter_context(running(*servers))
        yield Stack(servers[-1].url, secret, auth_url, url, tuple(servers))


def backend_of(
    root: Path, env: dict[str, str], workers: int, log_path: Path, port: int | None = None
) -> Server:
    """The backend of the checkout at `root`, started as that checkout runs it in production.

    `python -m backend` when the checkout has that entry point, else the uvicorn command line it
    was deployed with; either way from `root` (`env -C`), so its `backend` package is imported.
    """
    port = port or free_port()
    address = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if (root / "backend" / "__main__.py").exists():
        command = [sys.executable, "-m", "backend", *address]
    else:
        command = [sys.executable, "-m", "uvicorn", "backend.main:app", *address]
        command += ["--no-access-log", "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    return Server(
        "backend",
        ["env", "-C", str(root), *command],
        {**os.environ, **env},
        url,
        "/health",
        log_path=log_path,
    )


def _embedded_postgres(data_dir: Path) -> URL:
    """A fresh embedded PostgreSQL with `pg_stat_statements` loaded (a restart applies it)."""
    url = embedded_db.start(data_dir)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(
            "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
        )
        connection.exec_driver_sql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
    engine.dispose()
    embedded_db.stop(data_dir)
    return embedded_db.start(data_dir)


def _socket_address(url: URL) -> str:
    """The proxy's target: the Unix socket file of a `?host=/dir` URL, else `host:port`."""
    host = str(url.query.get("host") or url.host or "localhost")
    port = str(url.query.get("port") or url.port or 5432)
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    return f"{host}:{port}"


def _via(url: URL, port: int) -> URL:
    """`url` rerouted through the proxy on 127.0.0.1:`port`."""
    query = {key: value for key, value in url.query.items() if key not in ("host", "port")}
    return url.set(host="127.0.0.1", port=port, query=query)
