"""The health endpoints (FR-020): public; `/health` says whether the database answers,
`/health/live` and `/health/ready` never ask it."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient


@pytest.mark.spec("FR-020")
def test_health_needs_no_token_and_reports_the_database(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["database"] == "reachable"


@pytest.mark.spec("FR-020")
def test_liveness_and_readiness_need_no_token_and_no_database(client: TestClient) -> None:
    live = client.get("/health/live")
    ready = client.get("/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


@pytest.mark.spec("FR-020", "SC-010")
@pytest.mark.internal  # takes the database away
def test_a_database_outage_fails_health_but_neither_liveness_nor_readiness(
    make_client: Callable[..., TestClient],
) -> None:
    """A shared outage must not take every instance out of the balancer (nor restart every
    pod): the API answers it itself, with its JSON 503."""
    client = make_client(neon_database_url="postgresql://u@127.0.0.1:1/db")

    assert client.get("/health").status_code == 503
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
