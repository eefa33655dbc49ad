"""FR-021: `Idempotency-Key` on create — a retry answers the first create and stores nothing new.

Black-box (they run by URL too): what a client that retries relies on. The cases the database
decides (expiry, concurrency, a connection lost in flight) are in test_idempotency_cleanup.py and
the hardening suite.
"""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import Caller

KEY = "Idempotency-Key"


def post(client: TestClient, caller: Caller, key: str | bytes | None, **body: Any) -> Any:
    headers: dict[str, str | bytes] = {**caller.headers}
    if key is not None:
        headers[KEY] = key
    return client.post(caller.tasks, json={"title": "a task", **body}, headers=headers)


def stored(client: TestClient, caller: Caller) -> list[dict[str, Any]]:
    response = client.get(caller.tasks, headers=caller.headers)
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()
    return tasks


@pytest.mark.spec("FR-021")
def test_a_retry_with_the_same_key_answers_the_first_create_and_stores_nothing_new(
    client: TestClient, alice: Caller
) -> None:
    first = post(client, alice, '"8e03978e-40d5-43e8-bc93-6894a57f9324"', description="d")
    retry = post(client, alice, '"8e03978e-40d5-43e8-bc93-6894a57f9324"', description="d")

    assert first.status_code == 201, first.text
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert retry.headers["Location"] == first.headers["Location"] == alice.task(first.json()["id"])
    assert stored(client, alice) == [first.json()]
    # Without a key the same body is another task, as before.
    assert post(client, alice, None, description="d").status_code == 201
    assert len(stored(client, alice)) == 2


@pytest.mark.spec("FR-021", "FR-007")
def test_the_same_create_written_another_way_is_the_same_request(
    client: TestClient, alice: Caller
) -> None:
    """Same body = same validated fields: JSON spacing, field order, unknown fields, a padded
    title or the defaults spelled out change nothing. Quoted and unquoted keys are one key."""
    first = post(client, alice, '"order-17"', title="Buy milk")
    spelled_out = {
        "priority": "high",
        "completed": False,
        "description": None,
        "title": " Buy milk ",
    }
    retries = [
        client.post(
            alice.tasks,
            content=json.dumps(spelled_out, indent=4).encode(),
            headers={**alice.headers, "Content-Type": "application/json", KEY: "order-17"},
        ),
        post(client, alice, "order-17", title="Buy milk", id=999, user_id="someone-else"),
    ]

    assert first.status_code == 201, first.text
    for retry in retries:
        assert (retry.status_code, retry.json()) == (201, first.json())
        assert retry.headers["Location"] == first.headers["Location"]
    assert len(stored(client, alice)) == 1


@pytest.mark.spec("FR-021", "EC-2", "FR-018")
def test_the_same_key_with_another_body_is_a_422_that_says_why_and_stores_nothing(
    client: TestClient, alice: Caller
) -> None:
    first = post(client, alice, "key-1", title="Buy milk")
    others = [
        post(client, alice, "key-1", title="Buy bread"),
        post(client, alice, "key-1", title="Buy milk", description=""),
        post(client, alice, "key-1", title="Buy milk", completed=True),
    ]

    for other in others:
        assert other.status_code == 422, other.text
        body = other.json()
        assert isinstance(body["detail"], str)
        assert body["detail"].startswith(f"{KEY}: ")
        assert "another" in body["detail"]
        assert body["errors"][0]["loc"] == ["header", KEY]
    assert stored(client, alice) == [first.json()]
    assert post(client, alice, "key-1", title="Buy milk").json() == first.json()


@pytest.mark.spec("FR-021", "FR-006", "SC-002")
def test_keys_are_per_user(client: TestClient, alice: Caller, bob: Caller) -> None:
    hers = post(client, alice, "shared-key", title="same")
    his = post(client, bob, "shared-key", title="same")
    his_other = post(client, bob, "other-key", title="his own body")
    hers_other_body = post(client, alice, "other-key", title="her own body")

    assert (hers.status_code, his.status_code) == (201, 201)
    assert his.json()["id"] != hers.json()["id"]
    assert his.json()["user_id"] == bob.id
    assert (his_other.status_code, hers_other_body.status_code) == (201, 201)
    assert post(client, alice, "shared-key", title="same").json() == hers.json()
    assert post(client, bob, "shared-key", title="same").json() == his.json()
    assert [t["title"] for t in stored(client, alice)] == ["her own body", "same"]
    assert [t["title"] for t in stored(client, bob)] == ["his own body", "same"]


@pytest.mark.spec("FR-021", "FR-001", "FR-005")
def test_401_and_403_come_before_anything_about_the_key(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    used = post(client, alice, "used-key", title="hers")
    anonymous = client.post(alice.tasks, json={"title": "x"}, headers={KEY: '"unterminated'})
    foreign = client.post(
        alice.tasks, json={"title": "another body"}, headers={**bob.headers, KEY: "used-key"}
    )
    foreign_malformed = client.post(
        alice.tasks, json={"title": "x"}, headers={**bob.headers, KEY: ""}
    )

    assert used.status_code == 201
    assert anonymous.status_code == 401
    assert (foreign.status_code, foreign_malformed.status_code) == (403, 403)
    assert post(client, alice, "used-key", title="hers").json() == used.json()
    assert stored(client, alice) == [used.json()]
    assert stored(client, bob) == []


@pytest.mark.spec("FR-021", "EC-2", "SC-009")
@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "empty"),
        ('""', "empty"),
        ("k" * 256, "255"),
        ('"' + "k" * 256 + '"', "255"),
        ("tab\tinside", "printable"),
        ("ключ".encode(), "printable"),
        ('"unterminated', "closing quote"),
        ('"bad \\escape"', "backslash"),
        ('"key" trailing', "after"),
        ('"key";param=1', "after"),
        ('"tab\tinside"', "printable"),
    ],
)
def test_a_malformed_key_is_a_422_naming_the_header_and_stores_nothing(
    client: TestClient, alice: Caller, key: str | bytes, why: str
) -> None:
    response = post(client, alice, key)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"].startswith(f"{KEY}: ")
    assert why in body["detail"]
    assert body["errors"] == [
        {"loc": ["header", KEY], "msg": body["errors"][0]["msg"], "type": "idempotency_key_invalid"}
    ]
    assert stored(client, alice) == []


@pytest.mark.spec("FR-021", "EC-2")
def test_two_key_headers_are_a_422(client: TestClient, alice: Caller) -> None:
    headers = [*alice.headers.items(), (KEY, "one"), (KEY, "two")]
    response = client.post(alice.tasks, json={"title": "t"}, headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"{KEY}: send one {KEY} header"
    assert stored(client, alice) == []


@pytest.mark.spec("FR-021")
def test_every_printable_key_up_to_255_characters_works_quoted_or_not(
    client: TestClient, alice: Caller
) -> None:
    """The structured-field string's escapes (`\\"`, `\\\\`) unquote to the key a Stripe-style
    client sends bare."""
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    pairs = [
        ("k" * 255, '"' + "k" * 255 + '"'),
        ('a"b\\c d', '"a\\"b\\\\c d"'),
        (
            printable.strip(),
            '"' + printable.strip().replace("\\", "\\\\").replace('"', '\\"') + '"',
        ),
        ("x", '"x"'),
    ]
    for number, (bare, quoted) in enumerate(pairs):
        first = post(client, alice, bare, title=f"task {number}")
        again = post(client, alice, quoted, title=f"task {number}")
        assert first.status_code == 201, f"{bare!r}: {first.text}"
        assert (again.status_code, again.json()) == (201, first.json()), quoted
    assert len(stored(client, alice)) == len(pairs)


@pytest.mark.spec("FR-021", "FR-012")
def test_a_late_retry_gets_the_first_answer_even_after_the_task_changed_or_went(
    client: TestClient, alice: Caller
) -> None:
    """The first answer, not the task's state now (the draft: the result of the operation); and
    a retry after a delete does not bring the task back."""
    first = post(client, alice, "late", title="first title").json()
    task = alice.task(first["id"])
    client.put(task, json={"title": "renamed"}, headers=alice.headers)
    client.patch(task + "/complete", headers=alice.headers)

    after_change = post(client, alice, "late", title="first title")
    assert client.delete(task, headers=alice.headers).status_code == 204
    after_delete = post(client, alice, "late", title="first title")

    assert (after_change.status_code, after_change.json()) == (201, first)
    assert (after_delete.status_code, after_delete.json()) == (201, first)
    assert after_delete.headers["Location"] == task
    assert stored(client, alice) == []
