"""`python -m backend [--host H] [--port P] [--workers N]`: the production server.

Defaults come from the environment platforms set (`HOST`, `PORT`, `WEB_CONCURRENCY`); these are
the process's contract with its host, not app settings, so they are read here and not from
`Settings` (and `--help` works without a secret).

Start-up, once, before any worker: the configuration is read, the database reached and its schema
migrated or checked (`backend.startup`), the socket bound; any failure is one line on stderr and
exit code 3 (1 for a configuration error). Then one worker serves in this process, or several
under `backend.supervisor`. Each worker runs uvicorn with the hardened HTTP protocol
(`backend.http_protocol`), proxy headers from `FORWARDED_ALLOW_IPS` (uvicorn's variable; default
127.0.0.1), and the app's one-JSON-line request log on stdout instead of uvicorn's access log;
SIGTERM drains it (`backend.serving`).
"""

import argparse
import copy
import logging.config
import os
import socket
import sys
from typing import Any

from pydantic import SecretStr
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE

from backend.config import Settings, get_settings


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the app's loggers: `backend` like uvicorn's, access lines bare."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["bare"] = {"format": "%(message)s"}
    config["handlers"]["bare"] = {
        "formatter": "bare",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["backend"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["backend.access"] = {
        "handlers": ["bare"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__.splitlines()[0])
    env = os.environ.get
    # All interfaces by default: in a container or PaaS the port is reached from outside.
    parser.add_argument("--host", default=env("HOST", "0.0.0.0"), help="env HOST")  # noqa: S104
    parser.add_argument("--port", type=int, default=env("PORT", "8000"), help="env PORT")
    parser.add_argument(
        "--workers", type=int, default=env("WEB_CONCURRENCY", "1"), help="env WEB_CONCURRENCY"
    )
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every worker shares (listening starts when the first one serves)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def start(args: argparse.Namespace, settings: Settings) -> int:
    """Prepare once, then serve; the exit code."""
    from backend import startup

    logging.config.dictConfig(log_config())
    try:
        url = startup.prepare(settings)
        sockets = [bind(args.host, args.port)]
    except (startup.StartupError, OSError) as failure:
        print(f"backend: start-up failed: {failure}", file=sys.stderr)
        return STARTUP_FAILURE
    # The workers use the database prepared here, as it is, and migrate nothing themselves.
    prepared = settings.model_copy(
        update={
            "neon_database_url": SecretStr(url.render_as_string(hide_password=False)),
            "migrate_on_startup": False,
        }
    )
    logging.getLogger("backend").info(
        "serving on http://%s:%d with %d worker(s)", args.host, args.port, args.workers
    )
    if args.workers > 1:
        from backend.supervisor import Supervisor

        return Supervisor(prepared, sockets, args.workers, log_config()).run()
    from backend.serving import serve

    return serve(prepared, sockets, log_config())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.exit(start(args, get_settings()))


if __name__ == "__main__":
    main()
