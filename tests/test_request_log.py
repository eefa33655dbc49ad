"""FR-017: one structured line per request, and `X-Request-ID` taken when sane, else made."""

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import Caller, create

ACCESS = "backend.access"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS]


@pytest.mark.spec("FR-017")
def test_each_request_is_one_json_line_without_token_path_or_body(
    client: TestClient, alice: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    task = create(client, alice, title="secret-title")
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = client.put(
            alice.task(task["id"]),
            json={"title": "secret-body"},
            headers={**alice.headers, "X-Request-ID": "abc-123"},
        )
        client.get("/api/someone-else/tasks", headers=alice.headers)
        client.get(alice.tasks)

    lines = access_lines(caplog)
    assert response.headers["X-Request-ID"] == "abc-123"
    assert len(lines) == 3
    first, foreign, anonymous = lines
    assert set(first) == {"method", "route", "status", "duration_ms", "request_id", "user"}
    assert first["method"] == "PUT"
    assert first["route"] == "/api/{user_id}/tasks/{task_id}"
    assert first["status"] == 200
    assert 0 < first["duration_ms"] < 5000
    assert first["request_id"] == "abc-123"
    assert len(first["user"]) == 12
    assert first["user"] != alice.id
    assert (foreign["status"], foreign["user"]) == (403, None)
    assert (anonymous["status"], anonymous["user"]) == (401, None)
    assert anonymous["user"] is None
    text = caplog.text
    for secret in (alice.token, alice.id, "secret-body", "secret-title", "Bearer"):
        assert secret not in text


@pytest.mark.spec("FR-017")
@pytest.mark.parametrize(
    "sent",
    [None, b"", b"x" * 129, b'a"}{"forged": 1', b"spaces are not ok", "\u00e9t\u00e9".encode()],
    ids=["missing", "empty", "too-long", "log-injection", "spaces", "non-ascii"],
)
def test_an_insane_request_id_is_replaced_by_a_generated_one(
    client: TestClient, caplog: pytest.LogCaptureFixture, sent: bytes | None
) -> None:
    headers = {} if sent is None else {b"X-Request-ID": sent}
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = client.get("/health", headers=headers)
        again = client.get("/health", headers=headers)

    echoed = response.headers["X-Request-ID"]
    assert echoed.encode() != sent
    assert len(echoed) == 32
    assert echoed != again.headers["X-Request-ID"]
    assert [line["request_id"] for line in access_lines(caplog)] == [
        echoed,
        again.headers["X-Request-ID"],
    ]


@pytest.mark.spec("FR-017", "FR-018")
def test_answers_made_before_routing_are_logged_too(
    client: TestClient, alice: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        too_big = client.post(alice.tasks, content=b"x" * 70_000, headers=alice.headers)
        missing = client.get("/nope")

    assert (too_big.status_code, missing.status_code) == (413, 404)
    assert [(line["status"], line["route"]) for line in access_lines(caplog)] == [
        (413, None),
        (404, None),
    ]
    assert all(r.headers.get("X-Request-ID") for r in (too_big, missing))


@pytest.mark.spec("FR-017", "FR-016")
def test_a_cors_preflight_is_logged_and_gets_a_request_id(
    client: TestClient, alice: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = client.options(
            alice.tasks,
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, x-request-id",
            },
        )

    assert response.status_code == 200
    assert "x-request-id" in response.headers["Access-Control-Allow-Headers"].lower()
    assert [(line["method"], line["status"]) for line in access_lines(caplog)] == [("OPTIONS", 200)]
    assert access_lines(caplog)[0]["request_id"] == response.headers["X-Request-ID"]
