"""Input checks with Better Auth's error codes: emails, passwords, redirect targets."""

import re

from mock_auth.config import origin_of
from mock_auth.errors import AuthError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128

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


def checked_callback_url(url: str, trusted_origins: set[str]) -> str:
    """`url` if Better Auth would redirect to it (a same-site path or a trusted origin), else 403.

    A control character is refused anywhere: CR/LF would split the `Location` header.
    """
    if _CONTROL.search(url) is None and (
        _is_same_site_path(url) or origin_of(url) in trusted_origins
    ):
        return url
    raise AuthError(403, "INVALID_CALLBACK_URL", "Invalid callbackURL")
