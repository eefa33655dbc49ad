"""Alembic environment: online migrations only, under an advisory lock (see backend.migrate)."""

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from backend.db import DatabaseUnreachableError, normalize_url
from backend.migrate import DEFAULT_CONNECT_TIMEOUT

MIGRATION_LOCK_ID = 7_240_113  # arbitrary, constant: "todo-backend migrations"


def database_url() -> str:
    url = context.config.attributes.get("database_url")
    if url is None:
        from backend.config import get_settings
        from backend.db import resolve_database_url

        url = resolve_database_url(get_settings())
    return str(normalize_url(url).render_as_string(hide_password=False))


def run_migrations_online() -> None:
    timeout = context.config.attributes.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    engine = create_engine(
        database_url(), poolclass=pool.NullPool, connect_args={"connect_timeout": timeout}
    )
    try:
        connection = engine.connect()
    except OperationalError as failure:
        reason = (str(failure.orig).strip().splitlines() or ["no reason given"])[0]
        raise DatabaseUnreachableError(
            f"cannot reach the database within the {timeout} s connect timeout: {reason}"
        ) from None
    with connection:
        context.configure(connection=connection, target_metadata=SQLModel.metadata)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            context.run_migrations()
    engine.dispose()


run_migrations_online()
