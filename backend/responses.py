"""Task JSON written straight from database rows: what the task routes return.

FastAPI would validate every returned row into the route's `response_model`, then serialise the
model: the largest single cost of a list after dependency resolution (loadtests/README.md). The
rows are already exactly `TaskPublic` (typed by the database, in its field order), so they are
dumped to JSON directly by pydantic-core, the serializer FastAPI itself ends in; the only work
the model's validator did, moving timestamps to UTC, is done here. Routes keep
`response_model=TaskPublic` for the OpenAPI document and return these `Response`s, which FastAPI
sends as they are. `tests/test_response_contract.py` pins the bytes to the model's own output.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json
from starlette.responses import Response

from backend.db import Row


class TaskJSONResponse(Response):
    media_type = "application/json"


def _utc(value: datetime) -> datetime:
    """psycopg2 hands back the session's time zone: UTC unless the server is set otherwise."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def task_fields(row: Row) -> dict[str, Any]:
    """The Task JSON object of SPEC.md for a row in `crud.PUBLIC_FIELDS` order."""
    return {
        "id": row[0],
        "user_id": row[1],
        "title": row[2],
        "description": row[3],
        "completed": row[4],
        "created_at": _utc(row[5]),
        "updated_at": _utc(row[6]),
    }


def task_response(
    row: Row, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> TaskJSONResponse:
    return TaskJSONResponse(to_json(task_fields(row)), status_code, headers)


def tasks_response(rows: Iterable[Row], headers: Mapping[str, str]) -> TaskJSONResponse:
    return TaskJSONResponse(to_json([task_fields(row) for row in rows]), 200, headers)
