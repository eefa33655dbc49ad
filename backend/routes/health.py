"""`GET /health`: liveness plus database reachability, for load balancers (no token)."""

from typing import Literal

import psycopg2
from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from backend.db import DatabaseUnavailableError
from backend.dependencies import DatabaseDep
from backend.errors import DB_RETRY_AFTER_SECONDS, ERROR_RESPONSES, RETRY_AFTER_HEADER

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["reachable", "unreachable"]
    detail: str


@router.get(
    "/health",
    operation_id="health",
    # No token: an explicit empty `security`, so generators and linters know it is public.
    openapi_extra={"security": []},
    responses={
        405: ERROR_RESPONSES[405],
        503: {"model": Health, "headers": {"Retry-After": RETRY_AFTER_HEADER}},
    },
)
async def health(db: DatabaseDep, response: Response) -> Health:
    try:
        await db.fetch("SELECT 1")
    except (DatabaseUnavailableError, psycopg2.Error):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        response.headers["Retry-After"] = str(DB_RETRY_AFTER_SECONDS)
        return Health(status="unavailable", database="unreachable", detail="Database unreachable")
    return Health(status="ok", database="reachable", detail="OK")
