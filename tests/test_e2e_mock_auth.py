"""End to end over real HTTP: sign up with mock_auth, then use every task endpoint of the backend.

Three processes on loopback: mock_auth in `eddsa` mode (JWT plugin tokens, JWKS), mock_auth in
`hs256` mode (frontend-minted style tokens) and the backend, whose BETTER_AUTH_URL is the eddsa
issuer (its origin is the expected `iss`/`aud`, its JWKS the keys); HS256 tokens need only the
shared secret. Nothing is mocked: the backend fetches the JWKS from the running mock_auth.
"""

import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest
from sqlalchemy.engine import URL

from devtools.servers import backend_server, free_port, mock_auth_server, running
from tests.support.helpers import SECRET

PASSWORD = "correct horse battery staple"
MODES = ("hs256", "eddsa")


@pytest.fixture(scope="module")
def servers(
    database_url: URL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Base URLs of the running backend and the mock_auth of each mode."""
    state_dir = tmp_path_factory.mktemp("mock_auth")
    auth_urls = {mode: f"http://127.0.0.1:{free_port()}" for mode in MODES}
    auths = [
        mock_auth_server(
            {
                "BETTER_AUTH_SECRET": SECRET,
                "BETTER_AUTH_URL": url,
                "MOCK_AUTH_MODE": mode,
                "MOCK_AUTH_STATE_FILE": str(state_dir / f"{mode}.json"),
            },
            port=int(url.rpartition(":")[2]),
        )
        for mode, url in auth_urls.items()
    ]
    backend = backend_server(
        {
            "BETTER_AUTH_SECRET": SECRET,
            "BETTER_AUTH_URL": auth_urls["eddsa"],
            "NEON_DATABASE_URL": database_url.render_as_string(hide_password=False),
            "MIGRATE_ON_STARTUP": "false",
            "RATE_LIMIT_PER_MINUTE": "0",
            "BETTER_AUTH_SESSION_LOOKUP": "false",
        }
    )
    with running(*auths, backend):
        yield {"backend": backend.url, **auth_urls}


def sign_up(auth_url: str) -> tuple[str, str, str]:
    """A new user through mock_auth's HTTP API: (user id, JWT from /token, JWT from get-session)."""
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=auth_url, timeout=5) as auth:
        signed_up = auth.post(
            "/api/auth/sign-up/email", json={"name": "E2E", "email": email, "password": PASSWORD}
        )
        assert signed_up.status_code == 200, signed_up.text
        # The bearer plugin's header: the signed, percent-encoded session cookie value.
        session = {"Authorization": f"Bearer {signed_up.headers['set-auth-token']}"}
        token = auth.get("/api/auth/token", headers=session)
        assert token.status_code == 200, token.text
        got_session = auth.get("/api/auth/get-session", headers=session)
    return (
        signed_up.json()["user"]["id"],
        token.json()["token"],
        got_session.headers["set-auth-jwt"],
    )


@pytest.mark.spec(
    "SC-008", "SC-005", "FR-001", "FR-002", "FR-005", "FR-012", "A-2",
    "US-1.1", "US-2.1", "US-3", "US-4", "US-5", "US-6",
)  # fmt: skip
@pytest.mark.parametrize("mode", MODES)
def test_signed_up_user_uses_every_task_endpoint(servers: dict[str, str], mode: str) -> None:
    user_id, token, session_jwt = sign_up(servers[mode])
    expected_alg = "EdDSA" if mode == "eddsa" else "HS256"
    assert jwt.get_unverified_header(token)["alg"] == expected_alg
    tasks = f"/api/{user_id}/tasks"

    with httpx.Client(
        base_url=servers["backend"], headers={"Authorization": f"Bearer {token}"}, timeout=5
    ) as api:
        created = api.post(tasks, json={"title": "End to end", "description": "over HTTP"})
        assert created.status_code == 201, created.text
        task = created.json()
        one = f"{tasks}/{task['id']}"
        assert created.headers["Location"] == one
        assert task["user_id"] == user_id

        assert api.get(tasks).json() == [task]
        assert api.get(one).json() == task

        updated = api.put(one, json={"title": "Renamed"})
        assert updated.status_code == 200, updated.text
        assert updated.json()["title"] == "Renamed"
        assert updated.json()["description"] == "over HTTP"

        patched = api.patch(one, json={"description": "patched"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["title"] == "Renamed"
        assert patched.json()["description"] == "patched"

        toggled = api.patch(f"{one}/complete")
        assert toggled.status_code == 200, toggled.text
        assert toggled.json()["completed"] is True

        other_jwt = {"Authorization": f"Bearer {session_jwt}"}  # get-session's set-auth-jwt
        assert api.get(one, headers=other_jwt).json()["completed"] is True

        deleted = api.delete(one)
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert api.get(one).status_code == 404
        assert api.get(tasks).json() == []


@pytest.mark.spec("FR-005", "SC-002", "SC-008")
@pytest.mark.parametrize("mode", MODES)
def test_another_users_url_is_403(servers: dict[str, str], mode: str) -> None:
    alice_id, alice_token, _ = sign_up(servers[mode])
    _, bob_token, _ = sign_up(servers[mode])

    with httpx.Client(base_url=servers["backend"], timeout=5) as api:
        created = api.post(
            f"/api/{alice_id}/tasks",
            json={"title": "Alice's"},
            headers={"Authorization": f"Bearer {alice_token}"},
        )
        assert created.status_code == 201, created.text
        bob = {"Authorization": f"Bearer {bob_token}"}
        task = f"/api/{alice_id}/tasks/{created.json()['id']}"

        assert api.get(f"/api/{alice_id}/tasks", headers=bob).status_code == 403
        assert api.get(task, headers=bob).status_code == 403
        assert api.delete(task, headers=bob).status_code == 403
        assert api.get(task, headers={"Authorization": f"Bearer {alice_token}"}).status_code == 200
