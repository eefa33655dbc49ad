"""The locked Task API under `/api/{user_id}/tasks`: HTTP in, one `crud` call, HTTP out.

Handlers are `async def` and await each statement (`await crud.…(db, …)`): the driver runs it
without blocking the event loop (see `backend.db`).
Authentication and ownership come from `OwnedUserId` (401, then 403); everything after that is
scoped to that user. Task bodies are written straight from the rows (`backend.responses`); the
`response_model`s stay, for the OpenAPI document.
"""

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from backend import crud
from backend.db import Database, Row
from backend.dependencies import DatabaseDep, OwnedUserId
from backend.idempotency import InvalidKeyError, parse_key
from backend.models import CompletionUpdate, TaskCreate, TaskPublic, TaskUpdate, storable_text
from backend.openapi import (
    ERROR_RESPONSES,
    LOCATION_HEADER,
    NOT_FOUND,
    RETRY_AFTER_HEADER,
    TOTAL_COUNT_HEADER,
    ErrorResponse,
    ValidationErrorResponse,
)
from backend.responses import TaskJSONResponse, task_response, tasks_response

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=ERROR_RESPONSES)

IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENCY_KEY_PARAMETER = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "description": (
        "Makes the create safe to retry (IETF httpapi draft): a fresh key per task, the same key"
        ' on every retry of it. A structured-field string (`"…"`), or unquoted; 1-255'
        " printable ASCII characters. A retry with the same body is answered with the first"
        " create's status, body and `Location` (the task as it was created, even if changed or"
        " deleted since) and stores nothing; keys are per user and remembered at least 24 h."
    ),
    "schema": {"type": "string"},
}
IN_FLIGHT_RETRY_AFTER_SECONDS = 1

MAX_ID = 2**63 - 1


def _decimal_digits(value: object) -> object:
    """Text must be plain ASCII digits: pydantic, like `int()`, also reads `1_0`, `+1`, `1.0`
    and ` 1` as numbers, so a typo in a URL would silently name another page or task (EC-5)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise PydanticCustomError(
            "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
        )
    return value


# Before the int parsing, so the schema stays a plain integer (the OpenAPI document is unchanged).
DecimalDigits = BeforeValidator(_decimal_digits)
TaskId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="Task id (64-bit, positive)"), DecimalDigits
]


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
# The bounds on the type (a union would lose them); the digit check last, so it runs first.
Offset = Annotated[int, Field(ge=0, le=MAX_ID), DecimalDigits]
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


class ListParams(BaseModel):
    """The list's filter, search, sort and paging parameters, with the aliases frontends use
    (US-2.3). Unknown parameters are ignored; a repeated one counts by its last value."""

    status: Annotated[
        StatusFilter | Absent,
        Field(description="Any case; `incomplete`, `active`, `todo` = pending, `done` = completed"),
    ] = None
    completed: Annotated[bool | Absent, Field(description="Alias of status")] = None
    search: Annotated[
        SearchText | Absent,
        Field(max_length=200, description="Title or description contains (any case)"),
    ] = None
    q: Annotated[SearchText | Absent, Field(max_length=200, description="Alias of search")] = None
    sort: Annotated[SortKey | Absent, Field(description="Any case")] = None
    sort_by: Annotated[SortKey | Absent, Field(description="Alias of sort")] = None
    order: Annotated[SortOrder | Absent, Field(description="Any case")] = None
    sort_order: Annotated[SortOrder | Absent, Field(description="Alias of order")] = None
    limit: Annotated[int, Field(ge=1, le=1000), DecimalDigits] = 100
    offset: Offset | Absent = None
    skip: Annotated[Offset | Absent, Field(description="Alias of offset")] = None


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI `parameters` FastAPI writes for query parameters declared one by one."""
    schema = model.model_json_schema()
    parameters = []
    for name, field_schema in schema["properties"].items():
        if field_schema.get("default", ...) is None:  # "not sent", as `Absent` says
            del field_schema["default"]
        parameter = {"name": name, "in": "query", "required": False, "schema": field_schema}
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter)
    return parameters


async def list_query(request: Request) -> crud.ListQuery:
    """`ListParams` from the query string, validated in one pass.

    Declared one by one, FastAPI would validate the 11 parameters separately, introspecting each
    field again on every request (figures: loadtests/README.md). The errors are FastAPI's own
    (`RequestValidationError`, located in `query`), and the route documents the parameters as
    FastAPI would (`openapi_extra`). `async`: no I/O, no thread hop.
    """
    try:
        params = ListParams.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in errors]
        ) from None
    completed = params.completed
    if params.status is not None:
        completed = COMPLETED_BY_STATUS[params.status]
    text = params.search if params.search is not None else params.q
    return crud.ListQuery(
        completed=completed,
        search=text or None,
        sort=(params.sort or params.sort_by or "created").removesuffix("_at"),
        descending=(params.order or params.sort_order or "desc") == "desc",
        limit=params.limit,
        offset=params.offset if params.offset is not None else (params.skip or 0),
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
    openapi_extra={"parameters": _query_parameters(ListParams)},
)
async def list_tasks(
    user_id: OwnedUserId,
    db: DatabaseDep,
    query: Annotated[crud.ListQuery, Depends(list_query)],
) -> TaskJSONResponse:
    """The caller's tasks, newest first by default; the total before paging is `X-Total-Count`."""
    rows, total = await crud.list_tasks(db, user_id, query)
    return tasks_response(rows, {"X-Total-Count": str(total)})


def _key_error(message: str, kind: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": kind, "loc": ("header", IDEMPOTENCY_KEY), "msg": message}]
    )


def idempotency_key(request: Request) -> str | None:
    """The create's key, if it sent one; a malformed one is a 422 like any bad input."""
    values = request.headers.getlist(IDEMPOTENCY_KEY)
    if not values:
        return None
    if len(values) > 1:
        raise _key_error(f"send one {IDEMPOTENCY_KEY} header", "idempotency_key_invalid")
    try:
        return parse_key(values[0])
    except InvalidKeyError as invalid:
        raise _key_error(str(invalid), "idempotency_key_invalid") from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    summary="Create a task",
    operation_id="createTask",
    responses={
        201: {"headers": {"Location": LOCATION_HEADER}},
        409: {
            "model": ErrorResponse,
            "description": (
                f"Another create with this {IDEMPOTENCY_KEY} was in progress (it finished while"
                " this one waited): retry, same key and body, for its answer"
            ),
            "headers": {"Retry-After": RETRY_AFTER_HEADER},
        },
        422: {
            "model": ValidationErrorResponse,
            "description": (
                f"Invalid body or path, a malformed {IDEMPOTENCY_KEY}, or a key already used"
                " with another body"
            ),
        },
    },
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
)
async def create_task(
    user_id: OwnedUserId, task: TaskCreate, db: DatabaseDep, request: Request
) -> TaskJSONResponse:
    """The owner is always the token's user, whatever the body says. With an `Idempotency-Key`,
    a retry is answered with the first create's answer and stores nothing new."""
    key = idempotency_key(request)
    if key is None:
        row = await crud.create_task(db, user_id, task.title, task.description, task.completed)
    else:
        row = await _create_once(db, user_id, key, task)
    location = f"/api/{quote(user_id, safe='')}/tasks/{row[0]}"
    return task_response(row, status.HTTP_201_CREATED, {"Location": location})


async def _create_once(db: Database, user_id: str, key: str, task: TaskCreate) -> Row:
    try:
        return await crud.create_task_once(
            db, user_id, key, task.title, task.description, task.completed
        )
    except crud.KeyReusedError:
        raise _key_error(
            "already used with another body; send a new key for another task",
            "idempotency_key_reused",
        ) from None
    except crud.KeyInFlightError:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"Another create with this {IDEMPOTENCY_KEY} was in progress; retry shortly",
            headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
        ) from None


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
