"""Everything the database layer raises for an outage or an overload, in one place.

`DatabaseUnavailableError` and its kinds are answered 503 + `Retry-After` (the database cannot
answer now); `TenantBusyError` is answered 429 + `Retry-After` (this user has enough in flight).
Any other `psycopg2.Error` is the statement's own: a bug, or what the caller asked for.
"""


class DatabaseUnavailableError(Exception):
    """The database cannot answer now (an outage, not a bug): the API answers 503."""


class StatementTimeoutError(DatabaseUnavailableError):
    """A statement outlived `DB_STATEMENT_TIMEOUT_SECONDS` and was cancelled."""


class PoolTimeoutError(DatabaseUnavailableError):
    """No connection came free within the admission wait."""


class DatabaseUnreachableError(DatabaseUnavailableError):
    """No connection within the connect timeout (also the migration's one-line start-up error)."""


class ConnectionLostError(DatabaseUnavailableError):
    """The connection broke during the statement, and rerunning it was not safe or failed too."""


class CircuitOpenError(DatabaseUnavailableError):
    """Recent connects failed or stalled: answered at once, while one probe tries again."""


class TenantBusyError(Exception):
    """This user's statements in flight stayed at `DB_STATEMENTS_PER_USER` for the admission
    wait: answered 429, without waiting for, or delaying, anyone else."""
