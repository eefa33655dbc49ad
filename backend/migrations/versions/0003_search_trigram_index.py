"""Trigram indexes for the list's search, so its cost follows the matches, not the user's tasks.

`?search=` is `title ILIKE '%…%' OR description ILIKE '%…%'` within one user's tasks: without an
index PostgreSQL compares every description of that user (12 000 tasks of 1 000 characters: 1.4
to 1.9 s, into the statement deadline). GIN indexes of `pg_trgm` trigrams find the candidate rows
for patterns of 3 characters or more; `btree_gin` puts `user_id` in the same index, so a search
reads only that user's entries (without it a user with few tasks paid for everyone's matches).
Shorter patterns still scan the user's rows (docs/decisions/0007-fairness-and-circuit-breaker.md).

Built `CONCURRENTLY`, outside the migration's transaction: on a populated table a plain build
would block every write for its duration, which during a rolling deploy is every old instance's
creates and updates. Both extensions exist on Neon and in the embedded PostgreSQL; the role must
be allowed to create them (Neon's default role is).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCHED = ("title", "description")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    with op.get_context().autocommit_block():
        for column in SEARCHED:
            op.create_index(
                f"ix_task_user_id_{column}_trgm",
                "task",
                ["user_id", column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for column in SEARCHED:
            op.drop_index(
                f"ix_task_user_id_{column}_trgm",
                table_name="task",
                postgresql_concurrently=True,
                if_exists=True,
            )
