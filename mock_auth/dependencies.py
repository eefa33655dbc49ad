"""The `Annotated` dependencies routes declare: the app's settings, store and session cookies
(all on `app.state`, set by `create_app`), and the caller's session."""

from typing import Annotated

from fastapi import Depends, Request

from mock_auth import cookies
from mock_auth.config import Settings
from mock_auth.cookies import SessionCookies
from mock_auth.store import Session, Store, User


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_cookies(request: Request) -> SessionCookies:
    session_cookies: SessionCookies = request.app.state.cookies
    return session_cookies


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
CookiesDep = Annotated[SessionCookies, Depends(get_cookies)]


async def session_token(request: Request, session_cookies: CookiesDep) -> str | None:
    """The signature-checked session token from the bearer header or the session cookie."""
    secret = session_cookies.secret
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        # The bearer plugin takes the bare token or the signed cookie value.
        if "." not in credentials:
            return credentials
        token = cookies.unsign(credentials, secret)
        if token:
            return token
    signed = request.cookies.get(session_cookies.token_name)
    return cookies.unsign(signed, secret) if signed else None


SessionToken = Annotated[str | None, Depends(session_token)]


def current_session(store: StoreDep, token: SessionToken) -> tuple[Session, User] | None:
    """The caller's live session and user, if the token names one (a store read: a thread)."""
    return store.find_session(token) if token else None


CurrentSession = Annotated[tuple[Session, User] | None, Depends(current_session)]
