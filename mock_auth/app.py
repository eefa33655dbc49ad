"""The HTTP surface: Better Auth's routes under `/api/auth`, with its paths, bodies and errors.

Mirrors better-auth 1.x with the `bearer` and `jwt` plugins enabled: email sign-up / sign-in /
sign-out, `get-session` (adding `set-auth-jwt`), `token` and `jwks`. Errors are Better Auth's
`{"code", "message"}` JSON; nothing else (no stack trace, no echoed input) reaches a client.
"""

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from mock_auth import cookies, tokens
from mock_auth.config import Settings, origin_of
from mock_auth.passwords import DUMMY_HASH, hash_password, verify_password
from mock_auth.store import SESSION_LIFETIME, Session, Store, User, UserExistsError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
EXPOSED_HEADERS = ["set-auth-jwt", "set-auth-token"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# zod's `z.email()` pattern, which Better Auth validates emails with.
_EMAIL = re.compile(
    r"^(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}$"
)


class AuthError(Exception):
    """An error answered as Better Auth's `{"code", "message"}` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class SignUpBody(BaseModel):
    name: str
    email: str
    password: str
    image: str | None = None


class SignInBody(BaseModel):
    email: str
    password: str
    callback_url: str | None = Field(default=None, alias="callbackURL")


def _checked_email(email: str) -> str:
    # The whole string: `$` alone also matches before a final "\n", which would let
    # "victim@example.com\n" sign up as a look-alike second account.
    if not _EMAIL.fullmatch(email):
        raise AuthError(400, "INVALID_EMAIL", "Invalid email")
    return email.lower()


def _is_same_site_path(url: str) -> bool:
    """A path on this site, as Better Auth's `isSafeRelativeURL`: `//host` and `/\\host` are other
    sites to a browser, and an encoded slash in the path could become one after decoding."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    return (
        url.startswith("/")
        and not url.startswith("//")
        and "\\" not in url
        and "%2f" not in path
        and "%5c" not in path
    )


def _checked_callback_url(url: str, trusted_origins: set[str]) -> str:
    """`url` if Better Auth would redirect to it (a same-site path or a trusted origin), else 403.

    A control character is refused anywhere: CR/LF would split the `Location` header.
    """
    if _CONTROL.search(url) is None and (
        _is_same_site_path(url) or origin_of(url) in trusted_origins
    ):
        return url
    raise AuthError(403, "INVALID_CALLBACK_URL", "Invalid callbackURL")


def _check_password(password: str) -> None:
    if not password:
        raise AuthError(400, "INVALID_PASSWORD", "Invalid password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(400, "PASSWORD_TOO_SHORT", "Password too short")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthError(400, "PASSWORD_TOO_LONG", "Password too long")


def create_app(settings: Settings) -> FastAPI:
    """A mock Better Auth server; all state lives in this app's own store."""
    store = Store(settings.mock_auth_state_file)
    secret = settings.secret
    secure = settings.secure_cookies
    token_cookie = cookies.cookie_name(cookies.SESSION_COOKIE, secure=secure)
    data_cookie = cookies.cookie_name(cookies.SESSION_DATA_COOKIE, secure=secure)
    # Better Auth trusts its own origin and its `trustedOrigins` (here: the CORS origins).
    trusted_origins = {settings.origin} | {
        origin for origin in map(origin_of, settings.mock_auth_cors_origins) if origin
    }

    app = FastAPI(title="mock_auth (Better Auth stand-in)", debug=False)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.mock_auth_cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS,
    )

    @app.exception_handler(AuthError)
    def _auth_error(_: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def _invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Locations and reasons only: echoing the input could echo a password.
        problems = "; ".join(
            f"[{'.'.join(str(part) for part in error['loc'])}] {error['msg']}"
            for error in exc.errors()
        )
        return JSONResponse({"code": "VALIDATION_ERROR", "message": problems}, status_code=400)

    @app.exception_handler(Exception)
    def _unexpected(_: Request, __: Exception) -> JSONResponse:
        body = {"code": "INTERNAL_SERVER_ERROR", "message": "Internal server error"}
        return JSONResponse(body, status_code=500)

    def session_token(request: Request) -> str | None:
        """The signature-checked session token from the bearer header or the session cookie."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            # The bearer plugin takes the bare token or the signed cookie value.
            if "." not in credentials:
                return credentials
            token = cookies.unsign(credentials, secret)
            if token:
                return token
        signed = request.cookies.get(token_cookie)
        return cookies.unsign(signed, secret) if signed else None

    def current_session(request: Request) -> tuple[Session, User] | None:
        token = session_token(request)
        return store.find_session(token) if token else None

    def jwt_for(user: User) -> str:
        return tokens.mint(
            user,
            mode=settings.mock_auth_mode,
            secret=secret,
            origin=settings.origin,
            key=store.signing_key(),
            lifetime=settings.mock_auth_jwt_lifetime_seconds,
        )

    def expose(response: Response) -> None:
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)

    def clear_cookies(response: Response) -> None:
        for name in (token_cookie, data_cookie):
            response.headers.append(
                "set-cookie", cookies.set_cookie_header(name, "", max_age=0, secure=secure)
            )

    def signed_in(request: Request, user: User, body: dict[str, Any]) -> JSONResponse:
        session = store.create_session(
            user,
            ip_address=request.client.host if request.client else "",
            user_agent=request.headers.get("user-agent", ""),
        )
        signed = cookies.sign(session.token, secret)
        max_age = int(SESSION_LIFETIME.total_seconds())
        response = JSONResponse({**body, "token": session.token, "user": user.row()})
        response.headers.append(
            "set-cookie",
            cookies.set_cookie_header(token_cookie, signed, max_age=max_age, secure=secure),
        )
        # The bearer plugin copies the cookie value, signed and percent-encoded, into this header.
        response.headers["set-auth-token"] = signed
        expose(response)
        return response

    @app.post("/api/auth/sign-up/email")
    def sign_up(request: Request, body: SignUpBody) -> JSONResponse:
        email = _checked_email(body.email)
        _check_password(body.password)
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
        return signed_in(request, user, {})

    @app.post("/api/auth/sign-in/email")
    def sign_in(request: Request, body: SignInBody) -> JSONResponse:
        email = _checked_email(body.email)
        user = store.user_by_email(email)
        stored_hash = user.password_hash if user else None
        # Hash even for an unknown email so timing does not reveal which emails exist.
        valid = verify_password(body.password, stored_hash or DUMMY_HASH)
        if user is None or stored_hash is None or not valid:
            raise AuthError(401, "INVALID_EMAIL_OR_PASSWORD", "Invalid email or password")
        callback_url = body.callback_url
        if callback_url:
            callback_url = _checked_callback_url(callback_url, trusted_origins)
        extra: dict[str, Any] = {"redirect": bool(callback_url)}
        if callback_url is not None:
            extra["url"] = callback_url
        response = signed_in(request, user, extra)
        if callback_url:
            response.headers["Location"] = callback_url
        return response

    @app.get("/api/auth/get-session")
    def get_session(request: Request) -> Response:
        found = current_session(request)
        if found is None:
            response = JSONResponse(None)
            if token_cookie in request.cookies:
                clear_cookies(response)
            return response
        session, user = found
        response = JSONResponse({"session": session.row(), "user": user.row()})
        response.headers["set-auth-jwt"] = jwt_for(user)
        expose(response)
        if settings.mock_auth_cookie_cache:
            cached = tokens.mint_session_data(session, user, secret=secret)
            response.headers.append(
                "set-cookie",
                cookies.set_cookie_header(
                    data_cookie, cached, max_age=tokens.COOKIE_CACHE_SECONDS, secure=secure
                ),
            )
        return response

    @app.get("/api/auth/token")
    def token(request: Request) -> dict[str, str]:
        found = current_session(request)
        if found is None:
            raise AuthError(401, "UNAUTHORIZED", "Unauthorized")
        return {"token": jwt_for(found[1])}

    @app.get("/api/auth/jwks")
    def jwks() -> dict[str, list[dict[str, str]]]:
        return store.jwks()

    @app.post("/api/auth/sign-out")
    def sign_out(request: Request) -> JSONResponse:
        token = session_token(request)
        if token is None:
            error = JSONResponse(
                {"code": "FAILED_TO_GET_SESSION", "message": "Failed to get session"},
                status_code=400,
            )
            clear_cookies(error)
            return error
        store.delete_session(token)
        response = JSONResponse({"success": True})
        clear_cookies(response)
        return response

    @app.get("/api/auth/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    return app
