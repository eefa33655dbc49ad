"""`GET /health` (FR-020): public, and it says whether the database answers."""

import pytest
from fastapi.testclient import TestClient


@pytest.mark.spec("FR-020")
def test_health_needs_no_token_and_reports_the_database(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["database"] == "reachable"
