"""Opaque Better Auth session tokens, checked against Better Auth's own `session` table.

Off unless `BETTER_AUTH_SESSION_LOOKUP` is on, and only meaningful when the backend shares Better
Auth's database. What it buys: a JWT stays valid until it expires, but a session token stops
working the moment Better Auth deletes its row (sign-out, revocation).

The bearer value is the raw token or the signed cookie value (`token.signature`, possibly
percent-encoded as in `Set-Cookie`), the two forms Better Auth's bearer plugin accepts. A signature
is checked before the database is asked, so forged values cost no query.
"""

import base64
import hashlib
import hmac
import logging
from urllib.parse import unquote

import psycopg2

from backend.auth.jwt import InvalidTokenError, valid_user_id
from backend.db import Database

logger = logging.getLogger("backend.auth")

# The table and camelCase columns as Better Auth's Kysely adapter creates them on PostgreSQL.
SESSION_QUERY = 'SELECT "userId" FROM "session" WHERE "token" = %(token)s AND "expiresAt" > now()'
# undefined_table, undefined_column: this database has no (compatible) Better Auth schema.
_NO_SESSION_TABLE = frozenset({"42P01", "42703"})


def session_token(bearer: str, secret: bytes) -> str:
    """The session token a bearer value carries, its signature checked when it has one."""
    value = unquote(bearer)
    token, dot, signature = value.rpartition(".")
    if not dot:
        token = value
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise InvalidTokenError("malformed token")
    if dot and not _signature_matches(token, signature, secret):
        raise InvalidTokenError("bad signature")
    return token


def _signature_matches(token: str, signature: str, secret: bytes) -> bool:
    """better-call's cookie signature: standard base64 of HMAC-SHA256, padding optional."""
    expected = hmac.new(secret, token.encode(), hashlib.sha256).digest()
    try:
        given = base64.b64decode(signature + "=" * (-len(signature) % 4), validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(given, expected)


class SessionLookup:
    """`SessionSource` reading Better Auth's `session` table through the app's database."""

    def __init__(self, database: Database, secret: str) -> None:
        self._database = database
        self._secret = secret.encode()
        self._reported_missing_table = False

    async def user_for(self, token: str) -> str:
        session = session_token(token, self._secret)
        try:
            rows = await self._database.fetch(SESSION_QUERY, {"token": session})
        except psycopg2.ProgrammingError as exc:
            if exc.pgcode not in _NO_SESSION_TABLE:
                raise
            self._report_missing_table()
            raise InvalidTokenError("session tokens are not accepted here") from None
        if not rows:
            raise InvalidTokenError("unknown or expired session")
        return valid_user_id(rows[0][0])

    def _report_missing_table(self) -> None:
        if not self._reported_missing_table:
            self._reported_missing_table = True
            logger.error(
                "BETTER_AUTH_SESSION_LOOKUP is on, but this database has no Better Auth "
                '"session" table with columns "token", "userId", "expiresAt"; session tokens '
                "are refused (share Better Auth's database, or turn the setting off)"
            )
