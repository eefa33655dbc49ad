"""`python -m backend`: the production command (its header limit is attacked in
tests/hardening/test_hardening_limits.py)."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from backend.__main__ import parse_args
from devtools.servers import backend_server, running
from tests.support.helpers import AUTH_URL, SECRET, Caller

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.spec("FR-015")
def test_host_port_and_workers_default_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HOST", "PORT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    defaults = parse_args([])
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    from_env = parse_args([])
    from_flags = parse_args(["--host", "::1", "--port", "80", "--workers", "2"])

    assert (defaults.host, defaults.port, defaults.workers) == ("0.0.0.0", 8000, 1)  # noqa: S104
    assert (from_env.host, from_env.port, from_env.workers) == ("127.0.0.1", 9123, 3)
    assert (from_flags.host, from_flags.port, from_flags.workers) == ("::1", 80, 2)


@pytest.mark.spec("FR-015")
def test_help_needs_no_configuration(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend", "--help"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "WEB_CONCURRENCY" in result.stdout


@pytest.mark.spec("FR-017")
def test_the_server_writes_one_json_line_per_request_to_stdout(
    database_url: URL, tmp_path: Path
) -> None:
    log = tmp_path / "backend.log"
    env = {
        "BETTER_AUTH_SECRET": SECRET,
        "BETTER_AUTH_URL": AUTH_URL,
        "NEON_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "MIGRATE_ON_STARTUP": "false",
    }
    user = Caller(f"log-{uuid.uuid4().hex[:12]}")
    with running(backend_server(env, log_path=log)) as (server,):
        listed = httpx.get(
            server.url + user.tasks, headers={**user.headers, "X-Request-ID": "from-the-proxy"}
        )
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]

    assert listed.status_code == 200
    assert listed.headers["X-Request-ID"] == "from-the-proxy"
    mine = [line for line in lines if line["request_id"] == "from-the-proxy"]
    assert len(mine) == 1
    assert mine[0]["route"] == "/api/{user_id}/tasks"
    assert mine[0]["status"] == 200
    assert user.token not in log.read_text()
    assert user.id not in log.read_text()
