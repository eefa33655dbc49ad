"""CORS (FR-016): what a browser on the frontend's origin may send and read, errors included."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import Caller


@pytest.mark.spec("FR-016", "A-6", "SC-008", "FR-021")
def test_cors_preflight_needs_no_token_and_allows_authorization_and_idempotency_key(
    client: TestClient, alice: Caller, origin: str
) -> None:
    """A header the preflight does not allow is never sent: without `Idempotency-Key` the
    frontend's retried creates would lose their key."""
    response = client.options(
        alice.tasks,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )

    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == origin
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "idempotency-key" in allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.spec("FR-016", "A-6", "SC-008")
def test_cors_exposes_headers_frontends_read_and_refuses_other_origins(
    make_client: Callable[..., TestClient], alice: Caller
) -> None:
    client = make_client(cors_origins="https://app.example.com, https://staging.example.com/")

    allowed = client.get(
        alice.tasks, headers={**alice.headers, "Origin": "https://staging.example.com"}
    )
    refused = client.get(
        alice.tasks, headers={**alice.headers, "Origin": "https://evil.example.com"}
    )

    assert allowed.headers["Access-Control-Allow-Origin"] == "https://staging.example.com"
    assert "x-total-count" in allowed.headers["Access-Control-Expose-Headers"].lower()
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.spec("FR-016", "SC-008")
def test_a_cross_origin_401_lets_the_page_read_why(
    client: TestClient, alice: Caller, origin: str
) -> None:
    """`WWW-Authenticate` is exposed, so a page tells an expired token from a missing one."""
    response = client.get(
        alice.tasks, headers={"Origin": origin, "Authorization": "Bearer not-a-jwt"}
    )

    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == origin
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"www-authenticate", "x-request-id", "retry-after"} <= exposed
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.spec("FR-016", "EC-2", "SC-008")
def test_size_limit_answers_carry_cors_headers_so_the_frontend_can_read_them(
    client: TestClient, alice: Caller, origin: str
) -> None:
    response = client.post(
        alice.tasks,
        content=b"x" * 70_000,
        headers={**alice.headers, "Origin": origin, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["Access-Control-Allow-Origin"] == origin
