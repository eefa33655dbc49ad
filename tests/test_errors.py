"""Error answers outside the task rules: 404, 405 and its `Allow`, trailing slashes, the 500,
oversized headers. Every one is JSON with a string `detail` (FR-018)."""

import logging
import socket
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from backend.config import Settings
from backend.main import create_app
from tests.support.helpers import AUTH_URL, SECRET, Caller

FRONTEND = AUTH_URL  # the frontend origin of the apps these tests build themselves


@pytest.mark.spec("FR-017", "FR-018")
def test_unknown_path_and_wrong_method_are_json_errors(client: TestClient, alice: Caller) -> None:
    missing = client.get("/nope")
    wrong_method = client.post(alice.task(1), json={}, headers=alice.headers)

    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"detail": "Method Not Allowed"}


@pytest.mark.spec("FR-018")
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api/u/tasks/1", {"GET", "PUT", "PATCH", "DELETE"}),
        ("DELETE", "/api/u/tasks", {"GET", "POST"}),
        ("GET", "/api/u/tasks/1/complete", {"PATCH"}),
        ("POST", "/health", {"GET"}),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    client: TestClient, alice: Caller, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, path, headers=alice.headers)

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == allowed


@pytest.mark.spec("SC-008")
@pytest.mark.parametrize("suffix", ["/", ""])
def test_trailing_slash_works_without_redirect(
    client: TestClient, alice: Caller, suffix: str
) -> None:
    created = client.post(alice.tasks + suffix, json={"title": "x"}, headers=alice.headers)
    listed = client.get(alice.tasks + suffix, headers=alice.headers, follow_redirects=False)
    one = client.get(
        alice.task(created.json()["id"]) + suffix, headers=alice.headers, follow_redirects=False
    )

    assert (created.status_code, listed.status_code, one.status_code) == (201, 200, 200)


@pytest.mark.spec("FR-017")
def test_an_unhandled_error_is_a_plain_500_with_the_trace_only_in_the_log(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings())

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret-internal-state")

    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR, logger="backend"),
    ):
        response = client.get("/boom", headers={"Origin": FRONTEND, "X-Request-ID": "req-500-1"})

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "secret-internal-state" not in response.text
    assert "RuntimeError: secret-internal-state" in caplog.text
    # The 500 is made inside CORS and the request log (FR-016, FR-017).
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.headers["X-Request-ID"] == "req-500-1"
    assert "request id req-500-1" in caplog.text


@pytest.mark.spec("FR-016", "SC-008")
def test_a_500_carries_cors_headers_and_logs_the_route_not_the_user(
    make_client: Callable[..., TestClient],
    empty_database: URL,
    alice: Caller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A genuine unhandled error: the app on a database nobody migrated (no `task` table). The
    browser must still be allowed to read the JSON `detail`; the log line names the route
    template, like the request log, not the path with the user id."""
    client = make_client(neon_database_url=empty_database.render_as_string(hide_password=False))

    with caplog.at_level(logging.ERROR, logger="backend"):
        response = client.get(alice.tasks, headers={**alice.headers, "Origin": FRONTEND})

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "unhandled error on GET /api/{user_id}/tasks" in caplog.text
    assert alice.id not in caplog.text


@pytest.mark.spec("EC-2", "FR-018")
def test_too_many_headers_is_a_json_431(client: TestClient, alice: Caller) -> None:
    headers = {**alice.headers, **{f"X-Filler-{n}": "x" for n in range(101)}}

    response = client.get(alice.tasks, headers=headers)

    assert response.status_code == 431
    assert isinstance(response.json()["detail"], str)


@pytest.mark.spec("SC-010", "FR-017")
def test_a_503_logs_why_the_database_is_unavailable_but_never_the_password(
    caplog: pytest.LogCaptureFixture, alice: Caller
) -> None:
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = Settings(
        _env_file=None,
        better_auth_secret=SECRET,
        neon_database_url=f"postgresql://alex:S3cretPassw0rd@127.0.0.1:{port}/neondb",
        migrate_on_startup=False,
    )
    with caplog.at_level(logging.WARNING, "backend"), TestClient(create_app(settings)) as client:
        response = client.get(alice.tasks, headers=alice.headers)

    assert response.status_code == 503
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("database")]
    assert logged, caplog.text
    assert "refused" in logged[0].lower()  # libpq's own reason
    assert "S3cretPassw0rd" not in caplog.text
