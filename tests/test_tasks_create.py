"""US-1: create a task (POST /api/{user_id}/tasks)."""

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from helpers import Caller, count_tasks
from sqlalchemy.engine import Engine


@pytest.mark.spec("US-1.1", "FR-007", "FR-019", "SC-005", "A-5")
def test_valid_title_creates_an_open_task_with_both_timestamps(
    client: TestClient, alice: Caller
) -> None:
    response = client.post(
        alice.tasks, json={"title": "Buy milk", "description": "2 litres"}, headers=alice.headers
    )

    assert response.status_code == 201
    task = response.json()
    assert set(task) == {
        "id",
        "user_id",
        "title",
        "description",
        "completed",
        "created_at",
        "updated_at",
    }
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 litres"
    assert task["completed"] is False
    assert task["user_id"] == alice.id
    created = datetime.fromisoformat(task["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert task["created_at"] == task["updated_at"]
    assert response.headers["Location"] == alice.task(task["id"])


@pytest.mark.spec("US-1.1", "FR-007")
def test_description_is_optional_and_title_is_trimmed(client: TestClient, alice: Caller) -> None:
    response = client.post(alice.tasks, json={"title": "  Call mum  "}, headers=alice.headers)

    assert response.status_code == 201
    assert response.json()["title"] == "Call mum"
    assert response.json()["description"] is None


@pytest.mark.spec("US-1.2", "FR-007", "EC-2")
@pytest.mark.parametrize(
    "body", [{}, {"title": ""}, {"title": "   "}, {"title": None}, {"description": "x"}]
)
def test_missing_empty_or_blank_title_is_422_and_nothing_stored(
    client: TestClient, alice: Caller, db_engine: Engine, body: dict[str, object]
) -> None:
    response = client.post(alice.tasks, json=body, headers=alice.headers)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert response.json()["errors"][0]["loc"][:2] == ["body", "title"]
    assert count_tasks(db_engine) == 0
