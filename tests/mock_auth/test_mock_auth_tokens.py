"""The JWTs from `/token`, `set-auth-jwt` and the cookie cache verify the way the backend will."""

from collections.abc import Callable
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

SignUp = Callable[..., dict[str, Any]]
Verify = Callable[..., dict[str, Any]]
USER_ROW = {"id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt"}


@pytest.mark.spec("A-2", "FR-002")
def test_hs256_token_is_signed_with_the_secret(
    make_client: Callable[..., TestClient], sign_up: SignUp, verify_hs256: Verify
) -> None:
    client = make_client(mock_auth_jwt_lifetime_seconds=120)
    user = sign_up(client)["user"]

    token = client.get("/api/auth/token").json()["token"]

    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = verify_hs256(token)
    assert set(claims) == {"sub", "email", "name", "iat", "exp"}
    assert (claims["sub"], claims["email"], claims["name"]) == (user["id"], user["email"], "Alice")
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.spec("A-2", "FR-002")
def test_get_session_jwt_matches_token_endpoint(
    client: TestClient, sign_up: SignUp, verify_hs256: Verify
) -> None:
    user_id = sign_up(client)["user"]["id"]

    header_jwt = client.get("/api/auth/get-session").headers["set-auth-jwt"]

    assert verify_hs256(header_jwt)["sub"] == user_id


@pytest.mark.spec("A-2", "FR-002")
def test_eddsa_token_is_better_auth_jwt_plugin_format(
    make_client: Callable[..., TestClient], sign_up: SignUp, verify_eddsa: Verify
) -> None:
    client = make_client(mock_auth_mode="eddsa")
    user = sign_up(client)["user"]
    jwks = client.get("/api/auth/jwks").json()

    for token in (
        client.get("/api/auth/token").json()["token"],
        client.get("/api/auth/get-session").headers["set-auth-jwt"],
    ):
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "EdDSA", "kid": jwks["keys"][0]["kid"]}  # no typ
        claims = verify_eddsa(token, jwks)
        assert {key: claims[key] for key in USER_ROW} == user
        assert claims["sub"] == user["id"]
        assert claims["iss"] == claims["aud"] == "http://localhost:3000"
        assert claims["exp"] - claims["iat"] == 900


@pytest.mark.spec("A-2", "FR-002")
def test_eddsa_token_fails_with_another_origin(
    make_client: Callable[..., TestClient], sign_up: SignUp, verify_eddsa: Verify
) -> None:
    client = make_client(mock_auth_mode="eddsa")
    sign_up(client)
    token = client.get("/api/auth/token").json()["token"]
    jwks = client.get("/api/auth/jwks").json()

    with pytest.raises(jwt.InvalidTokenError, match=r"issuer|audience"):
        verify_eddsa(token, jwks, origin="http://localhost:8000")


@pytest.mark.spec("A-2")
@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://LocalHost:3000/api/auth/", "http://localhost:3000"),
        ("https://auth.example.com:443/base", "https://auth.example.com"),
        ("http://[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_issuer_is_the_origin_of_better_auth_url(
    make_client: Callable[..., TestClient],
    sign_up: SignUp,
    verify_eddsa: Verify,
    url: str,
    origin: str,
) -> None:
    client = make_client(mock_auth_mode="eddsa", better_auth_url=url)
    # Bearer, not the cookie jar: the TestClient speaks http and drops https-only cookies.
    bearer = {"Authorization": f"Bearer {sign_up(client)['token']}"}

    token = client.get("/api/auth/token", headers=bearer).json()["token"]

    claims = verify_eddsa(token, client.get("/api/auth/jwks").json(), origin=origin)
    assert claims["iss"] == origin


@pytest.mark.spec("FR-002")
@pytest.mark.parametrize("mode", ["hs256", "eddsa"])
def test_jwks_is_published_in_every_mode(make_client: Callable[..., TestClient], mode: str) -> None:
    client = make_client(mock_auth_mode=mode)

    keys = client.get("/api/auth/jwks").json()["keys"]

    assert len(keys) == 1
    (key,) = keys
    assert set(key) == {"kty", "crv", "x", "alg", "kid"}
    assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert len(key["kid"]) == 32
    assert isinstance(jwt.PyJWK(key).key, object)
    assert client.get("/api/auth/jwks").json()["keys"] == keys  # stable, not one per call


@pytest.mark.spec("A-2", "FR-002")
def test_cookie_cache_jwt_when_enabled(
    make_client: Callable[..., TestClient], sign_up: SignUp, secret: str
) -> None:
    client = make_client(mock_auth_cookie_cache=True)
    signed_up = sign_up(client)

    response = client.get("/api/auth/get-session")

    set_cookie = next(c for c in response.headers.get_list("set-cookie") if "session_data=" in c)
    assert set_cookie.startswith("better-auth.session_data=")
    assert "Max-Age=300" in set_cookie
    cached = client.cookies["better-auth.session_data"]
    assert jwt.get_unverified_header(cached) == {"alg": "HS256"}
    claims = jwt.decode(cached, secret, algorithms=["HS256"], options={"require": ["exp"]})
    assert set(claims) == {"session", "user", "iat", "exp"}
    assert claims["exp"] - claims["iat"] == 300
    assert claims["user"] == signed_up["user"]
    assert claims["session"] == response.json()["session"]
    assert claims["session"]["userId"] == signed_up["user"]["id"]


@pytest.mark.spec("A-2")
def test_no_cookie_cache_by_default(client: TestClient, sign_up: SignUp) -> None:
    sign_up(client)

    response = client.get("/api/auth/get-session")

    assert "set-cookie" not in response.headers
