"""Every SQL statement the API runs, one per request, compiled once and sent as plain SQL.

Statements are SQLAlchemy Core on the SQLModel tables, compiled to SQL text once
(docs/decisions/0002-precompiled-sql-text.md). Ownership is part of every `WHERE` and writes
return their row with `RETURNING`: nothing is read before it is written (no lost toggles), no
request touches another user's row. Rows come back as tuples in `models.TASK_FIELDS` order. A
create with an `Idempotency-Key` is one CTE (docs/decisions/0010-idempotency-keys.md).
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    ClauseElement,
    String,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    not_,
    null,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as insert_or_not
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.sql.elements import ColumnClause

from backend.db import Database, Row
from backend.models import TASK_FIELDS, IdempotencyKey, Task

task: Table = Task.__table__  # type: ignore[attr-defined]
idempotency_key: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]

_public = [task.c[name] for name in TASK_FIELDS]
SORT_COLUMNS = {"created": task.c.created_at, "updated": task.c.updated_at, "title": task.c.title}
_DIALECT = PGDialect_psycopg2()  # type: ignore[no-untyped-call]

# A `Row` here is a task as `TASK_FIELDS` (a list row carries its total after them).


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


class KeyReusedError(Exception):
    """The key was sent before with another body: this request is no retry of that create."""


class KeyInFlightError(Exception):
    """A request with the same key committed while this one ran, too late for its snapshot."""


# What a keyed create's row says besides the task: created now, a retry, or the key reused.
CREATED, REPLAYED, REUSED = "created", "replayed", "reused"


def _says(outcome: str) -> ColumnClause[str]:
    return literal_column(f"'{outcome}'", String)


def _create_once_statement() -> str:
    """Remember the key, insert the task only if the key is new, else find the key's row.

    The key row comes first and takes the task's id from the task sequence, so the task is
    inserted from what that insert returned: no key row, no task. A key already stored is
    answered from its own row (the main query's snapshot sees it; the CTEs' new rows it never
    does). Under READ COMMITTED a twin request running at the same moment waits on the primary
    key for the first to commit, then finds the conflict but, in its older snapshot, not the
    row: no row comes back at all, and the route answers 409.
    """
    keys = idempotency_key
    remembered = (
        insert_or_not(keys)
        .values(
            user_id=bindparam("owner"),
            key=bindparam("key"),
            fingerprint=bindparam("fingerprint"),
            task_id=func.nextval(literal_column("pg_get_serial_sequence('task', 'id')")),
        )
        .on_conflict_do_nothing(index_elements=[keys.c.user_id, keys.c.key])
        .returning(keys.c.task_id, keys.c.created_at)
        .cte("remembered")
    )
    created = (
        insert(task)
        .from_select(
            list(TASK_FIELDS),
            select(
                remembered.c.task_id,
                bindparam("owner"),
                bindparam("new_title"),
                bindparam("new_description"),
                bindparam("new_completed"),
                remembered.c.created_at,
                remembered.c.created_at,  # a new task's updated_at is its created_at
            ),
        )
        .returning(*_public)
        .cte("created")
    )
    # The first create's row: id and time; its text is the retry's own, as the fingerprint says.
    first = select(
        keys.c.task_id,
        keys.c.user_id,
        null(),
        null(),
        null(),
        keys.c.created_at,
        keys.c.created_at,
        case(
            (keys.c.fingerprint == bindparam("fingerprint"), _says(REPLAYED)), else_=_says(REUSED)
        ),
    ).where(keys.c.user_id == bindparam("owner"), keys.c.key == bindparam("key"))
    return _sql(union_all(select(*created.c, _says(CREATED)), first))


_CREATE_ONCE = _create_once_statement()


def _delete_expired_keys_statement() -> str:
    """At most `batch` keys older than `lifetime`, deleted; how many. Rows another worker's
    cleanup holds are skipped, not waited for, so several workers may run it at once."""
    keys = idempotency_key
    expired = (
        select(keys.c.user_id, keys.c.key)
        .where(keys.c.created_at < func.now() - bindparam("lifetime"))
        .limit(bindparam("batch"))
        .with_for_update(skip_locked=True)
    )
    gone = (
        delete(keys)
        .where(tuple_(keys.c.user_id, keys.c.key).in_(expired))
        .returning(keys.c.key)
        .cte("gone")
    )
    return _sql(select(func.count()).select_from(gone))


_DELETE_EXPIRED_KEYS = _delete_expired_keys_statement()


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


async def create_task_once(
    db: Database, owner: str, key: str, title: str, description: str | None, completed: bool
) -> Row:
    """Create the task unless `owner` sent `key` before; then the first create's answer again.

    Raises `KeyReusedError` when that create had another body, `KeyInFlightError` when it
    committed during this statement (it is then answered on the next try).
    """
    params = {
        "owner": owner,
        "key": key,
        "fingerprint": _fingerprint(title, description, completed),
        "new_title": title,
        "new_description": description,
        "new_completed": completed,
    }
    # Two rows only if the cleanup deleted the key just as this retry came: the task then created
    # is the answer (its snapshot still showed the old key's row).
    rows = await db.fetch(_CREATE_ONCE, params, tenant=owner)
    outcomes = {row[-1]: row[:-1] for row in rows}
    if CREATED in outcomes:
        return outcomes[CREATED]
    if REPLAYED in outcomes:
        task_id, _, _, _, _, created_at, updated_at = outcomes[REPLAYED]
        return (task_id, owner, title, description, completed, created_at, updated_at)
    if REUSED in outcomes:
        raise KeyReusedError
    raise KeyInFlightError


def _fingerprint(title: str, description: str | None, completed: bool) -> bytes:
    """What makes two creates the same: the validated fields, not the bytes that carried them."""
    return hashlib.sha256(to_json([title, description, completed])).digest()


async def delete_expired_keys(db: Database, lifetime: timedelta, batch: int) -> int:
    """Forget at most `batch` keys older than `lifetime`; how many were forgotten."""
    rows = await db.fetch(_DELETE_EXPIRED_KEYS, {"lifetime": lifetime, "batch": batch})
    count: int = rows[0][0]
    return count


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
