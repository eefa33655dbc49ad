"""Deliberately broken copies of our backend, for proving that conformance mode catches them.

`uvicorn tests.plugins.broken_backend:create_app --factory` with `BROKEN=` a comma-separated
list of:

- `unscoped-list` — the list answers every user's tasks (FR-006/FR-008/US-2.1/SC-002 broken),
- `accept-bad-signature` — a token whose signature does not verify is re-signed before the real
  app sees it, so forged and `alg: none` tokens pass (FR-002/EC-6 broken),
- `patch-only` — PUT on a task answers 405; only PATCH updates (US-3/FR-010 broken),

the way surveyed third-party backends break the contract. The real app (settings from the
environment, like `python -m backend`) does everything else. A test fixture, not a product.
"""

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import jwt
from sqlalchemy import create_engine, text

from backend.config import get_settings
from backend.db import resolve_database_url
from backend.main import create_app as create_real_app

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LIST = re.compile(r"^/api/[^/]+/tasks/?$")
ITEM = re.compile(r"^/api/[^/]+/tasks/\d+/?$")
ALL_TASKS = text(
    "SELECT id, user_id, title, description, completed, created_at, updated_at FROM task "
    "ORDER BY created_at DESC, id DESC LIMIT 100"
)


async def _json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]]) -> None:
    content = json.dumps(body).encode()
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def unscoped_list(app: ASGIApp) -> ASGIApp:
    """The real app authenticates and authorises the list; the body is every user's tasks."""
    engine = create_engine(resolve_database_url(get_settings()))  # Neon's, or the embedded one

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not LIST.match(scope["path"]):
            await app(scope, receive, send)
            return
        started: Message = {}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif started["status"] != 200:
                await send(started)
                await send(message)

        await app(scope, receive, capture)
        if started.get("status") == 200:
            with engine.connect() as connection:
                rows = connection.execute(ALL_TASKS).mappings().all()
            tasks = [
                {**row, "created_at": row["created_at"].isoformat(),
                 "updated_at": row["updated_at"].isoformat()}
                for row in rows
            ]  # fmt: skip
            headers = [(k, v) for k, v in started["headers"] if k.lower() != b"x-total-count"]
            headers.append((b"x-total-count", str(len(tasks)).encode()))
            await _json(send, 200, tasks, headers)

    return wrapped


def accept_bad_signature(app: ASGIApp) -> ASGIApp:
    """Tokens failing signature or algorithm checks are re-signed with the secret (claims kept)."""
    secret = get_settings().better_auth_secret.get_secret_value()

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = []
            for name, value in scope["headers"]:
                scheme, _, token = value.decode("latin-1").partition(" ")
                if (
                    name == b"authorization"
                    and scheme.lower() == "bearer"
                    and token.count(".") == 2
                ):
                    try:
                        jwt.decode(token, secret, ["HS256"], options={"verify_exp": False})
                    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
                        claims = jwt.decode(token, options={"verify_signature": False})
                        value = f"Bearer {jwt.encode(claims, secret, 'HS256')}".encode()
                    except jwt.InvalidTokenError:
                        pass
                headers.append((name, value))
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return wrapped


def patch_only(app: ASGIApp) -> ASGIApp:
    """PUT on a task is 405: updates only through PATCH."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT" and ITEM.match(scope["path"]):
            await _json(send, 405, {"detail": "Method Not Allowed"}, [])
            return
        await app(scope, receive, send)

    return wrapped


BREAKS: dict[str, Callable[[ASGIApp], ASGIApp]] = {
    "unscoped-list": unscoped_list,
    "accept-bad-signature": accept_bad_signature,
    "patch-only": patch_only,
}


def create_app() -> ASGIApp:
    """The real app wrapped in the breaks `BROKEN` names (lifespan messages pass through)."""
    app: ASGIApp = create_real_app()
    for name in filter(None, os.environ.get("BROKEN", "").split(",")):
        app = BREAKS[name.strip()](app)
    return app
