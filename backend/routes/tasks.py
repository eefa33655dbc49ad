"""The locked Task API under `/api/{user_id}/tasks`: HTTP in, one `crud` call, HTTP out.

Handlers are `async def` and await each statement (`await crud.…(db, …)`): the driver runs it
without blocking the event loop (see `backend.db`).
Authentication and ownership come from `OwnedUserId` (401, then 403); everything after that is
scoped to that user. Task bodies are written straight from the rows (`backend.responses`); the
`response_model`s stay, for the OpenAPI document.
"""

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status
from pydantic import AfterValidator, BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema

from backend import crud
from backend.db import Row
from backend.dependencies import DatabaseDep, OwnedUserId
from backend.errors import ERROR_RESPONSES, NOT_FOUND
from backend.models import CompletionUpdate, TaskCreate, TaskPublic, TaskUpdate, storable_text
from backend.responses import TaskJSONResponse, task_response, tasks_response

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

TOTAL_COUNT_HEADER = {
    "description": "Number of matching tasks before paging",
    "schema": {"type": "integer"},
}
LOCATION_HEADER = {"description": "URL of the new task", "schema": {"type": "string"}}

MAX_ID = 2**63 - 1
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="Task id (64-bit, positive)")]


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


# Literal enums, not regex patterns: client generators turn them into literal unions (a Python
# `(?i)` pattern is not an ECMAScript regex, and broke zod schemas). Input is lower-cased first,
# so any case is still accepted; the schema lists the lower-case values.
StatusFilter = Annotated[
    Literal["all", "pending", "completed", "incomplete", "active", "todo", "done"],
    BeforeValidator(_lower),
]
SortKey = Annotated[
    Literal["created", "updated", "title", "created_at", "updated_at"], BeforeValidator(_lower)
]
SortOrder = Annotated[Literal["asc", "desc"], BeforeValidator(_lower)]
# Optional query values: `None` means "not sent", and is kept out of the schema, since a query
# string cannot carry a null (generated types would otherwise read `string | null`).
Absent = SkipJsonSchema[None]
Offset = Annotated[int, Field(ge=0, le=MAX_ID)]  # on the type: a union would lose the bounds
# Text PostgreSQL cannot compare (NUL, lone surrogates) is a field error like any other 422.
SearchText = Annotated[str, AfterValidator(storable_text)]
COMPLETED_BY_STATUS: dict[str, bool | None] = {
    "all": None,
    "pending": False,
    "incomplete": False,
    "active": False,
    "todo": False,
    "completed": True,
    "done": True,
}


async def list_query(
    status_: Annotated[
        StatusFilter | Absent,
        Query(
            alias="status",
            description="Any case; `incomplete`, `active`, `todo` = pending, `done` = completed",
        ),
    ] = None,
    completed: Annotated[bool | Absent, Query(description="Alias of status")] = None,
    search: Annotated[
        SearchText | Absent,
        Query(max_length=200, description="Title or description contains (any case)"),
    ] = None,
    q: Annotated[SearchText | Absent, Query(max_length=200, description="Alias of search")] = None,
    sort: Annotated[SortKey | Absent, Query(description="Any case")] = None,
    sort_by: Annotated[SortKey | Absent, Query(description="Alias of sort")] = None,
    order: Annotated[SortOrder | Absent, Query(description="Any case")] = None,
    sort_order: Annotated[SortOrder | Absent, Query(description="Alias of order")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[Offset | Absent, Query()] = None,
    skip: Annotated[Offset | Absent, Query(description="Alias of offset")] = None,
) -> crud.ListQuery:
    """Filter, search, sort and paging parameters, with the aliases frontends use (US-2.3).

    `async` because it does no I/O: a plain `def` would cost a thread-pool hop per list call.
    """
    if status_ is not None:
        completed = COMPLETED_BY_STATUS[status_]
    text = search if search is not None else q
    return crud.ListQuery(
        completed=completed,
        search=text or None,
        sort=(sort or sort_by or "created").removesuffix("_at"),
        descending=(order or sort_order or "desc") == "desc",
        limit=limit,
        offset=offset if offset is not None else (skip or 0),
    )


def _found(row: Row | None) -> Row:
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Task not found")
    return row


@router.get(
    "",
    response_model=list[TaskPublic],
    summary="List my tasks",
    operation_id="listTasks",
    responses={200: {"headers": {"X-Total-Count": TOTAL_COUNT_HEADER}}},
)
async def list_tasks(
    user_id: OwnedUserId,
    db: DatabaseDep,
    query: Annotated[crud.ListQuery, Depends(list_query)],
) -> TaskJSONResponse:
    """The caller's tasks, newest first by default; the total before paging is `X-Total-Count`."""
    rows, total = await crud.list_tasks(db, user_id, query)
    return tasks_response(rows, {"X-Total-Count": str(total)})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    summary="Create a task",
    operation_id="createTask",
    responses={201: {"headers": {"Location": LOCATION_HEADER}}},
)
async def create_task(user_id: OwnedUserId, task: TaskCreate, db: DatabaseDep) -> TaskJSONResponse:
    """The owner is always the token's user, whatever the body says."""
    row = await crud.create_task(db, user_id, task.title, task.description, task.completed)
    location = f"/api/{quote(user_id, safe='')}/tasks/{row[0]}"
    return task_response(row, status.HTTP_201_CREATED, {"Location": location})


@router.get(
    "/{task_id}",
    response_model=TaskPublic,
    responses=NOT_FOUND,
    summary="Get a task",
    operation_id="getTask",
)
async def get_task(user_id: OwnedUserId, task_id: TaskId, db: DatabaseDep) -> TaskJSONResponse:
    return task_response(_found(await crud.get_task(db, user_id, task_id)))


@router.put(
    "/{task_id}",
    response_model=TaskPublic,
    responses=NOT_FOUND,
    summary="Update a task",
    operation_id="updateTask",
)
@router.patch(
    "/{task_id}",
    response_model=TaskPublic,
    responses=NOT_FOUND,
    summary="Update a task (alias of PUT)",
    operation_id="patchTask",
)
async def update_task(
    user_id: OwnedUserId, task_id: TaskId, changes: TaskUpdate, db: DatabaseDep
) -> TaskJSONResponse:
    """Fields sent are changed, fields left out are kept; `updated_at` moves on any change."""
    values = changes.model_dump(exclude_unset=True)
    return task_response(_found(await crud.update_task(db, user_id, task_id, values)))


@router.patch(
    "/{task_id}/complete",
    response_model=TaskPublic,
    responses=NOT_FOUND,
    summary="Toggle completion",
    operation_id="toggleTask",
)
async def toggle_completion(
    user_id: OwnedUserId,
    task_id: TaskId,
    db: DatabaseDep,
    body: Annotated[CompletionUpdate | None, Body()] = None,
) -> TaskJSONResponse:
    """Flip `completed` atomically; a body `{"completed": bool}` sets it instead."""
    if body is None or body.completed is None:
        row = await crud.toggle_task(db, user_id, task_id)
    else:
        row = await crud.update_task(db, user_id, task_id, {"completed": body.completed})
    return task_response(_found(row))


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Delete a task",
    operation_id="deleteTask",
)
async def delete_task(user_id: OwnedUserId, task_id: TaskId, db: DatabaseDep) -> Response:
    _found(await crud.delete_task(db, user_id, task_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
