"""The real Better Auth (npm `better-auth`, pinned in tests/better_auth/package-lock.json).

`better_auth` starts tests/better_auth/server.mjs under Node on 127.0.0.1 for the test session:
two auth servers sharing the test secret, one with the JWT plugin as installed and one with the
plugin's `audience` set to the API (see server.mjs). Tests sign users up through its real HTTP
API and get every token as Better Auth itself mints it. Without Node or `node_modules` the tests
skip locally and FAIL under `CI=true`, where `.ci/run` must have run `npm ci`.
"""

import json
import os
import select
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from tests.support.helpers import SECRET, unavailable

HARNESS = Path(__file__).parents[1] / "better_auth"
START_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class SignedUp:
    """A user who just signed up, with the tokens Better Auth gave them."""

    user_id: str
    email: str
    plugin_token: str  # GET /api/auth/token (the JWT plugin; EdDSA, checked against the JWKS)
    cookie_cache_token: str  # the `better-auth.session_data` cookie (cookie cache, HS256)
    verification_token: str  # what Better Auth mailed for email verification (HS256)


@dataclass(frozen=True)
class BetterAuth:
    default: str  # base URL of the server with the JWT plugin as installed
    audience: str  # base URL of the server whose plugin sets `aud` to `api_audience`
    api_audience: str

    def sign_up(self, base_url: str) -> SignedUp:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        with httpx.Client(base_url=base_url, headers={"Origin": base_url}, timeout=10) as client:
            created = client.post(
                "/api/auth/sign-up/email",
                json={"email": email, "password": "correct horse battery", "name": "Test"},
            )
            created.raise_for_status()
            plugin_token = client.get("/api/auth/token").json()["token"]
            cookie_cache = client.cookies["better-auth.session_data"]
            mailed = client.get("/test/verification-token", params={"email": email})
            mailed.raise_for_status()
        return SignedUp(
            created.json()["user"]["id"],
            email,
            plugin_token,
            cookie_cache,
            mailed.json()["token"],
        )

    def email_verification_token(
        self, email: str, user_id: str, *, update_to: str | None = None, request_type: str = ""
    ) -> str:
        """A token by Better Auth's own `createEmailVerificationToken` (change-email kinds too)."""
        body = {
            "email": email,
            "userId": user_id,
            "updateTo": update_to,
            "requestType": request_type,
        }
        response = httpx.post(f"{self.default}/test/email-verification-token", json=body)
        response.raise_for_status()
        token: str = response.json()["token"]
        return token


def _unavailable(reason: str) -> NoReturn:
    unavailable(f"{reason}: run `npm ci --prefix tests/better_auth` (Node 20+)")


@pytest.fixture(scope="session")
def better_auth() -> Iterator[BetterAuth]:
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed")
    if not (HARNESS / "node_modules" / "better-auth").is_dir():
        _unavailable("tests/better_auth/node_modules is missing")
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(
            [str(node), "server.mjs"],
            cwd=HARNESS,
            env={**os.environ, "BETTER_AUTH_SECRET": SECRET},
            stdin=subprocess.PIPE,  # closed when this process dies: the server then stops too
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            assert process.stdout is not None
            # The server prints its URLs once it listens (or exits, and readline returns "").
            ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_SECONDS)
            line = process.stdout.readline() if ready else ""
            if not line:
                errors.seek(0)
                pytest.fail(f"tests/better_auth/server.mjs did not start: {errors.read()[-2000:]}")
            urls = json.loads(line)
            yield BetterAuth(urls["default"], urls["audience"], urls["apiAudience"])
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
