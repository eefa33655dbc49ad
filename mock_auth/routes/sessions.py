"""The session and its JWTs: `get-session` (with `set-auth-jwt`), `token`, `jwks`, `ok`."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mock_auth import tokens
from mock_auth.config import Settings
from mock_auth.dependencies import CookiesDep, CurrentSession, SettingsDep, StoreDep
from mock_auth.errors import AuthError
from mock_auth.responses import expose
from mock_auth.store import Store, User

router = APIRouter(prefix="/api/auth")


def _jwt_for(settings: Settings, store: Store, user: User) -> str:
    """The JWT plugin's token for `user`, in the format `MOCK_AUTH_MODE` names."""
    return tokens.mint(
        user,
        mode=settings.mock_auth_mode,
        secret=settings.secret,
        origin=settings.origin,
        key=store.signing_key(),
        lifetime=settings.mock_auth_jwt_lifetime_seconds,
    )


@router.get("/get-session")
def get_session(
    request: Request,
    found: CurrentSession,
    settings: SettingsDep,
    store: StoreDep,
    session_cookies: CookiesDep,
) -> Response:
    if found is None:
        response = JSONResponse(None)
        if session_cookies.token_name in request.cookies:
            session_cookies.clear(response)
        return response
    session, user = found
    response = JSONResponse({"session": session.row(), "user": user.row()})
    response.headers["set-auth-jwt"] = _jwt_for(settings, store, user)
    expose(response)
    if settings.mock_auth_cookie_cache:
        cached = tokens.mint_session_data(session, user, secret=settings.secret)
        session_cookies.set(
            response, session_cookies.data_name, cached, max_age=tokens.COOKIE_CACHE_SECONDS
        )
    return response


@router.get("/token")
def token(found: CurrentSession, settings: SettingsDep, store: StoreDep) -> dict[str, str]:
    if found is None:
        raise AuthError(401, "UNAUTHORIZED", "Unauthorized")
    return {"token": _jwt_for(settings, store, found[1])}


@router.get("/jwks")
def jwks(store: StoreDep) -> dict[str, list[dict[str, str]]]:
    return store.jwks()


@router.get("/ok")
def ok() -> dict[str, bool]:
    return {"ok": True}
