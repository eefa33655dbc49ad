"""The database schema: migrations build exactly the models' table, indexed for the queries the
API runs, and no user table (users live in Better Auth)."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from tests.helpers import Caller, create


@pytest.mark.spec("FR-013", "FR-014")
def test_migrations_create_exactly_the_models_schema(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()

    assert differences == []
    assert version == "0002"


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
