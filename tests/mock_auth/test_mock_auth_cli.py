"""`python -m mock_auth token` mints tokens that verify, and broken ones that must not."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import uvicorn
from fastapi.testclient import TestClient

import mock_auth
from mock_auth import cli
from mock_auth.tokens import BROKEN_KINDS

SignUp = Callable[..., dict[str, Any]]
Verify = Callable[..., dict[str, Any]]


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secret: str) -> None:
    """The CLI reads the environment: give it the test secret and nothing else."""
    for name in list(os.environ):
        if name.startswith(("MOCK_AUTH_", "BETTER_AUTH_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BETTER_AUTH_SECRET", secret)
    monkeypatch.chdir(tmp_path)  # no stray .env


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out.strip()


@pytest.mark.spec("A-2", "FR-002")
def test_token_without_state_file_has_a_stable_id(
    capsys: pytest.CaptureFixture[str], verify_hs256: Verify
) -> None:
    first = verify_hs256(run(capsys, "token", "--email", "Alice@Example.com"))
    again = verify_hs256(run(capsys, "token", "--email", "alice@example.com", "--lifetime", "60"))

    assert first["sub"] == again["sub"]
    assert len(first["sub"]) == 32
    assert first["sub"].isalnum()
    assert (first["email"], first["name"]) == ("alice@example.com", "alice")
    assert again["exp"] - again["iat"] == 60
    other = verify_hs256(run(capsys, "token", "--email", "bob@example.com", "--name", "Bob"))
    assert other["sub"] != first["sub"]
    assert other["name"] == "Bob"


@pytest.mark.spec("A-2")
def test_json_output(capsys: pytest.CaptureFixture[str], verify_hs256: Verify) -> None:
    printed = json.loads(run(capsys, "token", "--email", "alice@example.com", "--json"))

    assert set(printed) == {"token", "user_id"}
    assert verify_hs256(printed["token"])["sub"] == printed["user_id"]


@pytest.mark.spec("A-9", "FR-002")
def test_token_with_state_file_uses_the_server_user_and_key(
    make_client: Callable[..., TestClient],
    sign_up: SignUp,
    verify_eddsa: Verify,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "mock_auth.json"
    server = make_client(mock_auth_mode="eddsa", mock_auth_state_file=state_file)
    user = sign_up(server)["user"]

    argv = ["--mode", "eddsa", "--state-file", str(state_file)]
    token = run(capsys, "token", "--email", "alice@example.com", *argv)

    claims = verify_eddsa(token, server.get("/api/auth/jwks").json())
    assert claims["sub"] == user["id"]
    assert claims["name"] == "Alice"


@pytest.mark.spec("A-9")
def test_new_user_in_state_file_keeps_its_id(
    capsys: pytest.CaptureFixture[str], verify_hs256: Verify, tmp_path: Path
) -> None:
    argv = ["token", "--email", "dave@example.com", "--state-file", str(tmp_path / "s.json")]

    ids = {verify_hs256(run(capsys, *argv))["sub"] for _ in range(2)}

    assert len(ids) == 1


@pytest.mark.spec("FR-002")
def test_eddsa_needs_a_state_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "--email", "alice@example.com", "--mode", "eddsa"]) == 2
    assert "--state-file" in capsys.readouterr().err


@pytest.mark.spec("EC-6", "FR-003")
@pytest.mark.parametrize("broken", BROKEN_KINDS)
@pytest.mark.parametrize("mode", ["hs256", "eddsa"])
def test_broken_tokens_fail_verification(
    make_client: Callable[..., TestClient],
    verify_hs256: Verify,
    verify_eddsa: Verify,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mode: str,
    broken: str,
) -> None:
    state_file = tmp_path / "mock_auth.json"
    argv = ["token", "--email", "eve@example.com", "--mode", mode, "--state-file", str(state_file)]
    jwks = make_client(mock_auth_state_file=state_file).get("/api/auth/jwks").json()

    def verify(token: str) -> dict[str, Any]:
        return verify_hs256(token) if mode == "hs256" else verify_eddsa(token, jwks)

    assert verify(run(capsys, *argv))["email"] == "eve@example.com"  # the control
    with pytest.raises(jwt.InvalidTokenError):
        verify(run(capsys, *argv, "--broken", broken))


@pytest.mark.spec("EC-6")
def test_broken_no_sub_leaves_no_fallback_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["--mode", "eddsa", "--state-file", str(tmp_path / "s.json"), "--broken", "no-sub"]

    token = run(capsys, "token", "--email", "eve@example.com", *argv)

    claims = jwt.decode(token, options={"verify_signature": False})
    assert not {"sub", "id", "user_id", "userId"} & set(claims)


@pytest.mark.spec("FR-017")
def test_missing_secret_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BETTER_AUTH_SECRET")

    assert cli.main(["token", "--email", "alice@example.com"]) == 2
    assert "BETTER_AUTH_SECRET" in capsys.readouterr().err


@pytest.mark.spec("FR-017")
def test_invalid_setting_does_not_echo_the_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], secret: str
) -> None:
    monkeypatch.setenv("MOCK_AUTH_JWT_LIFETIME_SECONDS", "-1")

    assert cli.main(["token", "--email", "alice@example.com"]) == 2
    captured = capsys.readouterr()
    assert "MOCK_AUTH_JWT_LIFETIME_SECONDS" in captured.err
    assert secret not in captured.err + captured.out


@pytest.mark.spec("SC-008")
def test_serve_listens_on_the_port_of_better_auth_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("BETTER_AUTH_URL", "http://localhost:4321")

    assert cli.main(["serve", "--mode", "eddsa"]) == 0
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "3999"]) == 0  # noqa: S104

    assert calls == [{"host": "127.0.0.1", "port": 4321}, {"host": "0.0.0.0", "port": 3999}]  # noqa: S104
    assert "eddsa tokens" in capsys.readouterr().err


@pytest.mark.spec("A-2", "FR-002")
def test_python_dash_m_in_a_subprocess(tmp_path: Path, secret: str, verify_hs256: Verify) -> None:
    project_root = Path(mock_auth.__file__).resolve().parents[1]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(project_root)}
    env["BETTER_AUTH_SECRET"] = secret

    result = subprocess.run(
        [sys.executable, "-m", "mock_auth", "token", "--email", "sub@example.com", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    printed = json.loads(result.stdout)
    assert verify_hs256(printed["token"])["sub"] == printed["user_id"]
