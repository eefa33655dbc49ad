"""The response headers a browser frontend must be allowed to read (the bearer and JWT plugins)."""

from starlette.responses import Response

EXPOSED_HEADERS = ["set-auth-jwt", "set-auth-token"]


def expose(response: Response) -> None:
    response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
