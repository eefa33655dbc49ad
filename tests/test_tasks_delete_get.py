"""US-5 (delete) and US-6 (get one)."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.support.helpers import Caller, count_tasks, create


@pytest.mark.spec("US-5", "FR-012", "SC-005")
def test_delete_is_204_then_gone_and_a_second_delete_is_404(
    client: TestClient, alice: Caller
) -> None:
    task = create(client, alice)
    kept = create(client, alice, title="kept")

    deleted = client.delete(alice.task(task["id"]), headers=alice.headers)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert client.get(alice.task(task["id"]), headers=alice.headers).status_code == 404
    assert [t["id"] for t in client.get(alice.tasks, headers=alice.headers).json()] == [kept["id"]]
    assert client.delete(alice.task(task["id"]), headers=alice.headers).status_code == 404


@pytest.mark.spec("A-8", "FR-012")
def test_delete_is_a_hard_delete(client: TestClient, alice: Caller, db_engine: Engine) -> None:
    task = create(client, alice)

    client.delete(alice.task(task["id"]), headers=alice.headers)

    assert count_tasks(db_engine) == 0  # the row is gone, not flagged


@pytest.mark.spec("US-5", "FR-006", "SC-002")
def test_deleting_another_users_task_is_404_and_it_survives(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    bobs = create(client, bob)

    response = client.delete(alice.task(bobs["id"]), headers=alice.headers)

    assert response.status_code == 404
    assert client.get(bob.task(bobs["id"]), headers=bob.headers).status_code == 200


@pytest.mark.spec("US-6", "FR-009", "SC-005", "FR-019")
def test_get_returns_the_task(client: TestClient, alice: Caller) -> None:
    task = create(client, alice, title="read me", description="please")

    response = client.get(alice.task(task["id"]), headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == task


@pytest.mark.spec("US-6", "FR-009", "FR-006", "SC-002")
def test_another_users_task_id_under_my_url_is_404_no_leak(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    bobs = create(client, bob, title="secret")

    response = client.get(alice.task(bobs["id"]), headers=alice.headers)

    assert response.status_code == 404
    assert "secret" not in response.text


@pytest.mark.spec("EC-5", "SC-009")
@pytest.mark.parametrize(
    ("task_id", "status"),
    [
        ("abc", 422),
        ("-1", 422),
        ("0", 422),
        ("1.5", 422),
        ("1e3", 422),
        (str(2**63), 422),
        (str(2**64), 422),
        ("-0", 422),
        (str(2**63 - 1), 404),
        ("99999", 404),
        ("099999", 404),
    ],
)
def test_task_ids_that_cannot_exist_are_404_or_422(
    client: TestClient, alice: Caller, task_id: str, status: int
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(
            method, alice.task(task_id), json={"title": "x"}, headers=alice.headers
        )
        assert response.status_code == status, (method, response.text)
    toggled = client.patch(alice.task(task_id) + "/complete", headers=alice.headers)
    assert toggled.status_code == status


@pytest.mark.spec("EC-5", "SC-009", "FR-009")
def test_a_task_id_that_is_not_plain_digits_never_names_the_task(
    client: TestClient, alice: Caller
) -> None:
    """`+7`, `7.0`, `0_7` or ` 7` are not task 7, though `int()` reads each as 7: 404 or 422,
    never the task, and nothing changes."""
    task = create(client, alice)
    n = task["id"]
    for raw in (f"+{n}", f"{n}.0", f"0_{n}", f"%20{n}", f"{n}%20", f"{n}%0A"):
        for method, suffix in (("GET", ""), ("PUT", ""), ("PATCH", "/complete"), ("DELETE", "")):
            response = client.request(
                method, f"{alice.tasks}/{raw}{suffix}", json={"title": "x"}, headers=alice.headers
            )
            assert response.status_code in (404, 422), (method, raw, response.status_code)
            assert isinstance(response.json()["detail"], str)
    assert client.get(alice.task(n), headers=alice.headers).json() == task
