"""Helpers tests import: signed callers, token minting, direct database counts.

(Fixtures live in conftest.py; these are plain functions and classes, importable as `helpers`.)
"""

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

SECRET = "test-secret-that-is-at-least-32-bytes-long"
AUTH_URL = "http://localhost:3000"


def count_tasks(engine: Engine, user_id: str | None = None) -> int:
    query = "SELECT count(*) FROM task" + (" WHERE user_id = :u" if user_id else "")
    with engine.connect() as connection:
        return int(connection.execute(text(query), {"u": user_id}).scalar_one())


# --- callers --------------------------------------------------------------------------------


def make_token(
    subject: str | None = "alice",
    *,
    secret: str = SECRET,
    algorithm: str = "HS256",
    lifetime: int = 900,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """An HS256 token as a frontend mints it: `sub`, `iat`, `exp` (+ any extra claims)."""
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now, "exp": now + lifetime}
    if subject is not None:
        payload["sub"] = subject
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm, headers=headers)


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
