"""Cookie names and signing as Better Auth (through better-call) does them.

A signed cookie value is `value + "." + base64(HMAC-SHA256(secret, value))`, standard base64 with
padding, and the whole thing is percent-encoded on the wire (`=` becomes `%3D`). The bearer plugin
hands out that same encoded value in `set-auth-token` and accepts it, or the bare token, back in
`Authorization: Bearer`.
"""

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, unquote

from starlette.responses import Response

SESSION_COOKIE = "better-auth.session_token"
SESSION_DATA_COOKIE = "better-auth.session_data"
_SECURE_PREFIX = "__Secure-"


def cookie_name(base: str, *, secure: bool) -> str:
    return f"{_SECURE_PREFIX}{base}" if secure else base


def _signature(value: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), value.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign(value: str, secret: str) -> str:
    """The percent-encoded signed value, exactly as it appears in `Set-Cookie`."""
    return quote(f"{value}.{_signature(value, secret)}", safe="")


def unsign(signed: str, secret: str) -> str | None:
    """The value if the signature matches (padding optional), else None."""
    value, dot, signature = unquote(signed).rpartition(".")
    if not dot or not value:
        return None
    expected = _signature(value, secret).rstrip("=")
    if hmac.compare_digest(signature.rstrip("=").encode(), expected.encode()):
        return value
    return None


def set_cookie_header(name: str, value: str, *, max_age: int, secure: bool) -> str:
    """A `Set-Cookie` value with Better Auth's attributes, written out so nothing re-quotes it."""
    attributes = [f"{name}={value}", f"Max-Age={max_age}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


@dataclass(frozen=True)
class SessionCookies:
    """One server's session cookies: their names (prefixed when Secure) and signing secret."""

    secret: str
    secure: bool

    @property
    def token_name(self) -> str:
        return cookie_name(SESSION_COOKIE, secure=self.secure)

    @property
    def data_name(self) -> str:
        return cookie_name(SESSION_DATA_COOKIE, secure=self.secure)

    def set(self, response: Response, name: str, value: str, *, max_age: int) -> None:
        header = set_cookie_header(name, value, max_age=max_age, secure=self.secure)
        response.headers.append("set-cookie", header)

    def clear(self, response: Response) -> None:
        for name in (self.token_name, self.data_name):
            self.set(response, name, "", max_age=0)
