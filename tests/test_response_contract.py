"""The wire format the performance work must not change: Task JSON and the OpenAPI document.

Routes may build their JSON without going through the response model (it is cheaper), so these
tests pin what a frontend sees to what that model declares: every Task body must be, byte for
byte, what FastAPI would have produced by validating the stored row into `TaskPublic` and dumping
it; and `/openapi.json` must equal the document the TypeScript client was generated from
(`clients/typescript/openapi.json`; after an intended API change, regenerate it with `npm run
generate` and review its diff).
"""

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.engine import Engine

from backend.models import TaskPublic
from tests.support.helpers import Caller, create

CLIENT_DOCUMENT = Path(__file__).parent.parent / "clients" / "typescript" / "openapi.json"
ONE = TypeAdapter(TaskPublic)
MANY = TypeAdapter(list[TaskPublic])
COLUMNS = "id, user_id, title, description, completed, created_at, updated_at"


def stored(engine: Engine, *ids: int) -> list[dict[str, Any]]:
    """The rows as the database holds them, in the order of `ids`."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT {COLUMNS} FROM task WHERE id = ANY(:ids)"), {"ids": list(ids)}
        ).mappings()
        by_id = {row["id"]: dict(row) for row in rows}
    return [by_id[task_id] for task_id in ids]


def set_timestamps(engine: Engine, task_id: int, when: datetime) -> None:
    with engine.connect() as connection:
        connection.execute(
            text("UPDATE task SET created_at = :t, updated_at = :t WHERE id = :id"),
            {"t": when, "id": task_id},
        )


@pytest.mark.spec("FR-019", "A-5", "SC-008")
def test_every_task_body_is_byte_for_byte_the_response_model(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    odd = create(client, alice, title='naïve "quoted" \\ back\tslash \u2028 😀', description=None)
    plain = create(client, alice, title="plain", description="déjà vu </script>")
    # A whole-second timestamp (no fraction) and one far from now, both written in another zone.
    set_timestamps(db_engine, odd["id"], datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    later = datetime(2031, 6, 7, 8, 9, 10, 120, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    set_timestamps(db_engine, plain["id"], later)

    def model_json(*ids: int) -> bytes:
        rows = stored(db_engine, *ids)
        if len(ids) == 1:
            return ONE.dump_json(ONE.validate_python(rows[0]))
        return MANY.dump_json(MANY.validate_python(rows))

    listed = client.get(alice.tasks, headers=alice.headers)
    assert listed.content == model_json(plain["id"], odd["id"])
    got = client.get(f"{alice.tasks}/{odd['id']}", headers=alice.headers)
    assert got.content == model_json(odd["id"])
    toggled = client.patch(f"{alice.tasks}/{odd['id']}/complete", headers=alice.headers)
    assert toggled.content == model_json(odd["id"])
    updated = client.put(
        f"{alice.tasks}/{plain['id']}", headers=alice.headers, json={"description": None}
    )
    assert updated.content == model_json(plain["id"])
    created = client.post(alice.tasks, headers=alice.headers, json={"title": "new"})
    assert created.content == model_json(created.json()["id"])
    assert b'"created_at":"2026-01-02T03:04:05Z"' in got.content
    assert b'"created_at":"2031-06-07T02:39:10.000120Z"' in listed.content
    for response in (listed, got, toggled, updated, created):
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-length"] == str(len(response.content))


@pytest.mark.internal  # our document, not the contract: another backend's differs
@pytest.mark.spec("FR-018", "SC-008")
def test_openapi_document_is_the_one_the_typescript_client_was_generated_from(
    client: TestClient,
) -> None:
    # Compared as JavaScript reads numbers (doubles): the committed copy was written by Node,
    # which prints the largest task id, 2**63 - 1, as 9223372036854776000.
    document = json.loads(client.get("/openapi.json").text, parse_int=float)
    assert document == json.loads(CLIENT_DOCUMENT.read_text("utf-8"), parse_int=float)
