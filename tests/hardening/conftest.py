"""Fixtures of the hardening suite: Hypothesis profiles, the per-group summary, live servers.

- Hypothesis profiles `hardening` (the default, bounded for the normal run) and `fuzz` (long);
  `HYPOTHESIS_PROFILE=fuzz` picks the long one. They are applied per test through
  `hardening_support.hypothesis_settings()`, never loaded globally, so other tests keep theirs.
- Each group of hardening tests reports one line (cases tried, failures); the lines are printed
  at the end of the run under "hardening summary".
- `live_backend`: one real uvicorn serving the session database, shared by the tests that need
  real HTTP (concurrency, slow clients, header limits).
"""

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import URL

from devtools.servers import Server, backend_server
from tests.hardening.hardening_support import SUMMARY, backend_env

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
