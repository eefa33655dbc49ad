"""Input checks with Better Auth's error codes: emails, passwords, redirect targets."""

import re

from mock_auth.config import origin_of
from mock_auth.errors import AuthError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
# Better Auth sets none; these keep every token and cookie that carries the user row within
# Node's 16 KiB request head, where a real Better Auth account with the cookie cache stops working.
MAX_NAME_LENGTH = 1000
MAX_IMAGE_LENGTH = 2048

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# zod's `z.email()` pattern, which Better Auth validates emails with.
_EMAIL = re.compile(
    r"^(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}$"
)


def checked_email(email: str) -> str:
    """The email in lower case, as Better Auth stores it, or 400 `INVALID_EMAIL`."""
    # The whole string: `$` alone also matches before a final "\n", which would let
    # "victim@example.com\n" sign up as a look-alike second account.
    if not _EMAIL.fullmatch(email):
        raise AuthError(400, "INVALID_EMAIL", "Invalid email")
    return email.lower()


def check_password(password: str) -> None:
    if not password:
        raise AuthError(400, "INVALID_PASSWORD", "Invalid password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(400, "PASSWORD_TOO_SHORT", "Password too short")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthError(400, "PASSWORD_TOO_LONG", "Password too long")


# A base no real URL has, as Better Auth's: a relative URL that keeps its origin stays on the site.
_RELATIVE_BASE = "https://better-auth.invalid"


def _is_same_site_path(url: str) -> bool:
    """A path on this site, as Better Auth's `isSafeRelativeURL`: `//host` and `/\\host` are other
    sites to a browser, an encoded slash in the path could become one after decoding, and the
    rest must resolve, by WHATWG rules, to this site."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    return (
        url.startswith("/")
        and not url.startswith("//")
        and "\\" not in url
        and "%2f" not in path
        and "%5c" not in path
        and origin_of(url, _RELATIVE_BASE) == _RELATIVE_BASE
    )


def checked_callback_url(url: str, trusted_origins: set[str]) -> str:
    """`url` if Better Auth would redirect to it (a same-site path, or an absolute URL whose WHATWG
    origin is trusted), else 403, before any session exists.

    Stricter than Better Auth on what a `Location` header cannot carry unambiguously: a control
    character anywhere (CR/LF would split the header) and any non-ASCII character (Node writes
    Latin-1 and fails past it with a 500 after making the session; browsers read UTF-8).
    """
    if (
        url.isascii()
        and _CONTROL.search(url) is None
        and (_is_same_site_path(url) or origin_of(url) in trusted_origins)
    ):
        return url
    raise AuthError(403, "INVALID_CALLBACK_URL", "Invalid callbackURL")
