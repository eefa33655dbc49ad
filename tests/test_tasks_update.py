"""US-3: update a task (PUT /api/{user_id}/tasks/{id}, and its PATCH alias)."""

import time

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import Caller, create


@pytest.mark.spec("US-3", "FR-010", "SC-005")
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_fields_sent_change_fields_left_out_stay(
    client: TestClient, alice: Caller, method: str
) -> None:
    task = create(client, alice, title="old", description="keep me")
    time.sleep(0.01)

    response = client.request(
        method, alice.task(task["id"]), json={"title": "new"}, headers=alice.headers
    )

    assert response.status_code == 200
    updated = response.json()
    assert updated["title"] == "new"
    assert updated["description"] == "keep me"
    assert updated["completed"] is False
    assert updated["created_at"] == task["created_at"]
    assert updated["updated_at"] > task["updated_at"]


@pytest.mark.spec("US-3", "FR-010")
def test_all_fields_can_change_and_description_can_be_cleared(
    client: TestClient, alice: Caller
) -> None:
    task = create(client, alice, title="old", description="desc")

    updated = client.put(
        alice.task(task["id"]),
        json={"title": "new", "description": None, "completed": True},
        headers=alice.headers,
    ).json()

    assert (updated["title"], updated["description"], updated["completed"]) == ("new", None, True)
    assert client.get(alice.task(task["id"]), headers=alice.headers).json() == updated


@pytest.mark.spec("US-3", "FR-010")
def test_empty_update_changes_nothing(client: TestClient, alice: Caller) -> None:
    task = create(client, alice)

    response = client.put(alice.task(task["id"]), json={"priority": 1}, headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == task


@pytest.mark.spec("US-3", "FR-007", "EC-2")
@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "   "},
        {"title": None},
        {"title": "t" * 201},
        {"description": "d" * 1001},
        {"completed": None},
        {"completed": "true"},
    ],
)
def test_same_validation_as_create(
    client: TestClient, alice: Caller, body: dict[str, object]
) -> None:
    task = create(client, alice, title="unchanged")

    response = client.put(alice.task(task["id"]), json=body, headers=alice.headers)

    assert response.status_code == 422
    assert client.get(alice.task(task["id"]), headers=alice.headers).json() == task


@pytest.mark.spec("US-3", "FR-009")
def test_unknown_id_is_404(client: TestClient, alice: Caller) -> None:
    response = client.put(alice.task(424242), json={"title": "x"}, headers=alice.headers)

    assert response.status_code == 404
    assert response.json() == {"detail": "Task not found"}


@pytest.mark.spec("US-3", "FR-006", "SC-002")
def test_another_users_task_under_my_url_is_404_and_unchanged(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    bobs = create(client, bob, title="bob's")

    response = client.put(alice.task(bobs["id"]), json={"title": "hacked"}, headers=alice.headers)

    assert response.status_code == 404
    assert client.get(bob.task(bobs["id"]), headers=bob.headers).json() == bobs
