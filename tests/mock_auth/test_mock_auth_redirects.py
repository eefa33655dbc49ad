"""mock_auth answers as Better Auth 1.7 does where it matters for security: look-alike emails and
open redirects. Checked on mock_auth alone, and side by side with the real library (A-9)."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.better_auth import BetterAuth, better_auth  # noqa: F401 - the fixture

ORIGIN = "http://localhost:3000"  # mock_auth's BETTER_AUTH_URL in these tests
AUTHORITY = ORIGIN.removeprefix("http://")
PASSWORD = "correct horse battery"
MakeClient = Callable[..., TestClient]

# (callbackURL, allowed?) — "{origin}" is the auth server's own origin, which it trusts, and
# "{authority}" its host:port. Browsers read a URL by WHATWG rules, where `\\` is `/` in an
# http(s) URL: what the browser would go to decides, not what a looser parser sees.
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
    ("http://evil.example\\@{authority}/", False),  # the browser goes to evil.example
    ("http://evil.example#@{authority}/", False),
    ("http://evil.example?@{authority}/", False),
    ("http://{authority}@evil.example/", False),
    ("http://{authority}%2F@evil.example/", False),
    ("{origin}\\@evil.example/", True),  # a path on this site: /@evil.example/
    ("http://evil.example%5C@{authority}/", True),  # user info; the host is this site
    ("http:{authority}/after", True),  # WHATWG reads it as http://{authority}/after
    ("http://user:pw@{authority}/", True),
    ("/caf%C3%A9", True),
]
# Stricter than better-auth 1.7.25 on purpose, with the real library's status: it trusts these and
# creates the session, then writes the `Location` header as Latin-1 bytes, or fails to (a bare
# 500 after the session exists): URL parsing drops the CR/LF of the first, and Node's headers
# take no character past U+00FF. A non-ASCII byte in `Location` is read one way by Node and
# another by browsers (UTF-8), so mock_auth refuses any non-ASCII callbackURL with the 403,
# before any session; a percent-encoded one (`/caf%C3%A9`) works in both.
STRICTER = [
    ("{origin}\r\n/after", 500),
    ("/\u2603", 500),
    ("{origin}/\u2028", 500),
    ("/caf\u00e9", 200),
]


def callback_for(template: str, origin: str) -> str:
    return template.format(origin=origin, authority=origin.partition("://")[2])


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
@pytest.mark.parametrize(
    ("callback", "allowed"), CALLBACKS + [(callback, False) for callback, _ in STRICTER]
)
def test_callback_url_is_a_same_site_path_or_a_trusted_origin(
    make_client: MakeClient, callback: str, allowed: bool
) -> None:
    client = make_client(better_auth_url=ORIGIN, mock_auth_cors_origins=["https://app.example"])
    body = {"name": "A", "email": "alice@example.com", "password": PASSWORD}
    client.post("/api/auth/sign-up/email", json=body)
    client.cookies.clear()
    url = callback_for(callback, ORIGIN)

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
        # Refused before anything was made: no session, so no cookie and no bearer token.
        assert "set-cookie" not in response.headers
        assert "set-auth-token" not in response.headers


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
            response = sign_in(client, email, callback_for(callback, origin))
            code = response.json().get("code") if response.status_code != 200 else None
            answers[name].append((callback, response.status_code, code))
    real.close()

    assert answers["mock"] == answers["real"]


@pytest.mark.spec("A-9", "SC-009")
def test_where_better_auth_fails_with_a_500_mock_auth_refuses_with_a_403(
    make_client: MakeClient,
    better_auth: BetterAuth,  # noqa: F811
) -> None:
    """The cases mock_auth is stricter on: the real library took each URL and made a session,
    then answered a bare 500 (it could not write the header) or wrote a byte browsers read
    otherwise; mock_auth answers Better Auth's 403 before making anything."""
    mock = make_client(better_auth_url=ORIGIN)
    real = httpx.Client(
        base_url=better_auth.default, headers={"Origin": better_auth.default}, timeout=10
    )
    body = {"name": "P", "email": "stricter@example.com", "password": PASSWORD}
    assert mock.post("/api/auth/sign-up/email", json=body).status_code == 200
    assert real.post("/api/auth/sign-up/email", json=body).status_code == 200
    for callback, real_status in STRICTER:
        mock.cookies.clear()
        refused = sign_in(mock, "stricter@example.com", callback_for(callback, ORIGIN))
        taken = sign_in(real, "stricter@example.com", callback_for(callback, better_auth.default))
        assert (refused.status_code, taken.status_code) == (403, real_status), callback
    real.close()
