"""Helpers tests import: signed callers, token minting, direct database counts.

(Fixtures live in conftest.py; these are plain functions and classes, imported as
`from tests.support.helpers import ...`.)
"""

import os
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

SECRET = "test-secret-that-is-at-least-32-bytes-long"
AUTH_URL = "http://localhost:3000"

# The secret tokens are minted with: ours, or the target's in conformance mode
# (tests/plugins/conformance.py), where `None` means "not given": checks that mint are not
# applicable.
_signing_secret: str | None = SECRET


def use_signing_secret(secret: str | None) -> None:
    global _signing_secret
    _signing_secret = secret


def signing_secret() -> str:
    """The target's BETTER_AUTH_SECRET; skips the calling check when the run was given none."""
    if _signing_secret is None:
        pytest.skip("needs the secret: BETTER_AUTH_SECRET or --secret-file (mints its own tokens)")
    return _signing_secret


def unavailable(reason: str) -> NoReturn:
    """A tool a test needs is missing: skip locally, fail under `CI=true` (where CI must have
    installed it, and nothing that matters may be skipped)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must install it)")
    pytest.skip(reason)


def count_tasks(engine: Engine, user_id: str | None = None) -> int:
    query = "SELECT count(*) FROM task" + (" WHERE user_id = :u" if user_id else "")
    with engine.connect() as connection:
        return int(connection.execute(text(query), {"u": user_id}).scalar_one())


class FakeClock:
    """A clock that stands still until a test moves it (`clock.now += 30`), for code that takes a
    `clock=`: tests of time then never sleep. It starts at the current whole second, so tokens
    minted with the real time are fresh by it, and wall-clock tests can move it past their `exp`.
    """

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


# --- callers --------------------------------------------------------------------------------


def make_token(
    subject: str | None = "alice",
    *,
    secret: str | None = None,
    algorithm: str = "HS256",
    lifetime: int = 900,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """An HS256 token as a frontend mints it: `sub`, `iat`, `exp` (+ any extra claims).

    Signed with `secret`, by default the target's (see `signing_secret`).
    """
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now, "exp": now + lifetime}
    if subject is not None:
        payload["sub"] = subject
    payload.update(claims)
    key = secret if secret is not None else signing_secret()
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


@dataclass
class Caller:
    """A signed-in user as the frontend sees them: their id, token and task URLs."""

    id: str
    token: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.token = self.token or make_token(self.id)
        self.headers = {"Authorization": f"Bearer {self.token}"}

    @property
    def tasks(self) -> str:
        return f"/api/{self.id}/tasks"

    def task(self, task_id: int | str) -> str:
        return f"{self.tasks}/{task_id}"


def create(client: TestClient, caller: Caller, **body: Any) -> dict[str, Any]:
    """Create a task through the API and return its JSON (asserting the 201)."""
    response = client.post(caller.tasks, json={"title": "a task", **body}, headers=caller.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
