"""What an unmodified browser frontend needs beyond status codes (SC-008), checkable by URL.

CORS preflight and answers from the frontend's origin (also on errors, or the browser hides the
body), the headers it reads (`Location`, `X-Total-Count`) exposed, `detail` strings it can show,
no redirect on trailing slashes (a cross-origin 307 drops `Authorization`), a bare JSON array,
and timestamps in UTC on every write.
"""

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import Caller, create

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def listed(header: str | None) -> set[str]:
    return {part.strip().lower() for part in (header or "").split(",") if part.strip()}


@pytest.mark.spec("FR-016", "SC-008", "A-6")
@pytest.mark.parametrize("method", METHODS)
def test_preflight_from_the_frontend_allows_every_method_with_authorization(
    client: TestClient, alice: Caller, origin: str, method: str
) -> None:
    path = alice.tasks if method in ("GET", "POST") else alice.task(1)

    response = client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )

    assert response.status_code in (200, 204), response.text
    assert response.headers.get("access-control-allow-origin") == origin
    assert listed(response.headers.get("access-control-allow-methods")) & {method.lower(), "*"}
    assert "authorization" in listed(response.headers.get("access-control-allow-headers"))


@pytest.mark.spec("FR-016", "SC-008", "A-3")
def test_location_and_total_count_are_readable_cross_origin(
    client: TestClient, alice: Caller, origin: str
) -> None:
    headers = {**alice.headers, "Origin": origin}

    created = client.post(alice.tasks, json={"title": "from the browser"}, headers=headers)
    listing = client.get(alice.tasks, headers=headers)

    for response, header in ((created, "location"), (listing, "x-total-count")):
        assert response.headers.get("access-control-allow-origin") == origin
        assert header in listed(response.headers.get("access-control-expose-headers")), header
    assert listing.headers["x-total-count"] == "1"


@pytest.mark.spec("FR-016", "SC-008", "FR-017")
def test_error_answers_carry_cors_headers_and_a_detail_string(
    client: TestClient, alice: Caller, origin: str
) -> None:
    cross = {"Origin": origin}
    answers = {
        401: client.get(alice.tasks, headers=cross),
        404: client.get(alice.task(987654321), headers={**alice.headers, **cross}),
        422: client.post(alice.tasks, json={"title": ""}, headers={**alice.headers, **cross}),
    }

    for status, response in answers.items():
        assert response.status_code == status
        assert response.headers.get("access-control-allow-origin") == origin, status
        assert isinstance(response.json()["detail"], str), status
        assert response.json()["detail"].strip(), status


@pytest.mark.spec("SC-008")
def test_item_routes_accept_a_trailing_slash_without_redirect(
    client: TestClient, alice: Caller
) -> None:
    task = create(client, alice)
    url = alice.task(task["id"]) + "/"

    put = client.put(url, json={"title": "renamed"}, headers=alice.headers)
    patch = client.patch(url, json={"description": "patched"}, headers=alice.headers)
    toggle = client.patch(alice.task(task["id"]) + "/complete/", headers=alice.headers)
    deleted = client.delete(url, headers=alice.headers)

    assert (put.status_code, patch.status_code) == (200, 200), (put.text, patch.text)
    assert (toggle.status_code, deleted.status_code) == (200, 204), (toggle.text, deleted.text)


@pytest.mark.spec("A-5", "FR-019")
def test_list_is_a_bare_array_and_every_timestamp_is_utc(client: TestClient, alice: Caller) -> None:
    task = create(client, alice, title="timestamps")
    updated = client.put(alice.task(task["id"]), json={"title": "t2"}, headers=alice.headers)
    toggled = client.patch(alice.task(task["id"]) + "/complete", headers=alice.headers)
    listing = client.get(alice.tasks, headers=alice.headers).json()

    assert isinstance(listing, list)
    for shown in (task, updated.json(), toggled.json(), *listing):
        for stamp in ("created_at", "updated_at"):
            assert datetime.fromisoformat(shown[stamp]).utcoffset() == timedelta(0), shown[stamp]
