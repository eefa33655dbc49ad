"""US-1: create a task (POST /api/{user_id}/tasks)."""

import json
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import Caller

TASK_FIELDS = {"id", "user_id", "title", "description", "completed", "created_at", "updated_at"}


@pytest.mark.spec("US-1", "US-1.1", "FR-007", "FR-019", "SC-005", "A-5")
def test_valid_title_creates_an_open_task_with_both_timestamps(
    client: TestClient, alice: Caller
) -> None:
    response = client.post(
        alice.tasks, json={"title": "Buy milk", "description": "2 litres"}, headers=alice.headers
    )

    assert response.status_code == 201
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 litres"
    assert task["completed"] is False
    assert task["user_id"] == alice.id
    assert datetime.fromisoformat(task["created_at"]).utcoffset() == timedelta(0)
    assert task["created_at"] == task["updated_at"]
    assert response.headers["Location"] == alice.task(task["id"])
    assert client.get(response.headers["Location"], headers=alice.headers).json() == task


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
    client: TestClient, alice: Caller, body: dict[str, object]
) -> None:
    response = client.post(alice.tasks, json=body, headers=alice.headers)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert response.json()["errors"][0]["loc"][:2] == ["body", "title"]
    assert client.get(alice.tasks, headers=alice.headers).json() == []


@pytest.mark.spec("US-1.3", "FR-007", "EC-2")
@pytest.mark.parametrize(
    ("body", "field"),
    [({"title": "t" * 201}, "title"), ({"title": "ok", "description": "d" * 1001}, "description")],
)
def test_over_long_title_or_description_is_422_and_nothing_stored(
    client: TestClient, alice: Caller, body: dict[str, str], field: str
) -> None:
    response = client.post(alice.tasks, json=body, headers=alice.headers)

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:")
    assert client.get(alice.tasks, headers=alice.headers).json() == []


@pytest.mark.spec("US-1.3", "EC-8")
def test_limits_are_inclusive_and_counted_in_characters(client: TestClient, alice: Caller) -> None:
    title, description = "é" * 200, "🙂" * 1000  # 400 and 4000 UTF-8 bytes

    response = client.post(
        alice.tasks, json={"title": title, "description": description}, headers=alice.headers
    )

    assert response.status_code == 201
    assert (response.json()["title"], response.json()["description"]) == (title, description)


@pytest.mark.spec("US-1.4", "FR-004")
def test_owner_id_and_timestamps_in_the_body_are_ignored(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    body = {
        "title": "mine",
        "user_id": bob.id,
        "id": 999,
        "created_at": "2000-01-01T00:00:00Z",
        "updated_at": "2000-01-01T00:00:00Z",
        "priority": "high",
        "tags": ["x"],
        "due_date": "2030-01-01",
    }

    task = client.post(alice.tasks, json=body, headers=alice.headers).json()

    assert task["user_id"] == alice.id
    assert task["id"] != 999
    assert not task["created_at"].startswith("2000")
    assert "priority" not in task
    assert client.get(bob.tasks, headers=bob.headers).json() == []


@pytest.mark.spec("EC-2")
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"title": 123}', "application/json"),
        (b'{"title": ["a"]}', "application/json"),
        (b'{"title": "a", "completed": "yes"}', "application/json"),
        (b'{"title": "a", "description": 5}', "application/json"),
        (b'{"title": "a", "completed": null}', "application/json"),
        (b"[]", "application/json"),
        (b'"a string"', "application/json"),
        (b"{not json", "application/json"),
        (b"title=a", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
    ],
)
def test_wrong_typed_null_or_non_json_bodies_are_422(
    client: TestClient, alice: Caller, content: bytes, content_type: str
) -> None:
    response = client.post(
        alice.tasks, content=content, headers={**alice.headers, "Content-Type": content_type}
    )

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert all({"loc", "msg", "type"} <= set(error) for error in response.json()["errors"])
    assert client.get(alice.tasks, headers=alice.headers).json() == []


@pytest.mark.spec("EC-2")
def test_body_over_64_kib_is_413_and_nothing_stored(client: TestClient, alice: Caller) -> None:
    body = '{"title": "big", "description": "' + "x" * 70_000 + '"}'

    response = client.post(
        alice.tasks, content=body, headers={**alice.headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert "detail" in response.json()
    assert client.get(alice.tasks, headers=alice.headers).json() == []


@pytest.mark.spec("EC-2", "SC-009")
@pytest.mark.parametrize("text", ["nul\u0000byte", "lone \ud800 surrogate"])
def test_text_postgres_cannot_store_is_422_not_500(
    client: TestClient, alice: Caller, text: str
) -> None:
    body = json.dumps({"title": text})  # ensure_ascii: sent as JSON escapes

    response = client.post(
        alice.tasks, content=body, headers={**alice.headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 422
