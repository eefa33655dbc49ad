"""How the API documents its errors and headers in OpenAPI: the shapes every error body has,
and the answers each route declares (the TypeScript client is generated from them)."""

from typing import Any

from pydantic import BaseModel

from backend.middleware import MAX_HEADER_BYTES, MAX_HEADER_COUNT


class ErrorResponse(BaseModel):
    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: str
    errors: list[FieldError]


RETRY_AFTER_HEADER = {"description": "Seconds to wait", "schema": {"type": "integer"}}
CHALLENGE_HEADER = {
    "description": 'Bearer challenge; `error="invalid_token"` when a token was sent',
    "schema": {"type": "string"},
}
ALLOW_HEADER = {"description": "Methods this path supports", "schema": {"type": "string"}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorResponse,
        "description": "Missing, malformed, expired or forged token",
        "headers": {"WWW-Authenticate": CHALLENGE_HEADER},
    },
    403: {"model": ErrorResponse, "description": "The token's user is not the URL's user"},
    405: {
        "model": ErrorResponse,
        "description": "Method not allowed on this path",
        "headers": {"Allow": ALLOW_HEADER},
    },
    422: {"model": ValidationErrorResponse, "description": "Invalid body, path or query value"},
    431: {
        "model": ErrorResponse,
        "description": (
            f"Request headers over {MAX_HEADER_BYTES // 1024} KiB or {MAX_HEADER_COUNT} fields"
        ),
    },
    429: {
        "model": ErrorResponse,
        "description": "Per-user rate limit, or this user's requests in flight, exceeded",
        "headers": {"Retry-After": RETRY_AFTER_HEADER},
    },
    503: {
        "model": ErrorResponse,
        "description": "Database unavailable",
        "headers": {"Retry-After": RETRY_AFTER_HEADER},
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such task for this user"}
}
TOTAL_COUNT_HEADER = {
    "description": "Number of matching tasks before paging",
    "schema": {"type": "integer"},
}
LOCATION_HEADER = {"description": "URL of the new task", "schema": {"type": "string"}}


def body_too_large(max_bytes: int) -> dict[int | str, dict[str, Any]]:
    """The 413 of the routes that take a body, with the configured limit (`MAX_BODY_BYTES`)."""
    return {
        413: {
            "model": ErrorResponse,
            "description": f"Request body larger than the limit ({max_bytes} bytes)",
        }
    }
