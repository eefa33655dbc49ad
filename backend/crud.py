"""Every SQL statement the API runs, one per request, compiled once and sent as plain SQL.

Statements are written in SQLAlchemy Core on the SQLModel `task` table and compiled to SQL text
once, at import (or once per query shape); a request then runs its text with bound parameters
through `Database.fetch` and gets plain tuples back: less than half the CPU of
`Connection.execute` for the same Core statement, and CPU is what caps requests per second
(figures: loadtests/README.md).

Ownership is part of every `WHERE`, and writes return the row with `RETURNING`, so nothing is
read before it is written (no lost toggles) and no request can touch another user's row. Rows
come back as tuples in `TaskPublic`'s field order (`PUBLIC_FIELDS`), ready to serialise.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ClauseElement,
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
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

from backend.db import Database, Row
from backend.models import Task

task: Table = Task.__table__  # type: ignore[attr-defined]

PUBLIC_FIELDS = ("id", "user_id", "title", "description", "completed", "created_at", "updated_at")
_public = [task.c[name] for name in PUBLIC_FIELDS]
SORT_COLUMNS = {"created": task.c.created_at, "updated": task.c.updated_at, "title": task.c.title}
_DIALECT = PGDialect_psycopg2()  # type: ignore[no-untyped-call]

# A `Row` here is a task as `PUBLIC_FIELDS` (a list row carries its total after them).


@dataclass(frozen=True)
class ListQuery:
    """What the list endpoint was asked for, aliases already resolved."""

    completed: bool | None = None
    search: str | None = None
    sort: str = "created"
    descending: bool = True
    limit: int = 100
    offset: int = 0


def _sql(statement: ClauseElement) -> str:
    """The statement as psycopg2 SQL text with `%(name)s` parameters."""
    return str(statement.compile(dialect=_DIALECT))


_owned = (task.c.id == bindparam("task_id"), task.c.user_id == bindparam("owner"))
_GET = _sql(select(*_public).where(*_owned))
_DELETE = _sql(delete(task).where(*_owned).returning(task.c.id))
_TOGGLE = _sql(
    update(task)
    .where(*_owned)
    .values(completed=not_(task.c.completed), updated_at=func.now())
    .returning(*_public)
)
_INSERT = _sql(
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
def _update_statement(fields: frozenset[str]) -> str:
    return _sql(
        update(task)
        .where(*_owned)
        .values({**{name: bindparam(f"new_{name}") for name in fields}, "updated_at": func.now()})
        .returning(*_public)
    )


@lru_cache
def _list_statements(
    by_completion: bool, searching: bool, sort: str, descending: bool
) -> tuple[str, str]:
    """The page with its total, and the bare count (for a page past the end, which has no row)."""
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
    count = select(func.count()).select_from(task).where(*conditions)
    # The total rides along as a scalar subquery: the page and its total in one round trip. (A
    # `count(*) OVER ()` window makes PostgreSQL fetch every row of the user before the first
    # is returned; the subquery counts them on the index, and the page reads only its rows.)
    page = (
        select(*_public, count.correlate(None).scalar_subquery().label("total"))
        .where(*conditions)
        .order_by(*ordering)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return _sql(page), _sql(count)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def _first(db: Database, owner: str, sql: str, params: Mapping[str, Any]) -> Row | None:
    """The one row `sql` returns for `owner` (whose statement slot it takes), or None."""
    rows = await db.fetch(sql, {"owner": owner, **params}, tenant=owner)
    return rows[0] if rows else None


async def list_tasks(db: Database, owner: str, query: ListQuery) -> tuple[Sequence[Row], int]:
    """One page of `owner`'s tasks and the total matching count."""
    params: dict[str, Any] = {"owner": owner, "limit": query.limit, "offset": query.offset}
    if query.completed is not None:
        params["completed"] = query.completed
    if query.search:
        params["pattern"] = _like_pattern(query.search)
    page, count = _list_statements(
        query.completed is not None, bool(query.search), query.sort, query.descending
    )
    rows = await db.fetch(page, params, tenant=owner)
    if rows:
        return rows, rows[0][-1]
    if not query.offset:
        return rows, 0
    # Paged past the end: no row carried the total, so count separately (rare).
    return rows, (await db.fetch(count, params, tenant=owner))[0][0]


async def create_task(
    db: Database, owner: str, title: str, description: str | None, completed: bool
) -> Row:
    params = {
        "owner": owner,
        "new_title": title,
        "new_description": description,
        "new_completed": completed,
    }
    return (await db.fetch(_INSERT, params, tenant=owner))[0]


async def get_task(db: Database, owner: str, task_id: int) -> Row | None:
    return await _first(db, owner, _GET, {"task_id": task_id})


async def update_task(
    db: Database, owner: str, task_id: int, changes: dict[str, Any]
) -> Row | None:
    """Set the fields in `changes` (and `updated_at`); the row, or None if not `owner`'s."""
    if not changes:
        return await get_task(db, owner, task_id)
    params = {f"new_{name}": value for name, value in changes.items()}
    statement = _update_statement(frozenset(changes))
    return await _first(db, owner, statement, {"task_id": task_id, **params})


async def toggle_task(db: Database, owner: str, task_id: int) -> Row | None:
    """Flip `completed` inside the database: concurrent toggles serialise on the row lock."""
    return await _first(db, owner, _TOGGLE, {"task_id": task_id})


async def delete_task(db: Database, owner: str, task_id: int) -> Row | None:
    """The deleted row's id, or None if there was no such task of `owner`'s."""
    return await _first(db, owner, _DELETE, {"task_id": task_id})
