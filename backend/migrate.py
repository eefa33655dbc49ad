"""Bring a database schema to the newest Alembic revision.

Several workers may start at once: the upgrade runs under a transaction-scoped advisory lock, so
one migrates and the others then find the schema current. (Transaction-scoped, not session-scoped,
so it also holds through PgBouncer in transaction mode.)

Connecting is bounded by the connect timeout: a host that accepts and never answers ends start-up
with `DatabaseUnreachableError` and one clear line, instead of hanging.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

from backend.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_CONNECT_TIMEOUT: int = Settings.model_fields["db_connect_timeout_seconds"].default


def alembic_config(url: str | URL, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    config.attributes["connect_timeout"] = connect_timeout
    return config


def upgrade(
    url: str | URL, revision: str = "head", connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
) -> None:
    command.upgrade(alembic_config(url, connect_timeout), revision)


def main() -> None:
    """`python -m backend.migrate`: migrate the configured database (what `nox -s migrate` runs)."""
    from backend.config import get_settings
    from backend.db import DatabaseUnreachableError, resolve_database_url

    settings = get_settings()
    try:
        upgrade(resolve_database_url(settings), connect_timeout=settings.db_connect_timeout_seconds)
    except DatabaseUnreachableError as failure:
        raise SystemExit(f"Migration failed: {failure}") from None
    print("database schema is at the newest revision")


if __name__ == "__main__":
    main()
