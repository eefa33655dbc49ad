"""What `python -m backend` checks once, before any worker starts: the database is reachable and
its schema current (migrated here when `MIGRATE_ON_STARTUP` is on).

A failure is one `StartupError` line: the server exits non-zero with it (never 0, which process
managers read as a clean stop, and never a traceback per worker).
"""

import time

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from backend import migrate
from backend.config import Settings
from backend.db_errors import DatabaseUnreachableError
from backend.db_url import resolve_database_url

# Attempts to reach the database, each bounded by the connect timeout, a second apart: a Neon
# compute that is waking, or a database that starts beside the server, is waited for.
ATTEMPTS = 3


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line the operator reads."""


def prepare(settings: Settings) -> URL:
    """The database URL the workers use, once the schema there is at this build's revision."""
    try:
        url = resolve_database_url(settings)
    except Exception as failure:  # e.g. an unparsable URL, the embedded server not starting
        raise StartupError(f"cannot resolve the database: {_line(failure)}") from None
    attempt = 1
    while True:
        try:
            if settings.migrate_on_startup:
                migrate.upgrade(url, connect_timeout=settings.db_connect_timeout_seconds)
            else:
                migrate.check(url, connect_timeout=settings.db_connect_timeout_seconds)
        except DatabaseUnreachableError as failure:
            if attempt == ATTEMPTS:
                raise StartupError(f"{failure} ({ATTEMPTS} attempts)") from None
            attempt += 1
            time.sleep(1)
        except migrate.SchemaBehindError as failure:
            raise StartupError(str(failure)) from None
        except SQLAlchemyError as failure:
            raise StartupError(f"migration failed: {_line(failure)}") from None
        else:
            return url


def _line(failure: BaseException) -> str:
    return (str(failure).strip().splitlines() or [type(failure).__name__])[0]
