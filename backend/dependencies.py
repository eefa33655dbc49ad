"""The `Annotated` dependencies route functions declare: the database and the caller's identity.

Order of checks (SPEC.md, Auth): authentication (401) before ownership (403) before anything the
route itself validates (404/422).
"""

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security, status
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from backend.auth.jwt import InvalidTokenError, TokenVerifier
from backend.db import Database


async def get_database(request: Request) -> Database:
    """The app's database: `await crud.…(db, …)` runs a statement without blocking the loop."""
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": challenge}
    )


def bearer_token(request: Request) -> str:
    """The token of the one `Authorization: Bearer <token>` header (scheme in any case)."""
    headers = request.headers.getlist("authorization")
    if not headers:
        raise _unauthorized("Not authenticated")
    if len(headers) > 1:
        raise _unauthorized("Send one Authorization header", "invalid_request")
    scheme, _, token = headers[0].partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or " " in token:
        raise _unauthorized("Authorization header must be 'Bearer <token>'", "invalid_request")
    return token


async def authenticate(request: Request) -> str:
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify(bearer_token(request))
    except InvalidTokenError as exc:
        raise _unauthorized(f"Invalid token: {exc.reason}", "invalid_token") from None


def ensure_owner(path_user_id: str, token_user_id: str) -> None:
    if path_user_id != token_user_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="Not allowed to access this user's tasks"
        )


class BetterAuthBearer(SecurityBase):
    """The URL's user id, once the bearer token proves it is the caller's own.

    Declared as the API's security scheme, so the OpenAPI document (and `/docs`' "Authorize"
    button) shows it; and the whole check in one dependency: 401, then 403, then the rate limit.
    FastAPI's work per dependency outweighs these checks (figures: loadtests/README.md), so they
    are not split into a scheme, a verifier and an owner check. FastAPI's `HTTPBearer` is not used
    to parse: `bearer_token` is stricter.
    """

    def __init__(self) -> None:
        self.scheme_name = "BetterAuthJWT"
        self.model = HTTPBearerModel(
            bearerFormat="JWT",
            description=(
                "A Better Auth JWT: `/api/auth/token`, or HS256 signed with BETTER_AUTH_SECRET."
            ),
        )

    async def __call__(
        self,
        request: Request,
        user_id: Annotated[str, Path(description="Better Auth user id; must be the token's user")],
    ) -> str:
        current = await authenticate(request)
        ensure_owner(user_id, current)
        request.state.user_id = current  # for the request log (hashed there)
        await request.app.state.rate_limiter.check(current)
        return current


OwnedUserId = Annotated[str, Security(BetterAuthBearer())]


async def refuse_foreign_caller(request: Request) -> None:
    """Raise the 401/403 the route's dependencies would, for an error FastAPI raises before they
    run (a body it cannot parse): a caller the route would refuse must not learn about the body.
    `main.py` hands it to the error handlers, which stay below the auth layer."""
    if "user_id" in request.path_params and getattr(request.state, "user_id", None) is None:
        ensure_owner(request.path_params["user_id"], await authenticate(request))
