"""Task JSON written straight from database rows: what the task routes return.

FastAPI would validate every returned row into the route's `response_model`, then serialise the
model: the largest single cost of a list after dependency resolution (loadtests/README.md). The
rows are already exactly `TaskPublic` (typed by the database, in its field order), so they are
dumped to JSON directly by pydantic-core, the serializer FastAPI itself ends in; the only work
the model's validator did, moving timestamps to UTC, is done here. Routes keep
`response_model=TaskPublic` for the OpenAPI document and return these `Response`s, which FastAPI
sends as they are. `tests/test_response_contract.py` pins the bytes to the model's own output
(decisions/0003-rows-straight-to-json.md).
"""

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import to_json
from starlette.responses import Response

from backend.db import Row
from backend.models import utc


class TaskJSONResponse(Response):
    media_type = "application/json"


def task_fields(row: Row) -> dict[str, Any]:
    """The Task JSON object of SPEC.md for a row in `TASK_FIELDS` order.

    Written out rather than `dict(zip(TASK_FIELDS, row))`, which costs 2.5 times as much (0.77
    against 0.32 us a row: 45 us on a page of 100); tests/test_response_contract.py keeps the
    two in step, byte for byte."""
    return {
        "id": row[0],
        "user_id": row[1],
        "title": row[2],
        "description": row[3],
        "completed": row[4],
        "created_at": utc(row[5]),
        "updated_at": utc(row[6]),
    }


def task_response(
    row: Row, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> TaskJSONResponse:
    return TaskJSONResponse(to_json(task_fields(row)), status_code, headers)


def tasks_response(rows: Iterable[Row], headers: Mapping[str, str]) -> TaskJSONResponse:
    return TaskJSONResponse(to_json([task_fields(row) for row in rows]), 200, headers)
