"""Opaque Better Auth session tokens, looked up in Better Auth's `session` table (opt-in).

The tables are created with the DDL Better Auth's migration runs on PostgreSQL (Kysely adapter:
camelCase quoted columns), in the test database, and dropped afterwards.
"""

import base64
import hashlib
import hmac
import logging
import secrets
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.support.helpers import SECRET, Caller, count_tasks

USER = "sessionUser0123456789abcdefghijk"
OTHER = "otherUser0123456789abcdefghijklm"

BETTER_AUTH_DDL = [
    'create table "user" ("id" text not null primary key, "name" text not null, '
    '"email" text not null unique, "emailVerified" boolean not null, "image" text, '
    '"createdAt" timestamptz default CURRENT_TIMESTAMP not null, '
    '"updatedAt" timestamptz default CURRENT_TIMESTAMP not null)',
    'create table "session" ("id" text not null primary key, "expiresAt" timestamptz not null, '
    '"token" text not null unique, "createdAt" timestamptz default CURRENT_TIMESTAMP not null, '
    '"updatedAt" timestamptz not null, "ipAddress" text, "userAgent" text, '
    '"userId" text not null references "user" ("id") on delete cascade)',
    'create index "session_userId_idx" on "session" ("userId")',
]


@pytest.fixture
def better_auth_tables(db_engine: Engine) -> Iterator[None]:
    with db_engine.connect() as connection:
        for statement in BETTER_AUTH_DDL:
            connection.execute(text(statement))
        for user_id in (USER, OTHER):
            connection.execute(
                text(
                    'insert into "user" ("id", "name", "email", "emailVerified") '
                    "values (:id, :id, :email, false)"
                ),
                {"id": user_id, "email": f"{user_id}@example.com"},
            )
    yield
    with db_engine.connect() as connection:
        connection.execute(text('drop table if exists "session", "user"'))


def new_session(engine: Engine, user_id: str = USER, lifetime: timedelta | None = None) -> str:
    """A session row as Better Auth writes it at sign-in; returns its token."""
    token = secrets.token_urlsafe(24).replace("-", "a").replace("_", "b")  # alphanumeric
    expires = datetime.now(UTC) + (lifetime if lifetime is not None else timedelta(days=7))
    with engine.connect() as connection:
        connection.execute(
            text(
                'insert into "session" ("id", "token", "userId", "expiresAt", "updatedAt") '
                "values (:id, :token, :user, :expires, now())"
            ),
            {"id": secrets.token_hex(8), "token": token, "user": user_id, "expires": expires},
        )
    return token


def signed(token: str, secret: str = SECRET, *, encode: bool = True, pad: bool = True) -> str:
    """The `better-auth.session_token` cookie value (what the bearer plugin's header carries)."""
    digest = hmac.new(secret.encode(), token.encode(), hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode()
    value = f"{token}.{signature if pad else signature.rstrip('=')}"
    return quote(value, safe="") if encode else value


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def api(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(better_auth_session_lookup=True)


user = Caller(USER)


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text


@pytest.mark.spec("FR-002", "SC-008", "US-1.1", "US-2.1")
@pytest.mark.parametrize(
    "form",
    ["raw", "signed-percent-encoded", "signed", "signed-no-padding"],
)
def test_session_token_is_accepted_raw_or_as_the_signed_cookie_value(
    api: TestClient, db_engine: Engine, better_auth_tables: None, form: str
) -> None:
    token = new_session(db_engine)
    value = {
        "raw": token,
        "signed-percent-encoded": signed(token),
        "signed": signed(token, encode=False),
        "signed-no-padding": signed(token, encode=False, pad=False),
    }[form]

    created = api.post(user.tasks, json={"title": "via session"}, headers=bearer(value))
    listed = api.get(user.tasks, headers=bearer(value))

    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == USER
    assert listed.json() == [created.json()]


@pytest.mark.spec("EC-6", "FR-002")
@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: signed(token, "some-other-secret-0123456789abcdef"),
        lambda token: signed(token)[:-6] + "AAAA%3D",
        lambda token: f"{token}.{signed(token + 'x', encode=False).rpartition('.')[2]}",
        lambda token: token + ".",
        lambda token: token[:-1] + chr(ord(token[-1]) ^ 1),
        lambda token: token + "%00",
        lambda token: "%FF%FE" + token,
    ],
    ids=[
        "wrong-secret",
        "altered-signature",
        "signature-of-other",
        "empty-signature",
        "unknown-token",
        "nul",
        "bad-utf8",
    ],
)
def test_tampered_or_unknown_session_value_is_401(
    api: TestClient,
    db_engine: Engine,
    better_auth_tables: None,
    tamper: Callable[[str], str],
) -> None:
    token = new_session(db_engine)

    response = api.post(user.tasks, json={"title": "x"}, headers=bearer(tamper(token)))

    assert_refused(response)
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert count_tasks(db_engine) == 0


@pytest.mark.spec("FR-003", "EC-1")
def test_expired_session_is_401(
    api: TestClient, db_engine: Engine, better_auth_tables: None
) -> None:
    token = new_session(db_engine, lifetime=timedelta(seconds=-1))

    assert_refused(api.get(user.tasks, headers=bearer(token)))


@pytest.mark.spec("EC-1", "FR-003")
def test_sign_out_revokes_access_immediately(
    api: TestClient, db_engine: Engine, better_auth_tables: None
) -> None:
    token = new_session(db_engine)
    assert api.get(user.tasks, headers=bearer(signed(token))).status_code == 200

    with db_engine.connect() as connection:  # what Better Auth's sign-out does
        connection.execute(text('delete from "session" where "token" = :t'), {"t": token})

    assert_refused(api.get(user.tasks, headers=bearer(signed(token))))


@pytest.mark.spec("FR-005", "SC-002")
def test_session_of_another_user_is_403(
    api: TestClient, db_engine: Engine, better_auth_tables: None
) -> None:
    token = new_session(db_engine, user_id=OTHER)

    response = api.get(user.tasks, headers=bearer(token))

    assert response.status_code == 403


@pytest.mark.spec("FR-002")
def test_jwts_still_work_with_the_lookup_on(
    api: TestClient, db_engine: Engine, better_auth_tables: None
) -> None:
    assert api.get(user.tasks, headers=user.headers).status_code == 200


@pytest.mark.spec("FR-002", "EC-6")
def test_session_tokens_are_refused_when_the_lookup_is_off(
    client: TestClient, db_engine: Engine, better_auth_tables: None
) -> None:
    token = new_session(db_engine)

    assert_refused(client.get(user.tasks, headers=bearer(token)))
    assert_refused(client.get(user.tasks, headers=bearer(signed(token))))


@pytest.mark.spec("FR-002", "FR-017", "SC-009")
def test_missing_session_table_is_401_with_one_log_line(
    api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = "NoSuchTable0123456789abcdefghijk"
    with caplog.at_level(logging.ERROR, logger="backend.auth"):
        for _ in range(3):
            assert_refused(api.get(user.tasks, headers=bearer(token)))

    lines = [record for record in caplog.records if record.name == "backend.auth"]
    assert len(lines) == 1
    assert '"session" table' in lines[0].getMessage()
    assert token not in caplog.text


@pytest.mark.spec("EC-3", "SC-010", "FR-001")
def test_an_unparsable_body_with_the_session_database_down_is_a_503(
    make_client: Callable[..., TestClient],
) -> None:
    """A 422 goes only to a caller the route would accept; with the database down the session
    cannot be looked up, so the answer is the outage's 503, as for a well-formed body."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again below: connections are refused
    api = make_client(
        better_auth_session_lookup=True,
        neon_database_url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
    )
    headers = {**bearer("Opaque0123456789abcdefghijklmnop"), "Content-Type": "application/json"}

    responses = [api.post(user.tasks, content=body, headers=headers) for body in (b"{", b"{}")]

    assert [response.status_code for response in responses] == [503, 503]
    assert all(response.headers["Retry-After"].isdigit() for response in responses)


@pytest.mark.spec("EC-3", "SC-010", "SC-009")
def test_an_unparsable_body_while_the_session_lookup_times_out_is_a_503(
    make_client: Callable[..., TestClient], better_auth_tables: None, db_engine: Engine
) -> None:
    """The lookup runs under the statement deadline too: a locked `session` table makes it time
    out, and the answer is the 503 of any slow database, for a broken body as for a good one."""
    token = new_session(db_engine)
    api = make_client(better_auth_session_lookup=True, db_statement_timeout_seconds=0.3)
    headers = {**bearer(token), "Content-Type": "application/json"}

    locking = db_engine.connect().execution_options(isolation_level="READ COMMITTED")
    with locking as locker, locker.begin():  # the lock holds until this transaction ends
        locker.execute(text('LOCK TABLE "session" IN ACCESS EXCLUSIVE MODE'))
        responses = [api.post(user.tasks, content=body, headers=headers) for body in (b"{", b"{}")]

    assert [response.status_code for response in responses] == [503, 503]
    assert all(response.json()["detail"] for response in responses)
