"""US-4: toggle completion (PATCH /api/{user_id}/tasks/{id}/complete)."""

import time

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import Caller, create


@pytest.mark.spec("US-4", "FR-011", "SC-005")
def test_toggle_flips_and_twice_returns_to_the_start(client: TestClient, alice: Caller) -> None:
    task = create(client, alice)
    time.sleep(0.01)

    first = client.patch(alice.task(task["id"]) + "/complete", headers=alice.headers)
    second = client.patch(alice.task(task["id"]) + "/complete", headers=alice.headers)

    assert first.status_code == 200
    assert first.json()["completed"] is True
    assert first.json()["updated_at"] > task["updated_at"]
    assert first.json()["created_at"] == task["created_at"]
    assert second.json()["completed"] is False
    assert second.json()["updated_at"] > first.json()["updated_at"]


@pytest.mark.spec("US-4")
@pytest.mark.parametrize(("body", "expected"), [({"completed": True}, True), ({}, True)])
def test_a_body_sets_instead_of_toggling(
    client: TestClient, alice: Caller, body: dict[str, bool], expected: bool
) -> None:
    task = create(client, alice)

    first = client.patch(alice.task(task["id"]) + "/complete", json=body, headers=alice.headers)

    assert first.json()["completed"] is expected
    if body:  # setting is idempotent; an empty object toggles like no body
        again = client.patch(alice.task(task["id"]) + "/complete", json=body, headers=alice.headers)
        assert again.json()["completed"] is True


@pytest.mark.spec("US-4", "EC-2")
def test_a_wrong_typed_body_is_422(client: TestClient, alice: Caller) -> None:
    task = create(client, alice)

    response = client.patch(
        alice.task(task["id"]) + "/complete", json={"completed": "yes"}, headers=alice.headers
    )

    assert response.status_code == 422


@pytest.mark.spec("US-4", "FR-009")
def test_unknown_or_foreign_id_is_404(client: TestClient, alice: Caller, bob: Caller) -> None:
    bobs = create(client, bob)

    missing = client.patch(alice.task(999_999) + "/complete", headers=alice.headers)
    foreign = client.patch(alice.task(bobs["id"]) + "/complete", headers=alice.headers)

    assert missing.status_code == foreign.status_code == 404
    assert client.get(bob.task(bobs["id"]), headers=bob.headers).json()["completed"] is False


@pytest.mark.spec("FR-011")
def test_toggle_parity_over_many_toggles(client: TestClient, alice: Caller) -> None:
    task = create(client, alice)

    for _ in range(7):
        client.patch(alice.task(task["id"]) + "/complete", headers=alice.headers)

    assert client.get(alice.task(task["id"]), headers=alice.headers).json()["completed"] is True
