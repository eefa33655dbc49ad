"""FR-017: one structured line per request, and `X-Request-ID` taken when sane, else made."""

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from tests.support.helpers import SECRET, Caller, create

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
    assert set(first) == {
        "method",
        "route",
        "status",
        "duration_ms",
        "request_id",
        "server_request_id",
        "user",
    }
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


def user_hash(client: TestClient, caller: Caller, caplog: pytest.LogCaptureFixture) -> str:
    """The `user` field of the request log line of one request by `caller`."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=ACCESS):
        assert client.get(caller.tasks, headers=caller.headers).status_code == 200
    (line,) = access_lines(caplog)
    hashed: str = line["user"]
    return hashed


@pytest.mark.spec("FR-017")
def test_a_guessable_user_id_cannot_be_read_back_from_its_hash(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone who reads the log can hash `user-0` … `user-9999`; only a keyed hash resists."""
    hashed = user_hash(client, Caller("user-4242"), caplog)

    guesses = {
        hashlib.blake2b(f"user-{n}".encode(), digest_size=6).hexdigest(): n for n in range(10_000)
    }
    assert re.fullmatch(r"[0-9a-f]{12}", hashed)
    assert hashed not in guesses


@pytest.mark.spec("FR-017", "FR-015")
def test_log_user_hash_key_follows_a_user_across_processes_and_none_is_per_process(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Each app stands for one worker process (or instance, or a restart): with the same key, one
    user has one hash in all their logs; without a key, each process hashes with its own."""
    alice = Caller("alice-0123456789abcdefghijklmnop")
    key = "a-per-deployment-key-0123456789"

    same = {user_hash(make_client(log_user_hash_key=key), alice, caplog) for _ in range(2)}
    other = user_hash(make_client(log_user_hash_key=key + "x"), alice, caplog)
    unset = {user_hash(make_client(), alice, caplog) for _ in range(2)}

    assert len(same) == 1
    assert other not in same
    assert len(unset) == 2
    assert not unset & same


@pytest.mark.spec("FR-017", "FR-015")
@pytest.mark.parametrize("key", [SECRET, "too-short"], ids=["the-jwt-secret", "short"])
def test_log_user_hash_key_is_neither_the_jwt_secret_nor_short(
    make_settings: Callable[..., Settings], key: str
) -> None:
    with pytest.raises(ValueError, match="log_user_hash_key"):
        make_settings(log_user_hash_key=key)


@pytest.mark.spec("FR-017")
def test_a_client_request_id_is_logged_beside_a_server_one(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A client's id is kept for tracing, but any client may send any id, even another's: the
    server's own id names each request's line uniquely."""
    with caplog.at_level(logging.INFO, logger=ACCESS):
        echoed = [client.get("/health", headers={"X-Request-ID": "trace-1"}) for _ in range(2)]
        plain = client.get("/health")

    first, second, third = access_lines(caplog)
    assert [r.headers["X-Request-ID"] for r in echoed] == ["trace-1", "trace-1"]
    assert first["request_id"] == second["request_id"] == "trace-1"
    assert re.fullmatch(r"[0-9a-f]{32}", first["server_request_id"])
    assert first["server_request_id"] != second["server_request_id"]
    assert third["request_id"] == plain.headers["X-Request-ID"]
    assert "server_request_id" not in third  # the id is the server's already
