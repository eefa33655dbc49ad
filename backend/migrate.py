"""Bring a database schema to the newest Alembic revision.

Several workers may start at once: the upgrade runs under a transaction-scoped advisory lock, so
one migrates and the others then find the schema current. (Transaction-scoped, not session-scoped,
so it also holds through PgBouncer in transaction mode.)
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | URL) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def main() -> None:
    """`python -m backend.migrate`: migrate the configured database (what `nox -s migrate` runs)."""
    from backend.config import get_settings
    from backend.db import resolve_database_url

    settings = get_settings()
    upgrade(resolve_database_url(settings))
    print("database schema is at the newest revision")


if __name__ == "__main__":
    main()
