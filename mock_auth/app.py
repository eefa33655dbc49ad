"""The HTTP surface: Better Auth's routes under `/api/auth`, with its paths, bodies and errors.

Mirrors better-auth 1.x with the `bearer` and `jwt` plugins enabled: email sign-up / sign-in /
sign-out, `get-session` (adding `set-auth-jwt`), `token` and `jwks`. Errors are Better Auth's
`{"code", "message"}` JSON; nothing else (no stack trace, no echoed input) reaches a client.
"""

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from mock_auth.config import Settings
from mock_auth.cookies import SessionCookies
from mock_auth.errors import install_error_handlers
from mock_auth.limits import MAX_BODY_BYTES, DeclaredBodyLimitMiddleware
from mock_auth.responses import EXPOSED_HEADERS
from mock_auth.routes import accounts, sessions
from mock_auth.store import Store, now


def create_app(settings: Settings, *, clock: Callable[[], datetime] = now) -> FastAPI:
    """A mock Better Auth server; all state lives in this app's own store (on `clock`)."""
    app = FastAPI(title="mock_auth (Better Auth stand-in)", debug=False)
    app.state.settings = settings
    app.state.store = Store(settings.mock_auth_state_file, clock=clock)
    app.state.cookies = SessionCookies(settings.secret, secure=settings.secure_cookies)
    install_error_handlers(app)
    app.include_router(accounts.router, max_body_size=MAX_BODY_BYTES)
    app.include_router(sessions.router, max_body_size=MAX_BODY_BYTES)
    # Inside CORS, so a browser can read the 413.
    app.add_middleware(DeclaredBodyLimitMiddleware)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.mock_auth_cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS,
    )
    return app
