"""Email sign-up, sign-in and sign-out: what creates and ends sessions."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mock_auth import cookies
from mock_auth.checks import (
    MAX_IMAGE_LENGTH,
    MAX_NAME_LENGTH,
    check_password,
    checked_callback_url,
    checked_email,
)
from mock_auth.dependencies import CookiesDep, SessionToken, SettingsDep, StoreDep
from mock_auth.errors import AuthError
from mock_auth.passwords import DUMMY_HASH, hash_password, verify_password
from mock_auth.responses import expose
from mock_auth.store import SESSION_LIFETIME, Store, User, UserExistsError

router = APIRouter(prefix="/api/auth")


class SignUpBody(BaseModel):
    name: str = Field(max_length=MAX_NAME_LENGTH)
    email: str
    password: str
    image: str | None = Field(default=None, max_length=MAX_IMAGE_LENGTH)


class SignInBody(BaseModel):
    email: str
    password: str
    callback_url: str | None = Field(default=None, alias="callbackURL")


def _signed_in(
    request: Request,
    store: Store,
    session_cookies: cookies.SessionCookies,
    user: User,
    body: dict[str, Any],
) -> JSONResponse:
    """A new session for `user`: its token in the body, the signed cookie and `set-auth-token`."""
    session = store.create_session(
        user,
        ip_address=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
    )
    signed = cookies.sign(session.token, session_cookies.secret)
    response = JSONResponse({**body, "token": session.token, "user": user.row()})
    max_age = int(SESSION_LIFETIME.total_seconds())
    session_cookies.set(response, session_cookies.token_name, signed, max_age=max_age)
    # The bearer plugin copies the cookie value, signed and percent-encoded, into this header.
    response.headers["set-auth-token"] = signed
    expose(response)
    return response


@router.post("/sign-up/email")
def sign_up(
    request: Request, body: SignUpBody, store: StoreDep, session_cookies: CookiesDep
) -> JSONResponse:
    email = checked_email(body.email)
    check_password(body.password)
    duplicate = AuthError(
        422, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", "User already exists. Use another email."
    )
    if store.user_by_email(email):
        raise duplicate
    try:
        user = store.create_user(
            name=body.name,
            email=email,
            password_hash=hash_password(body.password),
            image=body.image,
        )
    except UserExistsError:
        raise duplicate from None
    return _signed_in(request, store, session_cookies, user, {})


@router.post("/sign-in/email")
def sign_in(
    request: Request,
    body: SignInBody,
    settings: SettingsDep,
    store: StoreDep,
    session_cookies: CookiesDep,
) -> JSONResponse:
    email = checked_email(body.email)
    user = store.user_by_email(email)
    stored_hash = user.password_hash if user else None
    # Hash even for an unknown email so timing does not reveal which emails exist.
    valid = verify_password(body.password, stored_hash or DUMMY_HASH)
    if user is None or stored_hash is None or not valid:
        raise AuthError(401, "INVALID_EMAIL_OR_PASSWORD", "Invalid email or password")
    callback_url = body.callback_url
    if callback_url:
        callback_url = checked_callback_url(callback_url, settings.trusted_origins)
    extra: dict[str, Any] = {"redirect": bool(callback_url)}
    if callback_url is not None:
        extra["url"] = callback_url
    response = _signed_in(request, store, session_cookies, user, extra)
    if callback_url:
        response.headers["Location"] = callback_url
    return response


@router.post("/sign-out")
def sign_out(token: SessionToken, store: StoreDep, session_cookies: CookiesDep) -> JSONResponse:
    if token is None:
        error = JSONResponse(
            {"code": "FAILED_TO_GET_SESSION", "message": "Failed to get session"},
            status_code=400,
        )
        session_cookies.clear(error)
        return error
    store.delete_session(token)
    response = JSONResponse({"success": True})
    session_cookies.clear(response)
    return response
