"""The baseline's routes: plain Starlette, psycopg 3's async pool, PyJWT; one statement each.

The same endpoints and answers as the real API where `loadtests/locustfile.py` looks (Task JSON
of 7 fields, `X-Total-Count`, `Location`, 201/204/404, 401 without a valid token, 403 for another
user's path), and nothing else: no validation beyond what a bad body needs to not crash, no
limits, no request log, no CORS, no rate limit, no deadline. Tokens: HS256 with the shared
secret, verified once per token and then cached until `exp`, as the real API does.
"""

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import jwt
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FIELDS = "id, user_id, title, description, completed, created_at, updated_at"
LIST = (
    f"SELECT {FIELDS}, (SELECT count(*) FROM task WHERE user_id = %(owner)s) FROM task"  # noqa: S608
    " WHERE user_id = %(owner)s ORDER BY created_at DESC, id DESC"
    " LIMIT %(limit)s OFFSET %(offset)s"
)
GET = f"SELECT {FIELDS} FROM task WHERE id = %(id)s AND user_id = %(owner)s"  # noqa: S608
INSERT = (
    "INSERT INTO task (user_id, title, description, completed)"  # noqa: S608
    f" VALUES (%(owner)s, %(title)s, %(description)s, %(completed)s) RETURNING {FIELDS}"
)
TOGGLE = (
    "UPDATE task SET completed = NOT completed, updated_at = now()"  # noqa: S608
    f" WHERE id = %(id)s AND user_id = %(owner)s RETURNING {FIELDS}"
)
DELETE = "DELETE FROM task WHERE id = %(id)s AND user_id = %(owner)s RETURNING id"
UPDATABLE = ("title", "description", "completed")
# Statements are built from the constants above only; values are always bound parameters.

SECRET = os.environ.get("BETTER_AUTH_SECRET", "")
POOL_SIZE = 40  # the real API's pool: 20 connections + 20 overflow per worker
_verified: dict[str, tuple[str, float]] = {}  # token -> (sub, exp)


def _url() -> str:
    """`NEON_DATABASE_URL` as libpq reads it (no SQLAlchemy `+driver`)."""
    url = os.environ["NEON_DATABASE_URL"]
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status)


def _caller(request: Request) -> str | JSONResponse:
    """The path's user when the bearer token proves it; else the 401 or 403 to answer."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _error(401, "Not authenticated")
    now = time.time()
    cached = _verified.get(token)
    if cached is None or now >= cached[1]:
        try:
            claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            return _error(401, "Invalid token")
        cached = (str(claims.get("sub", "")), float(claims.get("exp", now + 60)))
        _verified[token] = cached
    if cached[0] != request.path_params["user_id"]:
        return _error(403, "Not your tasks")
    return cached[0]


def _task(row: TupleRow) -> dict[str, Any]:
    created: datetime = row[5]
    updated: datetime = row[6]
    return {
        "id": row[0],
        "user_id": row[1],
        "title": row[2],
        "description": row[3],
        "completed": row[4],
        "created_at": created.isoformat(),
        "updated_at": updated.isoformat(),
    }


async def _one(request: Request, sql: str, params: dict[str, Any]) -> TupleRow | None:
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as connection:
        cursor = await connection.execute(sql, params)
        return await cursor.fetchone()


async def list_tasks(request: Request) -> Response:
    owner = _caller(request)
    if isinstance(owner, Response):
        return owner
    query = request.query_params
    params = {
        "owner": owner,
        "limit": int(query.get("limit", "100")),
        "offset": int(query.get("offset", "0")),
    }
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as connection:
        cursor = await connection.execute(LIST, params)
        rows = await cursor.fetchall()
    total = rows[0][7] if rows else 0
    return JSONResponse([_task(row) for row in rows], headers={"X-Total-Count": str(total)})


async def create_task(request: Request) -> Response:
    owner = _caller(request)
    if isinstance(owner, Response):
        return owner
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("title"), str):
        return _error(422, "title required")
    row = await _one(
        request,
        INSERT,
        {
            "owner": owner,
            "title": body["title"],
            "description": body.get("description"),
            "completed": bool(body.get("completed", False)),
        },
    )
    assert row is not None
    return JSONResponse(_task(row), 201, headers={"Location": f"/api/{owner}/tasks/{row[0]}"})


async def get_task(request: Request) -> Response:
    owner = _caller(request)
    if isinstance(owner, Response):
        return owner
    row = await _one(request, GET, {"id": request.path_params["task_id"], "owner": owner})
    return _error(404, "Task not found") if row is None else JSONResponse(_task(row))


async def update_task(request: Request) -> Response:
    owner = _caller(request)
    if isinstance(owner, Response):
        return owner
    body = await request.json()
    if not isinstance(body, dict):
        return _error(422, "object required")
    fields = [name for name in UPDATABLE if name in body]
    assignments = "".join(f"{name} = %({name})s, " for name in fields)
    sql = (
        f"UPDATE task SET {assignments}updated_at = now()"  # noqa: S608 - names from UPDATABLE
        f" WHERE id = %(id)s AND user_id = %(owner)s RETURNING {FIELDS}"
    )
    params = {name: body[name] for name in fields}
    params |= {"id": request.path_params["task_id"], "owner": owner}
    row = await _one(request, sql, params)
    return _error(404, "Task not found") if row is None else JSONResponse(_task(row))


async def toggle_task(request: Request) -> Response:
    owner = _caller(request)
    if isinstance(owner, Response):
        return owner
    row = await _one(request, TOGGLE, {"id": request.path_params["task_id"], "owner": owner})
    return _error(404, "Task not found") if row is None else JSONResponse(_task(row))


async def delete_task(request: Request) -> Response:
    owner = _caller(request)
    if isinstance(owner, Response):
        return owner
    row = await _one(request, DELETE, {"id": request.path_params["task_id"], "owner": owner})
    return _error(404, "Task not found") if row is None else Response(status_code=204)


async def health(request: Request) -> Response:
    row = await _one(request, "SELECT 1", {})
    return JSONResponse({"status": "ok" if row else "unavailable"})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    pool = AsyncConnectionPool(
        _url(), min_size=1, max_size=POOL_SIZE, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


TASKS = "/api/{user_id}/tasks"
TASK = TASKS + "/{task_id:int}"
app = Starlette(
    routes=[
        Route("/health", health, methods=["GET"]),
        Route(TASKS, list_tasks, methods=["GET"]),
        Route(TASKS, create_task, methods=["POST"]),
        Route(TASK, get_task, methods=["GET"]),
        Route(TASK, update_task, methods=["PUT", "PATCH"]),
        Route(TASK, delete_task, methods=["DELETE"]),
        Route(TASK + "/complete", toggle_task, methods=["PATCH"]),
    ],
    lifespan=lifespan,
)
