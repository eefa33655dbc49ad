"""Every error is JSON with a human-readable string `detail` (frontends do `new Error(detail)`).

- HTTP errors keep their status and headers; the detail is always a string.
- 422 adds `errors`: FastAPI's field errors reduced to `loc`, `msg`, `type` (the rejected input
  is not echoed back). An unauthenticated or foreign caller gets 401/403 instead: FastAPI parses
  JSON before dependencies run, and a 422 must not answer a caller the route would refuse. The
  check is the auth layer's, handed in by `main.py` (`install_error_handlers`), so this module
  depends on nothing above the database.
- A database that cannot be reached, or a statement cancelled at its deadline, is a 503 with
  `Retry-After`, not a 500.
- Anything else is a plain 500; the trace goes to the server log only.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.db import DatabaseUnavailableError, TenantBusyError

logger = logging.getLogger("backend")

DB_RETRY_AFTER_SECONDS = 2
TENANT_RETRY_AFTER_SECONDS = 1


def error_response(
    status_code: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, detail, exc.headers)


def _undecodable_body(cause: BaseException) -> RequestValidationError:
    reason = "nested too deeply" if isinstance(cause, RecursionError) else "not valid UTF-8 JSON"
    return RequestValidationError(
        [{"type": "json_invalid", "loc": ("body",), "msg": f"JSON decode error: {reason}"}]
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()
    ]


def _describe(error: dict[str, Any]) -> str:
    loc = error["loc"]
    if len(loc) > 1 and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    where = ".".join(str(part) for part in loc)
    return f"{where}: {error['msg']}" if where else error["msg"]


def _validation_error_response(exc: RequestValidationError) -> JSONResponse:
    errors = _field_errors(exc)
    return JSONResponse(
        {"detail": "; ".join(_describe(err) for err in errors), "errors": errors},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # libpq's reason (refused, timed out, authentication failed …) names no password.
    logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    return error_response(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "Database unavailable; retry shortly",
        {"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
    )


async def tenant_busy(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "Too many of your requests at once; retry shortly",
        {"Retry-After": str(TENANT_RETRY_AFTER_SECONDS)},
    )


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """The trace goes to the log under the route template (like the request log: the path names
    the user), and the request id that ties it to the client's answer."""
    route = getattr(request.scope.get("route"), "path", None)
    logger.error(
        "unhandled error on %s %s (request id %s)",
        request.method,
        route or "(no route)",
        getattr(request.state, "request_id", None),
        exc_info=exc,
    )
    return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error")


CallerCheck = Callable[[Request], Awaitable[None]]
"""Raises the `HTTPException` (401/403) a route would answer a refused caller with."""


def install_error_handlers(app: FastAPI, check_caller: CallerCheck) -> None:
    """Register the handlers; a 422 goes only to callers `check_caller` lets through."""

    async def refused_or_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        try:
            await check_caller(request)
        except StarletteHTTPException as refusal:
            return _http_error_response(refusal)
        except DatabaseUnavailableError as failure:  # session-token lookup, database down
            return await database_unavailable(request, failure)
        return _validation_error_response(exc)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.__cause__ is not None:
            # FastAPI's 400 for a JSON body it cannot even decode (invalid UTF-8, nesting deeper
            # than the parser's recursion limit): the same client error as malformed JSON.
            return await refused_or_invalid(request, _undecodable_body(exc.__cause__))
        return _http_error_response(exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return await refused_or_invalid(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DatabaseUnavailableError, database_unavailable)
    app.add_exception_handler(TenantBusyError, tenant_busy)
    app.add_exception_handler(Exception, internal_error)
