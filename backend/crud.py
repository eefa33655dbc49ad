"""Every SQL statement the API runs, one per request, each built once and reused.

Statements are SQLAlchemy Core on the SQLModel `task` table, compiled once (module constants, or
cached per query shape) and executed with bound parameters: measured here, an ORM `Session` round
costs about twice the CPU of the same Core statement, and CPU is what caps requests per second.
Ownership is part of every `WHERE`, and writes return the row with `RETURNING`, so nothing is
read before it is written (no lost toggles) and no request can touch another user's row. Rows
come back as tuples in `TaskPublic`'s field order (`PUBLIC_FIELDS`), ready to serialise.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Engine,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)

from backend.models import Task

task: Table = Task.__table__  # type: ignore[attr-defined]

PUBLIC_FIELDS = ("id", "user_id", "title", "description", "completed", "created_at", "updated_at")
_public = [task.c[name] for name in PUBLIC_FIELDS]

SORT_COLUMNS = {"created": task.c.created_at, "updated": task.c.updated_at, "title": task.c.title}
UPDATABLE = ("title", "description", "completed")

Row = tuple[Any, ...]
"""A task as `PUBLIC_FIELDS` (a list row carries its total after them)."""


@dataclass(frozen=True)
class ListQuery:
    """What the list endpoint was asked for, aliases already resolved."""

    completed: bool | None = None
    search: str | None = None
    sort: str = "created"
    descending: bool = True
    limit: int = 100
    offset: int = 0


_owned = (task.c.id == bindparam("task_id"), task.c.user_id == bindparam("owner"))
_GET = select(*_public).where(*_owned)
_DELETE = delete(task).where(*_owned).returning(task.c.id)
_TOGGLE = (
    update(task)
    .where(*_owned)
    .values(completed=not_(task.c.completed), updated_at=func.now())
    .returning(*_public)
)
_INSERT = (
    insert(task)
    .values(
        user_id=bindparam("owner"),
        title=bindparam("new_title"),
        description=bindparam("new_description"),
        completed=bindparam("new_completed"),
    )
    .returning(*_public)
)


@lru_cache
def _update_statement(fields: frozenset[str]) -> Any:
    return (
        update(task)
        .where(*_owned)
        .values({**{name: bindparam(f"new_{name}") for name in fields}, "updated_at": func.now()})
        .returning(*_public)
    )


@lru_cache
def _list_statement(
    by_completion: bool, searching: bool, sort: str, descending: bool
) -> Select[Any]:
    conditions = [task.c.user_id == bindparam("owner")]
    if by_completion:
        conditions.append(task.c.completed == bindparam("completed"))
    if searching:
        pattern = bindparam("pattern", type_=String())
        conditions.append(
            or_(
                task.c.title.ilike(pattern, escape="\\"),
                task.c.description.ilike(pattern, escape="\\"),
            )
        )
    column = SORT_COLUMNS[sort]
    ordering = (column.desc(), task.c.id.desc()) if descending else (column.asc(), task.c.id.asc())
    # The total rides along as a window count: the page and its total in one round trip.
    return (
        select(*_public, func.count().over().label("total"))
        .where(*conditions)
        .order_by(*ordering)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_tasks(engine: Engine, owner: str, query: ListQuery) -> tuple[Sequence[Row], int]:
    """One page of `owner`'s tasks and the total matching count."""
    params: dict[str, Any] = {"owner": owner, "limit": query.limit, "offset": query.offset}
    if query.completed is not None:
        params["completed"] = query.completed
    if query.search:
        params["pattern"] = _like_pattern(query.search)
    statement = _list_statement(
        query.completed is not None, bool(query.search), query.sort, query.descending
    )
    with engine.connect() as connection:
        rows = connection.execute(statement, params).all()
        if rows:
            return rows, rows[0][-1]
        if not query.offset:
            return rows, 0
        # Paged past the end: the window saw no rows, so count separately (rare).
        counted = statement.with_only_columns(func.count()).order_by(None).limit(None).offset(None)
        return rows, connection.execute(counted, params).scalar_one()


def create_task(
    engine: Engine, owner: str, title: str, description: str | None, completed: bool
) -> Row:
    params = {
        "owner": owner,
        "new_title": title,
        "new_description": description,
        "new_completed": completed,
    }
    with engine.connect() as connection:
        return connection.execute(_INSERT, params).one()


def get_task(engine: Engine, owner: str, task_id: int) -> Row | None:
    with engine.connect() as connection:
        return connection.execute(_GET, {"owner": owner, "task_id": task_id}).first()


def update_task(engine: Engine, owner: str, task_id: int, changes: dict[str, Any]) -> Row | None:
    """Set the fields in `changes` (and `updated_at`); the row, or None if not `owner`'s."""
    if not changes:
        return get_task(engine, owner, task_id)
    params = {f"new_{name}": value for name, value in changes.items()}
    statement = _update_statement(frozenset(changes))
    with engine.connect() as connection:
        return connection.execute(statement, {"owner": owner, "task_id": task_id, **params}).first()


def toggle_task(engine: Engine, owner: str, task_id: int) -> Row | None:
    """Flip `completed` inside the database: concurrent toggles serialise on the row lock."""
    with engine.connect() as connection:
        return connection.execute(_TOGGLE, {"owner": owner, "task_id": task_id}).first()


def delete_task(engine: Engine, owner: str, task_id: int) -> Row | None:
    """The deleted row's id, or None if there was no such task of `owner`'s."""
    with engine.connect() as connection:
        return connection.execute(_DELETE, {"owner": owner, "task_id": task_id}).first()
