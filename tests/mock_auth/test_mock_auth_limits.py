"""mock_auth bounds what a client can make it hold and mint: request bodies and the user fields
that go into every token and cookie (A-9). Checked on mock_auth, and beside the real library:
the bounds refuse nothing with which a real Better Auth account still works."""

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.better_auth import BetterAuth, better_auth  # noqa: F401 - the fixture

MakeClient = Callable[..., TestClient]
PASSWORD = "correct horse battery"
TOO_LARGE = {"code": "PAYLOAD_TOO_LARGE", "message": "Request body too large"}
# At the bounds, in the characters that cost the most bytes in a token (4 in UTF-8).
LONGEST_NAME = "\U0001f600" * 1000
LONGEST_IMAGE = "https://images.example/" + "a" * (2048 - 23)


def sign_up(client: httpx.Client | TestClient, **fields: Any) -> httpx.Response:
    body = {"name": "A", "email": "alice@example.com", "password": PASSWORD} | fields
    return client.post("/api/auth/sign-up/email", json=body)


def signed_in(client: TestClient, email: str = "alice@example.com") -> bool:
    body = {"email": email, "password": PASSWORD}
    return client.post("/api/auth/sign-in/email", json=body).status_code == 200


@pytest.mark.spec("A-9", "SC-009", "EC-2")
def test_a_5_mib_name_is_413_and_creates_nothing(client: TestClient) -> None:
    response = sign_up(client, name="N" * (5 * 1024 * 1024))

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert "set-cookie" not in response.headers
    assert not signed_in(client)


@pytest.mark.spec("A-9", "SC-009", "EC-2")
def test_a_streamed_body_over_64_kib_is_413_too(client: TestClient) -> None:
    """No Content-Length to refuse it by (chunked): counted as it arrives."""

    def chunks() -> Iterator[bytes]:
        yield b'{"email": "alice@example.com", "password": "correct horse battery", "name": "'
        for _ in range(65):
            yield b"N" * 1024
        yield b'"}'

    response = client.post(
        "/api/auth/sign-up/email", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert not signed_in(client)


@pytest.mark.spec("A-9", "SC-009")
@pytest.mark.parametrize(
    ("field", "value"),
    [("name", LONGEST_NAME + "x"), ("image", LONGEST_IMAGE + "x")],
)
def test_a_name_or_image_past_its_bound_is_400(client: TestClient, field: str, value: str) -> None:
    response = sign_up(client, **{field: value})

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert f"[body.{field}]" in response.json()["message"]
    assert value not in response.text
    assert not signed_in(client)


@pytest.mark.spec("A-9", "SC-008")
def test_at_the_bounds_every_token_stays_small(make_client: MakeClient) -> None:
    """What goes into each token and cookie is bounded: all of them fit Node's 16 KiB request
    head (a 5 MiB name made a 6.8 MiB token)."""
    client = make_client(mock_auth_mode="eddsa", mock_auth_cookie_cache=True)

    created = sign_up(client, name=LONGEST_NAME, image=LONGEST_IMAGE)
    token = client.get("/api/auth/token")

    assert created.status_code == token.status_code == 200
    assert created.json()["user"]["name"] == LONGEST_NAME
    assert len(token.json()["token"]) < 16 * 1024
    assert sum(len(name) + len(value) for name, value in client.cookies.items()) < 16 * 1024


@pytest.mark.spec("A-9", "SC-008")
def test_the_bounds_refuse_no_account_the_real_better_auth_can_serve(
    make_client: MakeClient,
    better_auth: BetterAuth,  # noqa: F811
) -> None:
    """better-auth 1.7.25 bounds neither bodies nor these fields (better-call's Node adapter can
    limit bodies, `toNodeHandler` asks for no limit; `name` and `image` are plain strings). What
    bounds it is Node's 16 KiB request head: with the cookie cache, the user row rides in the
    cookies of every request, and past about 11 000 characters of name the account's next request
    is a 431. At mock_auth's bounds, the real account still works; past that point, the real one
    no longer does, and mock_auth refuses the sign-up instead."""
    mock = make_client(mock_auth_cookie_cache=True)
    real = httpx.Client(
        base_url=better_auth.default, headers={"Origin": better_auth.default}, timeout=30
    )
    at_bounds = {"name": LONGEST_NAME, "image": LONGEST_IMAGE}
    assert sign_up(real, email="bounds@example.com", **at_bounds).status_code == 200
    session = real.get("/api/auth/get-session")  # with every cookie the sign-up set
    assert session.status_code == 200
    assert session.json()["user"]["name"] == LONGEST_NAME
    assert sign_up(mock, email="bounds@example.com", **at_bounds).status_code == 200
    # Both tokens carry the name as UTF-8 bytes (JSON.stringify's), not as `\u` escapes.
    for client in (real, mock):
        payload = client.get("/api/auth/token").json()["token"].split(".")[1]
        assert LONGEST_NAME.encode() in base64.urlsafe_b64decode(payload + "==")

    real.cookies.clear()
    past = {"name": "N" * 12_000}
    assert sign_up(real, email="past@example.com", **past).status_code == 200
    assert real.get("/api/auth/get-session").status_code == 431  # the account is unusable
    assert sign_up(mock, email="past@example.com", **past).status_code == 400
    real.close()
