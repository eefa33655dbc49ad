"""Create the task table.

`(user_id, created_at, id)` serves the list query (the caller's tasks, newest first, ties by id)
as an index range scan, and every other per-user lookup through its leading `user_id`.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("char_length(description) <= 1000", name="ck_task_description_length"),
        sa.CheckConstraint("char_length(btrim(title)) >= 1", name="ck_task_title_not_blank"),
    )
    op.create_index("ix_task_user_id_created_at_id", "task", ["user_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_task_user_id_created_at_id", table_name="task")
    op.drop_table("task")
