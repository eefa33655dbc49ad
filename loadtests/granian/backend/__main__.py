"""`python -m backend --host H --port P --workers N`: the app under granian, as a measuring stick.

Prepares once as `python -m backend` does (the database reached, migrations run), then becomes
granian (`exec`, so the process id the load test counts CPU under stays the same): ASGI with the
app factory, HTTP/1 only, no websockets, uvloop, granian's access log off and the app's own
loggers (the request log on stdout), and a 10 s head timeout like `HTTP_HEAD_TIMEOUT_SECONDS`.

granian is no dependency of the project: it runs under `$GRANIAN_PYTHON` (default
`loadtests/granian/.venv/bin/python`), an environment with this project and granian installed.
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAD_TIMEOUT_MS = 10_000


def _served_package() -> str:
    import backend

    return str(backend.__path__[-1])


def main() -> None:
    python = os.environ.get("GRANIAN_PYTHON") or str(HERE.parent / ".venv" / "bin" / "python")
    if not Path(python).exists():
        sys.exit(f"granian shim: no {python}; see loadtests/README.md")
    parser = argparse.ArgumentParser(prog="python -m backend (granian)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    from backend import startup
    from backend.config import get_settings

    # `backend.__main__` is this file: the real one's logging configuration, loaded by its path.
    real = Path(_served_package()) / "__main__.py"
    spec = importlib.util.spec_from_file_location("_served_backend_main", real)
    assert spec is not None
    assert spec.loader is not None
    served = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(served)

    settings = get_settings()
    url = startup.prepare(settings)
    os.environ["NEON_DATABASE_URL"] = url.render_as_string(hide_password=False)
    os.environ["MIGRATE_ON_STARTUP"] = "false"
    # One file for every run (the same text each time), so that none is left behind per run.
    config = Path(tempfile.gettempdir()) / "loadtests-granian-log-config.json"
    config.write_text(json.dumps(served.log_config()))
    command = [python, "-m", "granian", "--interface", "asgi", "--factory"]
    command += ["--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
    command += ["--http", "1", "--no-ws", "--loop", "uvloop", "--no-access-log"]
    command += ["--log-config", str(config), "--http1-header-read-timeout", str(HEAD_TIMEOUT_MS)]
    command.append("backend.main:create_app")
    os.execv(python, command)  # noqa: S606


if __name__ == "__main__":
    main()
