"""Shared fixtures: a real PostgreSQL, the real app, and callers holding real signed tokens.

The database is the embedded PostgreSQL (a fresh cluster per test session) unless
`TEST_DATABASE_URL` names another one; its tables are emptied before each test that uses
it, so tests are independent. Tokens are real HS256 JWTs signed with the test secret.

Conformance mode (`--base-url URL`, see tests/plugins/conformance.py and `nox -s conformance`): the
`client`, `alice`, `bob` and `origin` fixtures point at a running backend and fresh random users,
and only black-box tests run; the same test functions, no copies.

Every test names the SPEC.md IDs it proves with `@pytest.mark.spec(...)`: see
tests/plugins/spec_coverage.py (the table at the end of a run, and its strict mode).

`tests` is a package: shared code is imported as `from tests.support.helpers import ...`.
"""

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine

from backend import embedded_db, migrate
from backend.auth.jwks import JwksKeySource
from backend.auth.jwt import TokenVerifier
from backend.config import Settings
from backend.db import normalize_url
from backend.main import create_app, jwks_config, token_policy
from tests.support.helpers import AUTH_URL, SECRET, Caller

if TYPE_CHECKING:  # imported here first, pytest could not rewrite the plugin's asserts
    from tests.plugins.conformance import Target

# The SPEC ID table, and the conformance checker (`--base-url`): its `target` fixture too.
pytest_plugins = ["tests.plugins.spec_coverage", "tests.plugins.conformance"]


# --- database -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url() -> Iterator[URL]:
    """A migrated PostgreSQL database for the whole session.

    The embedded cluster lives outside pytest's basetemp: pytest re-tightens that folder to 0700
    at every session start, which would lock out the server's own (non-root) user.
    """
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        url = normalize_url(external)
        migrate.upgrade(url)
        yield url
        return
    data_dir = Path(tempfile.mkdtemp(prefix="todo-test-pg-")) / "data"
    url = embedded_db.start(data_dir)
    migrate.upgrade(url)
    yield url
    embedded_db.stop(data_dir)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def db_engine(database_url: URL) -> Iterator[Engine]:
    """A plain engine for tests to look at the database directly (not the app's)."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def empty_database(db_engine: Engine, database_url: URL) -> Iterator[URL]:
    """A database with no schema at all (never migrated), in the session's cluster."""
    with db_engine.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS never_migrated"))
        connection.execute(text("CREATE DATABASE never_migrated"))
    yield database_url.set(database="never_migrated")
    with db_engine.connect() as connection:
        connection.execute(text("DROP DATABASE never_migrated WITH (FORCE)"))


@pytest.fixture
def clean_db(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        connection.execute(text("TRUNCATE task, idempotency_key RESTART IDENTITY"))


# --- app ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def make_settings(database_url: URL) -> Callable[..., Settings]:
    """Settings for the test database; explicit values, so no `.env` or process env leaks in."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "better_auth_secret": SECRET,
            "better_auth_url": AUTH_URL,
            "neon_database_url": database_url.render_as_string(hide_password=False),
            "migrate_on_startup": False,
            # The suite sends thousands of requests as the same few users; the limit's own
            # tests turn it on (tests/test_rate_limit.py).
            "rate_limit_per_minute": 0,
        }
        return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]

    return make


@pytest.fixture(scope="session")
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="session")
def session_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(request: pytest.FixtureRequest, target: "Target") -> Any:
    """The app on a clean database (its lifespan runs once per session), or the target by URL.

    The in-process fixtures are requested dynamically so that a test asking only for `client`
    stays black-box (runnable by URL); one asking for `db_engine` & co. is internal.
    """
    if target.client is not None:
        return target.client
    request.getfixturevalue("clean_db")
    return request.getfixturevalue("session_client")


@pytest.fixture
def make_client(
    make_settings: Callable[..., Settings], clean_db: None
) -> Iterator[Callable[..., TestClient]]:
    """A client for an app with other settings: `make_client(rate_limit_per_minute=5)`.

    With `clock=`, the app verifies tokens (and caches its JWKS) by that clock instead of the
    real one: the lifespan's verifier is swapped for the same parts built on `clock`.
    """
    clients: list[TestClient] = []

    def make(*, clock: Callable[[], float] | None = None, **overrides: Any) -> TestClient:
        settings = make_settings(**overrides)
        app = create_app(settings)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        if clock is not None:
            assert not settings.better_auth_session_lookup, "clock= covers JWT verification only"
            assert client.portal is not None
            client.portal.call(app.state.verifier.aclose)
            keys = JwksKeySource(jwks_config(settings), clock=clock)
            app.state.verifier = TokenVerifier(token_policy(settings), keys, clock=clock)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


# --- callers ---------------------------------------------------------------------------------


@pytest.fixture
def alice(target: "Target") -> Caller:
    return target.caller("alice", "alice-0123456789abcdefghijklmnop")


@pytest.fixture
def bob(target: "Target") -> Caller:
    return target.caller("bob", "bob-0123456789abcdefghijklmnopqr")


@pytest.fixture
def origin(target: "Target") -> str:
    """The frontend origin CORS must allow: `--origin` in conformance mode."""
    return target.origin if target.conformance else AUTH_URL
