"""Fixtures for mock_auth: apps built from explicit settings, and the two ways to verify a JWT."""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from mock_auth import Settings, create_app
from mock_auth.store import now

SECRET = "mock-auth-test-secret-0123456789abcdef"
ORIGIN = "http://localhost:3000"
PASSWORD = "correct horse battery"

MakeSettings = Callable[..., Settings]
MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_settings() -> MakeSettings:
    """Settings with every field given, so neither the process env nor a `.env` leaks in."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "better_auth_secret": SECRET,
            "better_auth_url": ORIGIN,
            "mock_auth_mode": "hs256",
            "mock_auth_state_file": None,
            "mock_auth_cors_origins": [ORIGIN],
            "mock_auth_jwt_lifetime_seconds": 900,
            "mock_auth_cookie_cache": False,
        }
        return Settings(_env_file=None, **(values | overrides))

    return make


@pytest.fixture
def make_client(make_settings: MakeSettings) -> Iterator[MakeClient]:
    clients: list[TestClient] = []

    def make(*, clock: Callable[[], datetime] = now, **overrides: Any) -> TestClient:
        """A client of an app with these settings, dating sessions by `clock`."""
        client = TestClient(create_app(make_settings(**overrides), clock=clock))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def _sign_up(
    client: TestClient, email: str = "alice@example.com", name: str = "Alice"
) -> dict[str, Any]:
    response = client.post(
        "/api/auth/sign-up/email", json={"name": name, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _verify_hs256(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"require": ["exp", "iat", "sub"]}
    )
    return claims


def _verify_eddsa(token: str, jwks: dict[str, Any], origin: str = ORIGIN) -> dict[str, Any]:
    """Verification as Better Auth's JWKS consumers do it: key by kid, EdDSA only, iss and aud."""
    kid = jwt.get_unverified_header(token).get("kid")
    matching = [key for key in jwks["keys"] if key["kid"] == kid]
    if not matching:
        raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS")
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(matching[0]),
        algorithms=["EdDSA"],
        audience=origin,
        issuer=origin,
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
    return claims


# Helpers are handed out as fixtures: test modules then need no import path to this directory.


@pytest.fixture
def sign_up() -> Callable[..., dict[str, Any]]:
    return _sign_up


@pytest.fixture
def verify_hs256() -> Callable[[str], dict[str, Any]]:
    return _verify_hs256


@pytest.fixture
def verify_eddsa() -> Callable[..., dict[str, Any]]:
    return _verify_eddsa


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def secret() -> str:
    return SECRET
