"""The per-user rate limit (A-7): on by default at a rate no frontend meets, 429 with
`Retry-After` past it, per process in memory, or shared by every worker through a real Redis
(`RATE_LIMIT_STORAGE_URL`), and an unreachable Redis never takes the API down."""

import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from backend.config import Settings
from devtools.servers import Redis, backend_server, redis_server, running
from tests.support.hardening import backend_env
from tests.support.helpers import Caller, unavailable


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


@pytest.mark.spec("A-7", "SC-011")
@pytest.mark.internal  # our default configuration
def test_rate_limit_is_on_by_default_above_what_a_busy_frontend_sends(
    make_client: Callable[..., TestClient], make_settings: Callable[..., Settings], alice: Caller
) -> None:
    default = Settings.model_fields["rate_limit_per_minute"].default
    client = make_client(rate_limit_per_minute=default)
    # A busy page (a list per action, a person clicking as fast as they can) sends a few
    # requests a second; the default allows a minute's worth of 20 a second at once.
    statuses = [client.get(alice.tasks, headers=alice.headers).status_code for _ in range(default)]
    # Tokens come back at default/60 a second meanwhile: the 429 comes a little later.
    over = next(
        response
        for response in (client.get(alice.tasks, headers=alice.headers) for _ in range(default))
        if response.status_code != 200
    )

    assert default >= 600
    assert statuses == [200] * default
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) >= 1


# --- shared through Redis --------------------------------------------------------------------


@pytest.fixture
def redis() -> Iterator[Redis]:
    """A real redis-server of the test's own; missing, the test skips (fails under CI=true)."""
    with redis_server() as server:
        if server is None:
            unavailable("redis-server missing: apt-get install redis-server")
        assert server is not None
        yield server


def accepted(url: str, caller: Caller, requests: int) -> int:
    """How many of `requests` list calls, each on a new connection, were not limited."""
    statuses = [
        httpx.get(url + caller.tasks, headers=caller.headers, timeout=10).status_code
        for _ in range(requests)
    ]
    assert set(statuses) <= {200, 429}
    return statuses.count(200)


@pytest.mark.spec("A-7", "SC-012")
def test_the_limit_holds_across_worker_processes_with_redis_and_multiplies_without(
    database_url: URL, redis: Redis
) -> None:
    """60 a minute, two workers, 150 requests of one user: in memory each worker has its own
    60 (the issue counted 231 of 600 through four), through Redis the fleet has one 60."""
    caller = Caller("shared-limit-user-0123456789abc")
    limit = {"RATE_LIMIT_PER_MINUTE": "60"}
    with running(backend_server(backend_env(database_url, **limit), workers=2)) as (memory,):
        started = time.monotonic()
        in_memory = accepted(memory.url, caller, 150)
        refilled = int(time.monotonic() - started) + 1  # each bucket gains one a second
    env = backend_env(database_url, **limit, RATE_LIMIT_STORAGE_URL=redis.url)
    with running(backend_server(env, workers=2)) as (shared,):
        through_redis = accepted(shared.url, caller, 150)

    assert 60 < in_memory <= 120 + 2 * refilled
    assert 55 <= through_redis <= 66  # a window boundary passed meanwhile may add a few


@pytest.mark.spec("A-7", "SC-011")
def test_an_unreachable_redis_never_takes_the_api_down(
    make_client: Callable[..., TestClient],
    redis: Redis,
    alice: Caller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(rate_limit_per_minute=1000, rate_limit_storage_url=redis.url)
    before = client.get(alice.tasks, headers=alice.headers)
    redis.stop()
    with caplog.at_level(logging.WARNING, logger="backend"):
        started = time.monotonic()
        during = [client.get(alice.tasks, headers=alice.headers) for _ in range(20)]
        took = time.monotonic() - started

    assert before.status_code == 200
    assert [response.status_code for response in during] == [200] * 20
    assert took < 2  # Redis is not waited for on every request once it failed
    assert caplog.text.count("rate limit storage unreachable") == 1
