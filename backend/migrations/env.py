"""Alembic environment: online migrations only, under an advisory lock (see backend.migrate)."""

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from backend.migrate import DEFAULT_CONNECT_TIMEOUT, connect

MIGRATION_LOCK_ID = 7_240_113  # arbitrary, constant: "todo-backend migrations"


def database_url() -> str | URL:
    url: str | URL | None = context.config.attributes.get("database_url")
    if url is None:
        from backend.config import get_settings
        from backend.db_url import resolve_database_url

        url = resolve_database_url(get_settings())
    return url


def run_migrations_online() -> None:
    timeout = context.config.attributes.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    with connect(database_url(), timeout) as connection:
        context.configure(connection=connection, target_metadata=SQLModel.metadata)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()


run_migrations_online()
