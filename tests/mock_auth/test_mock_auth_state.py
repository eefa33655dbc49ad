"""With a state file, users and signing keys survive restarts and are shared with the CLI."""

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

SignUp = Callable[..., dict[str, Any]]
Verify = Callable[..., dict[str, Any]]


@pytest.mark.spec("A-9", "FR-002")
def test_users_and_keys_survive_a_restart(
    make_client: Callable[..., TestClient],
    sign_up: SignUp,
    verify_eddsa: Verify,
    password: str,
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "state" / "mock_auth.json"
    first = make_client(mock_auth_mode="eddsa", mock_auth_state_file=state_file)
    signed_up = sign_up(first)
    old_jwt = first.get("/api/auth/token").json()["token"]
    old_jwks = first.get("/api/auth/jwks").json()

    second = make_client(mock_auth_mode="eddsa", mock_auth_state_file=state_file)

    assert second.get("/api/auth/jwks").json() == old_jwks
    assert (
        verify_eddsa(old_jwt, second.get("/api/auth/jwks").json())["sub"]
        == (signed_up["user"]["id"])
    )
    signed_in = second.post(
        "/api/auth/sign-in/email", json={"email": "alice@example.com", "password": password}
    )
    assert signed_in.json()["user"] == signed_up["user"]
    # Sessions are memory-only: a restart signs everybody out.
    bearer = {"Authorization": f"Bearer {signed_up['token']}"}
    assert second.get("/api/auth/get-session", headers=bearer).text == "null"


@pytest.mark.spec("FR-017")
def test_state_file_is_private_and_holds_no_plain_password(
    make_client: Callable[..., TestClient], sign_up: SignUp, password: str, tmp_path: Path
) -> None:
    state_file = tmp_path / "mock_auth.json"
    sign_up(make_client(mock_auth_state_file=state_file))

    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert password not in state_file.read_text()
    (user,) = json.loads(state_file.read_text())["users"]
    salt, _, key = user["passwordHash"].partition(":")
    assert (len(salt), len(key)) == (32, 128)  # Better Auth's scrypt `salt:key` in hex
    assert list(tmp_path.iterdir()) == [state_file]  # no temp file left behind


@pytest.mark.spec("A-9")
def test_a_running_app_sees_users_written_by_another_process(
    make_client: Callable[..., TestClient], sign_up: SignUp, password: str, tmp_path: Path
) -> None:
    state_file = tmp_path / "mock_auth.json"
    running = make_client(mock_auth_state_file=state_file)
    sign_up(running, email="alice@example.com")

    other = make_client(mock_auth_state_file=state_file)
    sign_up(other, email="bob@example.com")

    duplicate = running.post(
        "/api/auth/sign-up/email",
        json={"name": "Bob", "email": "bob@example.com", "password": password},
    )
    assert duplicate.status_code == 422
    sign_up(running, email="carol@example.com")
    emails = {user["email"] for user in json.loads(state_file.read_text())["users"]}
    assert emails == {"alice@example.com", "bob@example.com", "carol@example.com"}
