"""Errors as Better Auth answers them: `{"code", "message"}` JSON, and nothing else.

No stack trace and no echoed input reaches a client: a 422 of FastAPI's becomes Better Auth's
400 `VALIDATION_ERROR` naming locations and reasons only (the input could be a password).
"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class AuthError(Exception):
    """An error answered as Better Auth's `{"code", "message"}` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def _auth_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)


async def _invalid_body(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"[{'.'.join(str(part) for part in error['loc'])}] {error['msg']}" for error in exc.errors()
    )
    return JSONResponse({"code": "VALIDATION_ERROR", "message": problems}, status_code=400)


def too_large() -> JSONResponse:
    """413; the connection closes, as the body it answers may not have been read."""
    body = {"code": "PAYLOAD_TOO_LARGE", "message": "Request body too large"}
    return JSONResponse(body, status_code=413, headers={"Connection": "close"})


async def _too_large(_: Request, __: Exception) -> JSONResponse:
    return too_large()


async def _unexpected(_: Request, __: Exception) -> JSONResponse:
    body = {"code": "INTERNAL_SERVER_ERROR", "message": "Internal server error"}
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.add_exception_handler(413, _too_large)  # a streamed body past `max_body_size`
    app.add_exception_handler(Exception, _unexpected)
