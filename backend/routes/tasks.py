"""The locked Task API under `/api/{user_id}/tasks`: HTTP in, one `crud` call, HTTP out.

Handlers are `async def` and run each statement with `await db.run(crud.…)`, on the database's
own threads, so the synchronous driver never blocks the event loop (see `backend.db.Database`).
Authentication and ownership come from `OwnedUserId` (401, then 403); everything after that is
scoped to that user. Task bodies are written straight from the rows (`backend.responses`); the
`response_model`s stay, for the OpenAPI document.
"""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status

from backend import crud
from backend.dependencies import DatabaseDep, OwnedUserId
from backend.errors import ERROR_RESPONSES, NOT_FOUND
from backend.models import CompletionUpdate, TaskCreate, TaskPublic, TaskUpdate, storable_text
from backend.responses import TaskJSONResponse, task_response, tasks_response

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

MAX_ID = 2**63 - 1
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="Task id (64-bit, positive)")]
SORT_PATTERN = r"(?i)^(created|updated|title|created_at|updated_at)$"
ORDER_PATTERN = r"(?i)^(asc|desc)$"


async def list_query(
    status_: Annotated[
        str | None,
        Query(alias="status", pattern=r"(?i)^(all|pending|completed)$", description="any case"),
    ] = None,
    completed: Annotated[bool | None, Query(description="Alias of status")] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="Title or description contains (any case)")
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Alias of search")] = None,
    sort: Annotated[str | None, Query(pattern=SORT_PATTERN)] = None,
    sort_by: Annotated[str | None, Query(pattern=SORT_PATTERN, description="Alias of sort")] = None,
    order: Annotated[str | None, Query(pattern=ORDER_PATTERN)] = None,
    sort_order: Annotated[
        str | None, Query(pattern=ORDER_PATTERN, description="Alias of order")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    skip: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Alias of offset")] = None,
) -> crud.ListQuery:
    """Filter, search, sort and paging parameters, with the aliases frontends use (US-2.3).

    `async` because it does no I/O: a plain `def` would cost a thread-pool hop per list call.
    """
    if status_ is not None:
        completed = {"all": None, "pending": False, "completed": True}[status_.lower()]
    text = search if search is not None else q
    if text:
        try:
            storable_text(text)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"search {exc}") from None
    return crud.ListQuery(
        completed=completed,
        search=text or None,
        sort=(sort or sort_by or "created").lower().removesuffix("_at"),
        descending=(order or sort_order or "desc").lower() == "desc",
        limit=limit,
        offset=offset if offset is not None else (skip or 0),
    )


def _found(row: crud.Row | None) -> crud.Row:
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Task not found")
    return row


@router.get(
    "",
    response_model=list[TaskPublic],
    summary="List my tasks",
    responses={200: {"headers": {"X-Total-Count": {"schema": {"type": "integer"}}}}},
)
async def list_tasks(
    user_id: OwnedUserId,
    db: DatabaseDep,
    query: Annotated[crud.ListQuery, Depends(list_query)],
) -> TaskJSONResponse:
    """The caller's tasks, newest first by default; the total before paging is `X-Total-Count`."""
    rows, total = await db.run(crud.list_tasks, user_id, query)
    return tasks_response(rows, {"X-Total-Count": str(total)})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    summary="Create a task",
    responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
async def create_task(user_id: OwnedUserId, task: TaskCreate, db: DatabaseDep) -> TaskJSONResponse:
    """The owner is always the token's user, whatever the body says."""
    row = await db.run(crud.create_task, user_id, task.title, task.description, task.completed)
    location = f"/api/{quote(user_id, safe='')}/tasks/{row[0]}"
    return task_response(row, status.HTTP_201_CREATED, {"Location": location})


@router.get("/{task_id}", response_model=TaskPublic, responses=NOT_FOUND, summary="Get a task")
async def get_task(user_id: OwnedUserId, task_id: TaskId, db: DatabaseDep) -> TaskJSONResponse:
    return task_response(_found(await db.run(crud.get_task, user_id, task_id)))


@router.put("/{task_id}", response_model=TaskPublic, responses=NOT_FOUND, summary="Update a task")
@router.patch(
    "/{task_id}",
    response_model=TaskPublic,
    responses=NOT_FOUND,
    summary="Update a task (alias of PUT)",
)
async def update_task(
    user_id: OwnedUserId, task_id: TaskId, changes: TaskUpdate, db: DatabaseDep
) -> TaskJSONResponse:
    """Fields sent are changed, fields left out are kept; `updated_at` moves on any change."""
    values = changes.model_dump(exclude_unset=True)
    return task_response(_found(await db.run(crud.update_task, user_id, task_id, values)))


@router.patch(
    "/{task_id}/complete",
    response_model=TaskPublic,
    responses=NOT_FOUND,
    summary="Toggle completion",
)
async def toggle_completion(
    user_id: OwnedUserId,
    task_id: TaskId,
    db: DatabaseDep,
    body: Annotated[CompletionUpdate | None, Body()] = None,
) -> TaskJSONResponse:
    """Flip `completed` atomically; a body `{"completed": bool}` sets it instead."""
    if body is None or body.completed is None:
        row = await db.run(crud.toggle_task, user_id, task_id)
    else:
        row = await db.run(crud.update_task, user_id, task_id, {"completed": body.completed})
    return task_response(_found(row))


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
    summary="Delete a task",
)
async def delete_task(user_id: OwnedUserId, task_id: TaskId, db: DatabaseDep) -> Response:
    _found(await db.run(crud.delete_task, user_id, task_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
