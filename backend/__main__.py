"""`python -m backend [--host H] [--port P] [--workers N]`: the production server.

Defaults come from the environment platforms set (`HOST`, `PORT`, `WEB_CONCURRENCY`); these are
the process's contract with its host, not app settings, so they are read here and not from
`Settings` (and `--help` works without a secret).

What it fixes beyond plain `uvicorn --factory backend.main:create_app` (figures:
loadtests/README.md):

- **Header size limit in the parser**: httptools, with a cap on the request head
  (`backend.http_protocol`), so one huge header block cannot stall the worker's other clients.
- **Proxy headers** (`X-Forwarded-For`, `X-Forwarded-Proto`) are honoured from the addresses in
  `FORWARDED_ALLOW_IPS` (uvicorn's variable; default 127.0.0.1).
- **Logging.** uvicorn's access log is off; the app writes one JSON line per request on
  `backend.access` (see `backend.middleware.RequestLogMiddleware`), to stdout, as is.
"""

import argparse
import copy
import os
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from backend.http_protocol import HeadLimitedHttpToolsProtocol


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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    uvicorn.run(
        "backend.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=HeadLimitedHttpToolsProtocol,
        proxy_headers=True,
        access_log=False,
        log_config=log_config(),
        server_header=False,
    )


if __name__ == "__main__":
    main()
