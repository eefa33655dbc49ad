"""US-2: list my tasks (GET /api/{user_id}/tasks), with filters, search, sort and paging."""

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import Caller, create


def titles(response_json: list[dict[str, object]]) -> list[object]:
    return [task["title"] for task in response_json]


@pytest.mark.spec("US-2", "US-2.1", "FR-008", "SC-002", "FR-006")
def test_returns_all_and_only_my_tasks(client: TestClient, alice: Caller, bob: Caller) -> None:
    mine = [create(client, alice, title=f"alice {n}")["id"] for n in range(3)]
    create(client, bob, title="bob's")

    response = client.get(alice.tasks, headers=alice.headers)

    assert response.status_code == 200
    assert sorted(task["id"] for task in response.json()) == sorted(mine)
    assert {task["user_id"] for task in response.json()} == {alice.id}
    assert response.headers["X-Total-Count"] == "3"


@pytest.mark.spec("US-2.2")
def test_a_new_user_gets_an_empty_list(client: TestClient, alice: Caller) -> None:
    response = client.get(alice.tasks, headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["X-Total-Count"] == "0"


@pytest.mark.spec("A-4", "FR-008")
def test_default_order_is_newest_first_ties_by_id(client: TestClient, alice: Caller) -> None:
    for title in ("first", "second", "third"):
        create(client, alice, title=title)

    listed = client.get(alice.tasks, headers=alice.headers).json()

    assert titles(listed) == ["third", "second", "first"]


@pytest.mark.spec("US-2.3")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=all", {"open", "done"}),
        ("status=pending", {"open"}),
        ("status=COMPLETED", {"done"}),
        ("status=Pending", {"open"}),
        # Synonyms real frontends send (US-2.3).
        ("status=incomplete", {"open"}),
        ("status=Active", {"open"}),
        ("status=todo", {"open"}),
        ("status=DONE", {"done"}),
        ("completed=true", {"done"}),
        ("completed=false", {"open"}),
    ],
)
def test_filter_by_status_and_its_alias(
    client: TestClient, alice: Caller, query: str, expected: set[str]
) -> None:
    create(client, alice, title="open")
    create(client, alice, title="done", completed=True)

    response = client.get(f"{alice.tasks}?{query}", headers=alice.headers)

    assert set(titles(response.json())) == expected
    assert response.headers["X-Total-Count"] == str(len(expected))


@pytest.mark.spec("US-2.3")
@pytest.mark.parametrize("param", ["search", "q"])
def test_search_is_case_insensitive_over_title_and_description(
    client: TestClient, alice: Caller, param: str
) -> None:
    create(client, alice, title="Buy MILK")
    create(client, alice, title="Call", description="about the milkman")
    create(client, alice, title="Other")
    create(client, alice, title="100% sure_thing")

    found = client.get(f"{alice.tasks}?{param}=milk", headers=alice.headers).json()
    literal = client.get(alice.tasks, params={param: "0% s"}, headers=alice.headers).json()
    underscore = client.get(alice.tasks, params={param: "e_t"}, headers=alice.headers).json()

    assert set(titles(found)) == {"Buy MILK", "Call"}
    assert titles(literal) == ["100% sure_thing"]  # % and _ match themselves, not wildcards
    assert titles(underscore) == ["100% sure_thing"]


@pytest.mark.spec("US-2.3")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sort=title&order=asc", ["apple", "banana", "cherry"]),
        ("sort_by=title&sort_order=desc", ["cherry", "banana", "apple"]),
        ("sort=created&order=asc", ["banana", "apple", "cherry"]),
        ("sort=created_at&order=DESC", ["cherry", "apple", "banana"]),
        ("sort=updated", ["apple", "cherry", "banana"]),
        ("sort=updated_at&order=asc", ["banana", "cherry", "apple"]),
    ],
)
def test_sort_and_order_with_aliases(
    client: TestClient, alice: Caller, query: str, expected: list[str]
) -> None:
    ids = {title: create(client, alice, title=title)["id"] for title in ("banana", "apple")}
    create(client, alice, title="cherry")
    client.patch(alice.task(ids["apple"]) + "/complete", headers=alice.headers)

    listed = client.get(f"{alice.tasks}?{query}", headers=alice.headers).json()

    assert titles(listed) == expected


@pytest.mark.spec("US-2.3", "A-3")
def test_paging_with_limit_offset_and_skip_alias(client: TestClient, alice: Caller) -> None:
    for n in range(5):
        create(client, alice, title=f"t{n}")

    page = client.get(f"{alice.tasks}?limit=2&offset=1", headers=alice.headers)
    skipped = client.get(f"{alice.tasks}?limit=2&skip=3", headers=alice.headers)
    past_end = client.get(f"{alice.tasks}?offset=10", headers=alice.headers)

    assert titles(page.json()) == ["t3", "t2"]
    assert page.headers["X-Total-Count"] == "5"
    assert titles(skipped.json()) == ["t1", "t0"]
    assert past_end.json() == []
    assert past_end.headers["X-Total-Count"] == "5"


@pytest.mark.spec("A-3")
def test_default_page_is_100_and_max_limit_is_1000(client: TestClient, alice: Caller) -> None:
    client.post(alice.tasks, json={"title": "x"}, headers=alice.headers)
    too_many = client.get(f"{alice.tasks}?limit=1001", headers=alice.headers)
    most = client.get(f"{alice.tasks}?limit=1000", headers=alice.headers)

    assert too_many.status_code == 422
    assert most.status_code == 200


@pytest.mark.spec("US-2.3", "EC-2")
@pytest.mark.parametrize(
    "query",
    [
        "status=finished",
        "status=",
        "completed=maybe",
        "sort=priority",
        "order=up",
        "limit=0",
        "limit=-1",
        "limit=abc",
        "offset=-1",
        f"offset={2**63}",
        "skip=x",
        "search=" + "x" * 201,
    ],
)
def test_bad_values_are_422(client: TestClient, alice: Caller, query: str) -> None:
    response = client.get(f"{alice.tasks}?{query}", headers=alice.headers)

    assert response.status_code == 422
    body = response.json()
    name = query.partition("=")[0]
    assert body["detail"].startswith(f"{name}")
    assert body["errors"][0]["loc"][:2] == ["query", name]


@pytest.mark.spec("EC-5", "US-2.3", "A-3")
@pytest.mark.parametrize("name", ["limit", "offset", "skip"])
@pytest.mark.parametrize("value", ["1_0", "+10", "10.0", "10%0A", "%2010", "10%20", "-0", "1e1"])
def test_paging_numbers_are_plain_decimal_digits(
    client: TestClient, alice: Caller, name: str, value: str
) -> None:
    """`int()` would read `1_0`, `+10`, `10.0` and `10\\n` as 10; a typo is named, not guessed."""
    response = client.get(f"{alice.tasks}?{name}={value}", headers=alice.headers)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"].startswith(name)
    assert body["errors"][0]["loc"][:2] == ["query", name]


@pytest.mark.spec("EC-5", "US-2.3", "A-3")
def test_paging_numbers_with_leading_zeros_are_still_numbers(
    client: TestClient, alice: Caller
) -> None:
    for n in range(3):
        create(client, alice, title=f"t{n}")

    response = client.get(f"{alice.tasks}?limit=002&offset=01", headers=alice.headers)

    assert response.status_code == 200
    assert len(response.json()) == 2


@pytest.mark.spec("US-2.3", "EC-2")
def test_a_repeated_parameter_counts_by_its_last_value(client: TestClient, alice: Caller) -> None:
    last_good = client.get(f"{alice.tasks}?limit=abc&limit=5", headers=alice.headers)
    last_bad = client.get(f"{alice.tasks}?limit=5&limit=abc", headers=alice.headers)

    assert last_good.status_code == 200
    assert last_bad.status_code == 422


@pytest.mark.spec("US-2.3")
def test_unknown_parameters_are_ignored(client: TestClient, alice: Caller) -> None:
    create(client, alice)

    response = client.get(f"{alice.tasks}?page=2&priority=high&foo=bar", headers=alice.headers)

    assert response.status_code == 200
    assert len(response.json()) == 1


@pytest.mark.spec("US-2.3", "SC-009")
def test_search_with_a_nul_character_is_422(client: TestClient, alice: Caller) -> None:
    response = client.get(f"{alice.tasks}?search=a%00b", headers=alice.headers)

    assert response.status_code == 422
