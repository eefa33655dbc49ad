"""Fixtures of the hardening suite: Hypothesis profiles, the per-group summary, live servers.

- Hypothesis profiles `hardening` (the default, bounded for the normal run) and `fuzz` (long);
  `HYPOTHESIS_PROFILE=fuzz` picks the long one. They are applied per test through
  `tests.support.hardening.hypothesis_settings()`, never loaded globally, so other tests keep
  theirs.
- Each group of hardening tests reports one line (cases tried, failures); the lines are printed
  at the end of the run under "hardening summary".
- `live_backend`: one real uvicorn serving the session database, shared by the tests that need
  real HTTP (concurrency, slow clients, header limits).
- `app_on(url, **settings)`: the app started in process on another database URL (a proxy's);
  `proxy`: the Neon-like `LatencyProxy` in front of the session database (`via(proxy)`).
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import URL

from backend.config import Settings
from backend.main import create_app
from devtools.servers import Server, backend_server
from loadtests.latency_proxy import LatencyProxy
from tests.support.hardening import SUMMARY, backend_env, proxy_target
from tests.support.helpers import AUTH_URL, SECRET
from tests.support.neon import CONNECT_TIMEOUT, DEADLINE

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "hardening",
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "fuzz",
    max_examples=1000,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=_SLOW_OK,
)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not SUMMARY:
        return
    terminalreporter.section("hardening summary")
    for line in SUMMARY:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def live_backend(database_url: URL) -> Iterator[Server]:
    """The backend under a real uvicorn on 127.0.0.1, on the session database."""
    server = backend_server(backend_env(database_url))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def neon_settings(url: str, **overrides: Any) -> Settings:
    """Settings for the app on `url`, with the Neon tests' short deadline and connect timeout."""
    values: dict[str, Any] = {
        "better_auth_secret": SECRET,
        "better_auth_url": AUTH_URL,
        "neon_database_url": url,
        "migrate_on_startup": False,
        "db_statement_timeout_seconds": DEADLINE,
        "db_connect_timeout_seconds": CONNECT_TIMEOUT,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@pytest.fixture
def app_on() -> Iterator[Callable[..., TestClient]]:
    """`app_on(url, **settings)`: a started app on `url`; shut down after the test.

    A 500 is answered as a 500 (not raised into the test), so it is counted like any status.
    """
    clients: list[TestClient] = []

    def start(url: str, **overrides: Any) -> TestClient:
        app = create_app(neon_settings(url, **overrides))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def proxy(database_url: URL) -> Iterator[LatencyProxy]:
    """A proxy in front of the session database; its URL is `via(proxy)`."""
    with LatencyProxy(proxy_target(database_url), 0) as running:
        yield running
