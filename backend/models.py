"""Task models: the tables (tasks, and the idempotency keys of creates), and the shapes the API
accepts and returns.

Request models ignore unknown fields (pydantic's default; frontends send `priority`, `id`,
timestamps...), use strict types so `"completed": "yes"` is a 422 rather than a guess, and refuse
text PostgreSQL cannot store (NUL, lone surrogates) so such input is a 422, never a 500.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, StrictBool, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    false,
    func,
)
from sqlmodel import Field, SQLModel

TITLE_MAX = 200
DESCRIPTION_MAX = 1000


def storable_text(value: str) -> str:
    """Reject characters PostgreSQL `text` cannot hold (it would fail at insert time, as a 500)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


Title = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=TITLE_MAX),
    AfterValidator(storable_text),
]
Description = Annotated[
    str,
    StringConstraints(strict=True, max_length=DESCRIPTION_MAX),
    AfterValidator(storable_text),
]


class Task(SQLModel, table=True):
    """One row per task; `user_id` is Better Auth's user id (the backend keeps no user table)."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_user_id_created_at_id", "user_id", "created_at", "id"),
        # The list's search (migration 0003): trigrams of title and description, per user.
        *(
            Index(
                f"ix_task_user_id_{column}_trgm",
                "user_id",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
            for column in ("title", "description")
        ),
        CheckConstraint("char_length(description) <= 1000", name="ck_task_description_length"),
        CheckConstraint("char_length(btrim(title)) >= 1", name="ck_task_title_not_blank"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    user_id: str = Field(sa_column=Column(String(255), nullable=False))
    title: str = Field(sa_column=Column(String(TITLE_MAX), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    completed: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class IdempotencyKey(SQLModel, table=True):
    """An `Idempotency-Key` a user sent with a create, kept apart from `task` so that deleting
    the task does not forget the key (a late retry would create the task again): the first
    answer is rebuilt from it and the retry's body, which the fingerprint proves the same."""

    __tablename__ = "idempotency_key"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_key"),
        Index("ix_idempotency_key_created_at", "created_at"),
    )

    user_id: str = Field(sa_column=Column(String(255), nullable=False))
    key: str = Field(sa_column=Column(String(255), nullable=False))
    fingerprint: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    task_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def _optional_in_schema(schema: dict[str, Any]) -> None:
    """Drop a request field's `default` from the schema: openapi-typescript makes a property
    with a default *required*, so a title-only create would not type-check. The default is
    applied all the same (and said in the description)."""
    schema.pop("default", None)


def _optional(description: str, default: Any = None) -> Any:
    return Field(
        default=default,
        description=description,
        schema_extra={"json_schema_extra": _optional_in_schema},
    )


class TaskCreate(SQLModel):
    title: Title
    description: Description | None = _optional("Optional; `null` or left out: no description")
    completed: StrictBool = _optional("Defaults to false", default=False)


class TaskUpdate(SQLModel):
    """Every field optional: what is sent changes, what is left out stays (PUT and PATCH alike).

    `title` and `completed` may be left out but not sent as `null`; `description: null` clears
    the description.
    """

    # `None` is how Python marks "left out"; `SkipJsonSchema` keeps it out of the schema, so
    # generated types say optional, not nullable (a `null` title is a 422).

    title: Title | SkipJsonSchema[None] = _optional("Left out: unchanged")
    description: Description | None = _optional("Left out: unchanged; `null` clears it")
    completed: StrictBool | SkipJsonSchema[None] = _optional("Left out: unchanged")

    @field_validator("title", "completed", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """Leaving a field out keeps it; sending `null` for one that cannot be empty is an error."""
        if value is None:
            raise ValueError("must not be null")
        return value


class CompletionUpdate(SQLModel):
    """Optional body of `PATCH …/complete`: set rather than toggle."""

    completed: StrictBool | None = _optional("Sets the value; left out or `null`: toggles")


def utc(value: datetime) -> datetime:
    """`value` in UTC (psycopg2 hands back the session's time zone: UTC unless the server says
    otherwise)."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


class TaskPublic(SQLModel):
    """The Task JSON of SPEC.md, field for field; timestamps always in UTC."""

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime

    _utc = field_validator("created_at", "updated_at")(utc)


# The Task JSON's fields in order: also the order `crud` reads a task's row in.
TASK_FIELDS = tuple(TaskPublic.model_fields)
