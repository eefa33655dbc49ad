"""Sessions are found through the bearer header or the signed cookie, and end at sign-out."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mock_auth.store import SESSION_LIFETIME

SignUp = Callable[..., dict[str, Any]]


@pytest.mark.spec("SC-008")
def test_get_session_without_session_is_null(client: TestClient) -> None:
    response = client.get("/api/auth/get-session")

    assert response.status_code == 200
    assert response.text == "null"
    assert "set-auth-jwt" not in response.headers


@pytest.mark.spec("SC-008")
def test_get_session_with_cookie_returns_session_and_jwt(
    client: TestClient, sign_up: SignUp
) -> None:
    signed_up = sign_up(client)  # the TestClient keeps the session cookie

    response = client.get("/api/auth/get-session", headers={"user-agent": "pytest"})

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == signed_up["user"]
    session = body["session"]
    assert set(session) == {
        "id",
        "token",
        "userId",
        "expiresAt",
        "createdAt",
        "updatedAt",
        "ipAddress",
        "userAgent",
    }
    assert session["token"] == signed_up["token"]
    assert session["userId"] == signed_up["user"]["id"]
    lifetime = datetime.fromisoformat(session["expiresAt"]) - datetime.fromisoformat(
        session["createdAt"]
    )
    assert lifetime == SESSION_LIFETIME
    assert response.headers["set-auth-jwt"].count(".") == 2
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"set-auth-jwt", "set-auth-token"} <= exposed


@pytest.mark.spec("SC-008")
def test_tampered_cookie_is_no_session(client: TestClient, sign_up: SignUp) -> None:
    sign_up(client)
    signed = client.cookies["better-auth.session_token"]
    token = signed.split(".")[0]
    client.cookies.clear()

    other_last = "Y" if token.endswith("X") else "X"  # a real change, whatever the token ends with
    for forged in (token, f"{token}.AAAA", f"{token[:-1]}{other_last}.{signed.split('.', 1)[1]}"):
        client.cookies.set("better-auth.session_token", forged)
        response = client.get("/api/auth/get-session")
        assert response.text == "null", forged
        # Better Auth drops a session cookie it cannot use.
        assert "better-auth.session_token=; Max-Age=0" in response.headers["set-cookie"]
        assert client.get("/api/auth/token").status_code == 401


@pytest.mark.spec("SC-008")
@pytest.mark.parametrize("form", ["raw", "signed", "signed-decoded"])
def test_bearer_accepts_raw_and_signed_session_token(
    make_client: Callable[..., TestClient], sign_up: SignUp, form: str
) -> None:
    issuer = make_client()
    body = sign_up(issuer)
    signed = issuer.cookies["better-auth.session_token"]
    credential = {
        "raw": body["token"],
        "signed": signed,
        "signed-decoded": signed.replace("%2F", "/").replace("%2B", "+").replace("%3D", "="),
    }[form]
    issuer.cookies.clear()

    response = issuer.get(
        "/api/auth/get-session", headers={"Authorization": f"Bearer {credential}"}
    )

    assert response.json()["user"]["id"] == body["user"]["id"]


@pytest.mark.spec("SC-008")
def test_bearer_with_bad_signature_is_no_session(client: TestClient, sign_up: SignUp) -> None:
    token = sign_up(client)["token"]
    client.cookies.clear()

    response = client.get(
        "/api/auth/get-session", headers={"Authorization": f"Bearer {token}.bm90LXRoZS1zaWc="}
    )

    assert response.text == "null"


@pytest.mark.spec("SC-008")
def test_sign_out_invalidates_the_session(client: TestClient, sign_up: SignUp) -> None:
    token = sign_up(client)["token"]
    bearer = {"Authorization": f"Bearer {token}"}

    response = client.post("/api/auth/sign-out")

    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert "better-auth.session_token=; Max-Age=0" in response.headers["set-cookie"]
    assert "better-auth.session_token" not in client.cookies
    assert client.get("/api/auth/get-session", headers=bearer).text == "null"
    assert client.get("/api/auth/token", headers=bearer).status_code == 401


@pytest.mark.spec("SC-008")
def test_sign_out_with_bearer(client: TestClient, sign_up: SignUp) -> None:
    token = sign_up(client)["token"]
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}

    assert client.post("/api/auth/sign-out", headers=bearer).json() == {"success": True}
    assert client.get("/api/auth/get-session", headers=bearer).text == "null"


@pytest.mark.spec("SC-008")
def test_sign_out_without_session_is_400(client: TestClient) -> None:
    response = client.post("/api/auth/sign-out")

    assert response.status_code == 400
    assert response.json() == {"code": "FAILED_TO_GET_SESSION", "message": "Failed to get session"}


@pytest.mark.spec("SC-008")
def test_token_without_session_is_401(client: TestClient) -> None:
    response = client.get("/api/auth/token")

    assert response.status_code == 401
    assert response.json() == {"code": "UNAUTHORIZED", "message": "Unauthorized"}


@pytest.mark.spec("SC-008")
def test_sessions_expire_after_seven_days(
    make_client: Callable[..., TestClient], sign_up: SignUp
) -> None:
    signed_up_at = datetime(2026, 1, 1, tzinfo=UTC)
    moment = [signed_up_at]
    client = make_client(clock=lambda: moment[0])
    sign_up(client)

    moment[0] = signed_up_at + SESSION_LIFETIME - timedelta(milliseconds=1)
    last = client.get("/api/auth/get-session").json()
    moment[0] = signed_up_at + SESSION_LIFETIME

    assert datetime.fromisoformat(last["session"]["expiresAt"]) == signed_up_at + SESSION_LIFETIME
    assert client.get("/api/auth/get-session").text == "null"


@pytest.mark.spec("SC-008", "A-6")
def test_cors_preflight_and_exposed_headers(client: TestClient, sign_up: SignUp) -> None:
    origin = "http://localhost:3000"
    preflight = client.options(
        "/api/auth/get-session",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers["access-control-allow-credentials"] == "true"

    sign_up(client)
    response = client.get("/api/auth/get-session", headers={"Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"set-auth-jwt", "set-auth-token"} <= exposed

    foreign = client.get("/api/auth/ok", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


@pytest.mark.spec("SC-008")
def test_https_base_url_uses_secure_prefixed_cookie(
    make_client: Callable[..., TestClient], password: str
) -> None:
    client = make_client(better_auth_url="https://auth.example.com")
    response = client.post(
        "/api/auth/sign-up/email",
        json={"name": "A", "email": "a@example.com", "password": password},
    )
    set_cookie = response.headers["set-cookie"]

    assert set_cookie.startswith("__Secure-better-auth.session_token=")
    assert set_cookie.endswith("; Secure")
    value = set_cookie.split(";")[0].split("=", 1)[1]
    # The TestClient speaks http, so its jar keeps no Secure cookie: send it by hand.
    found = client.get(
        "/api/auth/get-session", headers={"Cookie": f"__Secure-better-auth.session_token={value}"}
    )
    assert found.json()["user"]["email"] == "a@example.com"
