"""mock_auth answers as Better Auth 1.7 does where it matters for security: look-alike emails and
open redirects. Checked on mock_auth alone, and side by side with the real library (A-9)."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.better_auth_harness import BetterAuth, better_auth  # noqa: F401 - the fixture

ORIGIN = "http://localhost:3000"  # mock_auth's BETTER_AUTH_URL in these tests
PASSWORD = "correct horse battery"
MakeClient = Callable[..., TestClient]

# (callbackURL, allowed?) — "{origin}" is the auth server's own origin, which it trusts.
CALLBACKS = [
    ("/dashboard", True),
    ("/tasks?filter=done#top", True),
    ("{origin}/after-sign-in", True),
    ("", True),
    ("https://evil.example/phish", False),
    ("//evil.example/x", False),
    ("/\\evil.example", False),
    ("/a%2f..%2f..%2fevil", False),
    ("javascript:alert(1)", False),
    ("dashboard", False),
    ("/ok\r\nSet-Cookie: stolen=1", False),
]
# Stricter than better-auth 1.7.25 on purpose: URL parsing drops the CR/LF, so it trusts this
# one, then fails writing the `Location` header (a 500). mock_auth refuses it with the 403.
STRICTER = [("{origin}\r\n/after", False)]


def sign_in(client: httpx.Client | TestClient, email: str, callback: str) -> httpx.Response:
    body: dict[str, Any] = {"email": email, "password": PASSWORD, "callbackURL": callback}
    return client.post("/api/auth/sign-in/email", json=body)


@pytest.mark.spec("A-9", "SC-009")
def test_an_email_with_a_trailing_newline_cannot_sign_up_as_a_look_alike(
    client: TestClient,
) -> None:
    body = {"name": "V", "email": "victim@example.com", "password": PASSWORD}
    assert client.post("/api/auth/sign-up/email", json=body).status_code == 200

    response = client.post("/api/auth/sign-up/email", json=body | {"email": "victim@example.com\n"})

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_EMAIL"


@pytest.mark.spec("A-9", "SC-009")
@pytest.mark.parametrize(("callback", "allowed"), CALLBACKS + STRICTER)
def test_callback_url_is_a_same_site_path_or_a_trusted_origin(
    make_client: MakeClient, callback: str, allowed: bool
) -> None:
    client = make_client(better_auth_url=ORIGIN, mock_auth_cors_origins=["https://app.example"])
    body = {"name": "A", "email": "alice@example.com", "password": PASSWORD}
    client.post("/api/auth/sign-up/email", json=body)
    url = callback.format(origin=ORIGIN)

    response = sign_in(client, "alice@example.com", url)

    if allowed:
        assert response.status_code == 200
        assert response.json()["url"] == url
        assert response.headers.get("location") == (url or None)
    else:
        assert response.status_code == 403
        assert response.json() == {"code": "INVALID_CALLBACK_URL", "message": "Invalid callbackURL"}
        assert "location" not in response.headers
        assert "evil" not in response.text


@pytest.mark.spec("A-9")
def test_trusted_origins_are_the_auth_origin_and_the_cors_origins(make_client: MakeClient) -> None:
    client = make_client(better_auth_url=ORIGIN, mock_auth_cors_origins=["https://app.example"])
    body = {"name": "A", "email": "alice@example.com", "password": PASSWORD}
    client.post("/api/auth/sign-up/email", json=body)

    assert sign_in(client, "alice@example.com", "https://app.example/x").status_code == 200
    assert sign_in(client, "alice@example.com", "https://app.example.evil/x").status_code == 403


@pytest.mark.spec("A-9", "SC-008")
def test_mock_auth_answers_like_the_real_better_auth(
    make_client: MakeClient,
    better_auth: BetterAuth,  # noqa: F811
) -> None:
    """Same status and error code from mock_auth and from better-auth for every case above."""
    mock = make_client(better_auth_url=ORIGIN)
    real = httpx.Client(
        base_url=better_auth.default, headers={"Origin": better_auth.default}, timeout=10
    )
    servers: dict[str, tuple[httpx.Client | TestClient, str]] = {
        "mock": (mock, ORIGIN),
        "real": (real, better_auth.default),
    }
    answers: dict[str, list[tuple[str, int, str | None]]] = {}
    for name, (client, origin) in servers.items():
        email = f"parity-{name}@example.com"
        body = {"name": "P", "email": email, "password": PASSWORD}
        look_alike = client.post("/api/auth/sign-up/email", json=body | {"email": email + "\n"})
        signed_up = client.post("/api/auth/sign-up/email", json=body)
        answers[name] = [("look-alike", look_alike.status_code, None)]
        answers[name].append(("sign-up", signed_up.status_code, None))
        for callback, _ in CALLBACKS:
            response = sign_in(client, email, callback.format(origin=origin))
            code = response.json().get("code") if response.status_code != 200 else None
            answers[name].append((callback, response.status_code, code))
    real.close()

    assert answers["mock"] == answers["real"]
