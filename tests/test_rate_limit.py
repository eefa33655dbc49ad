"""The per-user rate limit (A-7): off by default; when on, a 429 with `Retry-After`."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.helpers import Caller


@pytest.mark.spec("A-7", "FR-018")
def test_rate_limit_is_per_user_and_answers_429_with_retry_after(
    make_client: Callable[..., TestClient], alice: Caller, bob: Caller
) -> None:
    client = make_client(rate_limit_per_minute=3)

    statuses = [client.get(alice.tasks, headers=alice.headers).status_code for _ in range(4)]
    limited = client.get(alice.tasks, headers=alice.headers)

    assert statuses == [200, 200, 200, 429]
    assert int(limited.headers["Retry-After"]) >= 1
    assert isinstance(limited.json()["detail"], str)
    assert client.get(bob.tasks, headers=bob.headers).status_code == 200


@pytest.mark.spec("A-7")
@pytest.mark.internal  # our default configuration; a deployment may switch it on
def test_rate_limit_is_off_by_default(client: TestClient, alice: Caller) -> None:
    assert all(client.get(alice.tasks, headers=alice.headers).status_code == 200 for _ in range(50))
