"""Bring a database schema to the newest Alembic revision, or check that it is there.

Several processes may start at once: the upgrade runs under a transaction-scoped advisory lock, so
one migrates and the others then find the schema current. (Transaction-scoped, not session-scoped,
so it also holds through PgBouncer in transaction mode.)

Connecting is bounded by the connect timeout: a host that accepts and never answers ends with
`DatabaseUnreachableError` and one clear line, instead of hanging.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError

from backend.config import Settings
from backend.db_errors import DatabaseUnreachableError
from backend.db_url import normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_CONNECT_TIMEOUT: int = Settings.model_fields["db_connect_timeout_seconds"].default


class SchemaBehindError(Exception):
    """The database lacks revisions this build needs (and was not to be migrated here)."""


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


def connect(url: str | URL, connect_timeout: int) -> Connection:
    """A connection for migrating, within the connect timeout, or `DatabaseUnreachableError`."""
    engine = create_engine(
        normalize_url(url),
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": connect_timeout},
    )
    try:
        return engine.connect()
    except OperationalError as failure:
        reason = (str(failure.orig).strip().splitlines() or ["no reason given"])[0]
        raise DatabaseUnreachableError(
            f"cannot reach the database within the {connect_timeout} s connect timeout: {reason}"
        ) from None


def check(url: str | URL, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT) -> None:
    """Raise `SchemaBehindError` unless the schema has every revision this build knows.

    A revision this build does not know is taken as newer (a later build migrated first, as in
    a rolling deploy), not as an error."""
    script = ScriptDirectory.from_config(alembic_config(url, connect_timeout))
    with connect(url, connect_timeout) as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    known = {revision.revision for revision in script.walk_revisions()}
    if any(revision not in known for revision in current):
        return
    needed = set(script.get_heads())
    reached = {ancestor for head in current for ancestor in _ancestors(script, head)}
    if not needed <= reached:
        at = ", ".join(current) or "none"
        raise SchemaBehindError(
            f"the database schema is at revision {at}, this build needs {', '.join(needed)}: "
            "run `python -m backend.migrate` or set MIGRATE_ON_STARTUP=true"
        )


def _ancestors(script: ScriptDirectory, head: str) -> set[str]:
    return {revision.revision for revision in script.iterate_revisions(head, "base")}


def main() -> None:
    """`python -m backend.migrate`: migrate the configured database (what `nox -s migrate` runs)."""
    from backend.config import get_settings
    from backend.db_url import resolve_database_url

    settings = get_settings()
    try:
        upgrade(resolve_database_url(settings), connect_timeout=settings.db_connect_timeout_seconds)
    except DatabaseUnreachableError as failure:
        raise SystemExit(f"Migration failed: {failure}") from None
    print("database schema is at the newest revision")


if __name__ == "__main__":
    main()
