"""The database schema: migrations build exactly the models' table, indexed for the queries the
API runs, and no user table (users live in Better Auth)."""

import io
import random
import string

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from backend import crud
from tests.support.helpers import Caller, create


@pytest.mark.spec("FR-013", "FR-014")
def test_migrations_create_exactly_the_models_schema(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()

    assert differences == []
    assert version == "0003"


@pytest.mark.spec("FR-014")
def test_user_id_is_indexed_and_used_by_the_list_and_lookup_queries(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    indexes = inspect(db_engine).get_indexes("task")
    with db_engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        plans = [
            "\n".join(connection.execute(text(f"EXPLAIN {query}"), {"u": alice.id}).scalars())
            for query in (
                "SELECT * FROM task WHERE user_id = :u ORDER BY created_at DESC, id DESC LIMIT 100",
                "SELECT * FROM task WHERE id = 1 AND user_id = :u",
            )
        ]

    assert any(index["column_names"][0] == "user_id" for index in indexes)
    assert "ix_task_user_id_created_at_id" in plans[0]
    assert "Sort" not in plans[0]  # the index gives the order
    assert "Index" in plans[1]


@pytest.mark.spec("A-9")
def test_the_backend_stores_no_user_table(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    create(client, alice)

    assert set(inspect(db_engine).get_table_names()) == {
        "task",
        "idempotency_key",
        "alembic_version",
    }


def random_tasks(rows: int, user: str, title_words: int, words: int) -> str:
    """Tab-separated tasks of random words (a 3 000-word vocabulary), for `COPY`."""
    pick = random.Random(rows)
    vocabulary = [
        "".join(pick.choice(string.ascii_lowercase) for _ in range(pick.randint(3, 9)))
        for _ in range(3000)
    ]
    return "".join(
        f"{user.format(n % 1000)}\t{' '.join(pick.choices(vocabulary, k=title_words))[:200]}"
        f"\t{' '.join(pick.choices(vocabulary, k=words))[:1000]}\n"
        for n in range(rows)
    )


@pytest.mark.spec("FR-014", "US-2.3", "SC-011")
def test_a_search_reads_the_trigram_indexes_not_every_task_of_the_user(db_engine: Engine) -> None:
    """The list's own search statement, for a user with 5 000 tasks of 1 000 characters among
    40 000 tasks of other users: candidates come from the per-user trigram indexes (migration
    0003), not from reading every task of the user."""
    owner = "searcher-0123456789abcdefghijklm"
    mine = random_tasks(5000, owner, 5, 150)
    needle = mine.split("\t")[2].split()[3]  # a word of the first task's description
    page, _ = crud._list_statements(False, True, "created", True)
    params = {"owner": owner, "pattern": f"%{needle}%", "limit": 100, "offset": 0}
    raw = db_engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            for data in (mine, random_tasks(40000, "other-{}", 5, 20)):
                cursor.copy_expert(
                    "COPY task (user_id, title, description) FROM STDIN", io.StringIO(data)
                )
            cursor.execute("ANALYZE task")
            cursor.execute(f"EXPLAIN {page}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute(page, params)
            found = cursor.fetchall()
            cursor.execute("TRUNCATE task")
    finally:
        raw.close()

    assert "ix_task_user_id_title_trgm" in plan
    assert "ix_task_user_id_description_trgm" in plan
    assert found  # and it finds what it looks for
