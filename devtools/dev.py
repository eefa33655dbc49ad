"""`nox -s dev`: the whole product on this machine, one command, Ctrl-C to stop.

Starts the embedded PostgreSQL (data kept in `.data/postgres`), migrates it, runs mock_auth on
BETTER_AUTH_URL's port and the backend on :8000 with reload, and prints curl lines that work.
Without a `.env` (or BETTER_AUTH_SECRET in the environment) it writes a `.env` with a fresh
random secret, so tokens keep working across restarts.
"""

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from backend import embedded_db, migrate
from devtools.servers import backend_server, mock_auth_server, running

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"
DATA_DIR = ROOT / ".data"
BACKEND_PORT = 8000


def ensure_env_file(env_file: Path = ENV_FILE) -> None:
    """Write `env_file` from `.env.example` with a fresh secret, readable by its owner only.

    The mode is set when the file is created (`O_EXCL`, 0600), not after: the secret signs every
    token, and a file briefly world-readable (or a planted symlink) would leak it.
    """
    if "BETTER_AUTH_SECRET" in os.environ or env_file.exists():
        return
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    secret = secrets.token_urlsafe(32)
    lines = [
        f"BETTER_AUTH_SECRET={secret}" if line.startswith("BETTER_AUTH_SECRET=") else line
        for line in example.splitlines()
    ]
    descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    print(f"wrote {env_file.name} with a fresh random BETTER_AUTH_SECRET")


def demo_token(env: dict[str, str]) -> dict[str, str]:
    output = subprocess.run(
        [sys.executable, "-m", "mock_auth", "token", "--email", "demo@example.com", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    token: dict[str, str] = json.loads(output)
    return token


def main() -> int:
    os.chdir(ROOT)
    ensure_env_file()
    from backend.config import get_settings

    settings = get_settings()
    url = (
        settings.neon_database_url.get_secret_value()
        if settings.neon_database_url
        else embedded_db.start(DATA_DIR / "postgres").render_as_string(hide_password=False)
    )
    migrate.upgrade(url)
    env = {
        "NEON_DATABASE_URL": str(url),
        "BETTER_AUTH_SECRET": settings.better_auth_secret.get_secret_value(),
        "MOCK_AUTH_STATE_FILE": str(DATA_DIR / "mock_auth.json"),
    }
    auth_port = urlsplit(settings.better_auth_url).port or 3000
    backend = backend_server(env, port=BACKEND_PORT, reload=True)
    auth = mock_auth_server(env, port=auth_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with running(auth, backend):
            demo = demo_token({**os.environ, **env})
            header = shlex.quote(f"Authorization: Bearer {demo['token']}")
            tasks = f"{backend.url}/api/{demo['user_id']}/tasks"
            print(
                f"""
Backend   {backend.url}   (docs: {backend.url}/docs)
mock_auth {auth.url}/api/auth   (Better Auth API stand-in)
Database  {"NEON_DATABASE_URL" if settings.neon_database_url else "embedded PostgreSQL, .data/"}

Create and list a task as demo@example.com (token valid 15 min; mint another with
`python -m mock_auth token --email demo@example.com`):

  curl -s -X POST {tasks} -H {header} \\
       -H 'Content-Type: application/json' -d '{{"title":"Try the API"}}'
  curl -s {tasks} -H {header}

Or sign up like a frontend would:

  curl -s -X POST {auth.url}/api/auth/sign-up/email -H 'Content-Type: application/json' \\
       -d '{{"name":"Ada","email":"ada@example.com","password":"correct horse"}}'
  # then GET {auth.url}/api/auth/token with 'Authorization: Bearer <token from sign-up>'

Ctrl-C stops everything.
""",
                flush=True,
            )
            while all(
                server.process and server.process.poll() is None for server in (auth, backend)
            ):
                time.sleep(0.5)
            print("a server exited; stopping", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if settings.neon_database_url is None:
            embedded_db.stop(DATA_DIR / "postgres")
            print("stopped backend, mock_auth and PostgreSQL")


if __name__ == "__main__":
    sys.exit(main())
