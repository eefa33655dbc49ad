"""Remember the `Idempotency-Key` of each create (FR-021), in a table of its own.

Why a table and not a nullable `task.idempotency_key` column with a unique partial index: the
key must outlive the task. A client whose create was stored but whose answer was lost may retry
after the user deleted the task (or after another tab did); with the key on the task row that
retry would find no key and create the task again. A row here — user, key, the fingerprint of the
validated body, the task's id and the time — survives the delete, answers every retry for as long
as it is kept, and leaves `task` and its queries exactly as they were (a create without a key
costs what it did).

What a retry is answered with: the first answer again (the draft's "result of the previously
completed operation"), not the task's state now. The row needs no copy of that answer: a retry is
served only when its body has the same fingerprint, so the title, description and completed flag
are the retry's own, and the id and both timestamps (a new task's `updated_at` is its
`created_at`) are the row's.

`created_at` is indexed for the cleanup of expired keys (`backend/idempotency.py`), which then
reads only what it deletes; the primary key `(user_id, key)` is the unique index the create's
`INSERT … ON CONFLICT` arbitrates on.

Safe on a populated database and through PgBouncer: it creates a new, empty table and its
indexes in the migration's one transaction, and takes no lock on `task`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_key",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_key"),
    )
    op.create_index("ix_idempotency_key_created_at", "idempotency_key", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_key_created_at", table_name="idempotency_key")
    op.drop_table("idempotency_key")
