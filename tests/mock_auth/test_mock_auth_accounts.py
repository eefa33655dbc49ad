"""Sign-up and sign-in answer with Better Auth's shapes, cookies and error codes."""

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

SignUp = Callable[..., dict[str, Any]]
ID = re.compile(r"^[A-Za-z0-9]{32}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.spec("A-9", "SC-008")
def test_sign_up_returns_token_and_user_row(client: TestClient, password: str) -> None:
    response = client.post(
        "/api/auth/sign-up/email",
        json={"name": "Alice", "email": "Alice@Example.COM", "password": password},
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "user"}
    assert ID.match(body["token"])
    user = body["user"]
    assert set(user) == {"id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt"}
    assert ID.match(user["id"])
    assert (user["name"], user["email"]) == ("Alice", "alice@example.com")
    assert user["emailVerified"] is False
    assert user["image"] is None
    assert ISO_Z.match(user["createdAt"])
    assert datetime.fromisoformat(user["updatedAt"]) == datetime.fromisoformat(user["createdAt"])


@pytest.mark.spec("SC-008")
def test_sign_up_sets_signed_session_cookie_and_bearer_header(
    client: TestClient, secret: str, password: str
) -> None:
    response = client.post(
        "/api/auth/sign-up/email",
        json={"name": "Alice", "email": "alice@example.com", "password": password},
    )

    token = response.json()["token"]
    set_cookie = response.headers["set-cookie"]
    name_value, *attributes = set_cookie.split("; ")
    name, _, value = name_value.partition("=")
    assert name == "better-auth.session_token"
    expected_sig = base64.b64encode(
        hmac.new(secret.encode(), token.encode(), hashlib.sha256).digest()
    ).decode()
    assert unquote(value) == f"{token}.{expected_sig}"
    assert "%3D" in value  # percent-encoded on the wire, like better-call
    assert {"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"} <= set(attributes)
    assert response.headers["set-auth-token"] == value
    exposed = response.headers["access-control-expose-headers"]
    assert "set-auth-token" in exposed


@pytest.mark.spec("A-9")
def test_duplicate_sign_up_is_rejected_case_insensitively(
    client: TestClient, sign_up: SignUp, password: str
) -> None:
    sign_up(client, email="alice@example.com")

    response = client.post(
        "/api/auth/sign-up/email",
        json={"name": "Again", "email": "ALICE@example.com", "password": password},
    )

    assert response.status_code == 422
    assert response.json() == {
        "code": "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
        "message": "User already exists. Use another email.",
    }


@pytest.mark.spec("A-9")
@pytest.mark.parametrize(
    ("password", "code", "message"),
    [
        ("short", "PASSWORD_TOO_SHORT", "Password too short"),
        ("x" * 129, "PASSWORD_TOO_LONG", "Password too long"),
        ("", "INVALID_PASSWORD", "Invalid password"),
    ],
)
def test_sign_up_password_length_is_enforced(
    client: TestClient, password: str, code: str, message: str
) -> None:
    response = client.post(
        "/api/auth/sign-up/email",
        json={"name": "Bob", "email": "bob@example.com", "password": password},
    )

    assert response.status_code == 400
    assert response.json() == {"code": code, "message": message}


@pytest.mark.spec("A-9")
@pytest.mark.parametrize("path", ["/api/auth/sign-up/email", "/api/auth/sign-in/email"])
def test_invalid_email_is_rejected(client: TestClient, path: str, password: str) -> None:
    response = client.post(path, json={"name": "X", "email": "not-an-email", "password": password})

    assert response.status_code == 400
    assert response.json() == {"code": "INVALID_EMAIL", "message": "Invalid email"}


@pytest.mark.spec("FR-017")
def test_malformed_body_is_json_400_without_echoing_input(client: TestClient) -> None:
    response = client.post(
        "/api/auth/sign-up/email", json={"email": "carol@example.com", "password": "hunter2hunter2"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "name" in response.json()["message"]
    assert "hunter2" not in response.text


@pytest.mark.spec("A-9", "SC-008")
def test_sign_in_returns_better_auth_shape(
    client: TestClient, sign_up: SignUp, password: str
) -> None:
    user = sign_up(client)["user"]

    response = client.post(
        "/api/auth/sign-in/email", json={"email": "ALICE@example.com", "password": password}
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"redirect", "token", "user"}  # `url` is undefined, so omitted
    assert body["redirect"] is False
    assert ID.match(body["token"])
    assert body["user"] == user
    assert response.headers["set-cookie"].startswith("better-auth.session_token=")
    assert unquote(response.headers["set-auth-token"]).startswith(body["token"] + ".")


@pytest.mark.spec("SC-008")
def test_sign_in_with_callback_url_redirects(
    client: TestClient, sign_up: SignUp, password: str
) -> None:
    sign_up(client)

    response = client.post(
        "/api/auth/sign-in/email",
        json={"email": "alice@example.com", "password": password, "callbackURL": "/dashboard"},
    )

    assert response.json()["redirect"] is True
    assert response.json()["url"] == "/dashboard"
    assert response.headers["location"] == "/dashboard"


@pytest.mark.spec("A-9")
@pytest.mark.parametrize(
    ("email", "attempt"),
    [("alice@example.com", "wrong password"), ("nobody@example.com", "correct horse battery")],
)
def test_bad_credentials_are_401(
    client: TestClient, sign_up: SignUp, email: str, attempt: str
) -> None:
    sign_up(client)

    response = client.post("/api/auth/sign-in/email", json={"email": email, "password": attempt})

    assert response.status_code == 401
    assert response.json() == {
        "code": "INVALID_EMAIL_OR_PASSWORD",
        "message": "Invalid email or password",
    }
    assert "set-cookie" not in response.headers


@pytest.mark.spec("FR-017")
def test_unknown_route_is_json(client: TestClient) -> None:
    response = client.get("/api/auth/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


@pytest.mark.spec("SC-008")
def test_ok_endpoint(client: TestClient) -> None:
    assert client.get("/api/auth/ok").json() == {"ok": True}
