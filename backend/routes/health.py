"""Health endpoints for balancers and orchestrators, no token:

- `GET /health/live`: the process answers (a liveness probe: never the database, or one outage
  would restart every instance);
- `GET /health/ready`: 200 while the worker takes traffic, 503 once it drains for shutdown (a
  readiness probe or a balancer's check: a shared database outage does not take every instance
  out, the API answers it with its own JSON 503);
- `GET /health`: database reachability, from one probe shared by concurrent callers.
"""

from typing import Any, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from backend.db import DatabaseUnavailableError
from backend.dependencies import DatabaseDep
from backend.errors import DB_RETRY_AFTER_SECONDS
from backend.openapi import ERROR_RESPONSES, RETRY_AFTER_HEADER

router = APIRouter(tags=["health"])
# No token: an explicit empty `security`, so generators and linters know it is public.
PUBLIC: dict[str, Any] = {"security": []}


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["reachable", "unreachable"]
    detail: str


def answers(model_503: type[BaseModel] | None = None) -> dict[int | str, dict[str, Any]]:
    """The documented answers besides 200: 405, and 503 with `Retry-After` where one may come."""
    documented: dict[int | str, dict[str, Any]] = {405: ERROR_RESPONSES[405]}
    if model_503 is not None:
        headers = {"Retry-After": RETRY_AFTER_HEADER}
        documented[503] = {"model": model_503, "headers": headers}
    return documented


def unavailable(response: Response, retry_after: int) -> None:
    response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    response.headers["Retry-After"] = str(retry_after)


class Probe(BaseModel):
    status: Literal["ok", "draining"]


@router.get(
    "/health",
    operation_id="health",
    summary="Database reachability",
    openapi_extra=PUBLIC,
    responses=answers(Health),
)
async def health(db: DatabaseDep, response: Response) -> Health:
    try:
        await db.ping()
    except DatabaseUnavailableError:
        unavailable(response, DB_RETRY_AFTER_SECONDS)
        return Health(status="unavailable", database="unreachable", detail="Database unreachable")
    return Health(status="ok", database="reachable", detail="OK")


@router.get(
    "/health/live",
    operation_id="healthLive",
    summary="Liveness: the process answers",
    openapi_extra=PUBLIC,
    responses=answers(),
)
async def live() -> Probe:
    return Probe(status="ok")


@router.get(
    "/health/ready",
    operation_id="healthReady",
    summary="Readiness: 503 while draining for shutdown",
    openapi_extra=PUBLIC,
    responses=answers(Probe),
)
async def ready(request: Request, response: Response) -> Probe:
    if request.app.state.lifecycle.draining:
        unavailable(response, 1)
        return Probe(status="draining")
    return Probe(status="ok")
