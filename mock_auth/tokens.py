"""JWT minting for the server and the CLI, in the formats the backend must accept.

- `hs256`: what frontends that mint their own token do (`jose` / `jsonwebtoken` with
  BETTER_AUTH_SECRET): header `{"alg":"HS256","typ":"JWT"}`, claims `sub`, `email`, `name`.
- `eddsa`: Better Auth's JWT plugin (`/api/auth/token`, `set-auth-jwt`): header
  `{"alg":"EdDSA","kid":...}` without `typ`, the user row plus `sub`, `iss` = `aud` = origin.
- the cookie cache (`better-auth.session_data` with strategy "jwt"): HS256, header
  `{"alg":"HS256"}`, `{session, user}`, five minutes, no `sub`.

Broken variants exist so the backend's rejections can be tried by hand.
"""

import base64
import json
import secrets
import time
from typing import Any, Literal, get_args

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mock_auth.config import Mode
from mock_auth.store import Session, SigningKey, User

Broken = Literal["expired", "wrong-key", "alg-none", "no-sub"]
BROKEN_KINDS: tuple[Broken, ...] = get_args(Broken)

COOKIE_CACHE_SECONDS = 300
_EXPIRED_FOR_SECONDS = 3600  # well past any verifier's leeway


class JavaScriptJSON(json.JSONEncoder):
    """JSON as `JSON.stringify` writes it, non-ASCII as UTF-8 rather than `\\u` escapes: tokens
    then carry the bytes Better Auth's do, and are as long (an emoji is 4 bytes, not 12)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{**options, "ensure_ascii": False})


def mint(
    user: User,
    *,
    mode: Mode,
    secret: str,
    origin: str,
    key: SigningKey | None,
    lifetime: int,
    broken: Broken | None = None,
) -> str:
    """A signed JWT for `user`; with `broken`, one that a correct verifier must reject."""
    issued_at = int(time.time())
    if broken == "expired":
        issued_at -= lifetime + _EXPIRED_FOR_SECONDS
    claims: dict[str, Any]
    if mode == "hs256":
        claims = {"sub": user.id, "email": user.email, "name": user.name}
    else:
        claims = {**user.row(), "sub": user.id, "iss": origin, "aud": origin}
    claims |= {"iat": issued_at, "exp": issued_at + lifetime}
    if broken == "no-sub":
        # Drop every claim a verifier might fall back to for the user id.
        claims.pop("sub")
        claims.pop("id", None)

    if mode == "hs256":
        if broken == "alg-none":
            return _unsigned({"alg": "none"}, claims)
        hs_key = secrets.token_urlsafe(32) if broken == "wrong-key" else secret
        return jwt.encode(claims, hs_key, algorithm="HS256", json_encoder=JavaScriptJSON)
    if key is None:
        raise ValueError("EdDSA tokens need the signing key that the JWKS publishes")
    if broken == "alg-none":
        # Keeps the kid, as a forged token would, to steer a verifier to a real key.
        return _unsigned({"alg": "none", "kid": key.kid}, claims)
    private_key = Ed25519PrivateKey.generate() if broken == "wrong-key" else key.private_key
    headers = {"kid": key.kid, "typ": None}
    return jwt.encode(
        claims, private_key, algorithm="EdDSA", headers=headers, json_encoder=JavaScriptJSON
    )


def mint_session_data(session: Session, user: User, *, secret: str) -> str:
    """The cookie-cache JWT Better Auth stores in `better-auth.session_data`."""
    issued_at = int(time.time())
    claims = {
        "session": session.row(),
        "user": user.row(),
        "iat": issued_at,
        "exp": issued_at + COOKIE_CACHE_SECONDS,
    }
    headers = {"typ": None}
    return jwt.encode(
        claims, secret, algorithm="HS256", headers=headers, json_encoder=JavaScriptJSON
    )


def _unsigned(header: dict[str, str], claims: dict[str, Any]) -> str:
    def segment(part: dict[str, Any]) -> str:
        raw = json.dumps(part, separators=(",", ":"), cls=JavaScriptJSON).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{segment({**header, 'typ': 'JWT'})}.{segment(claims)}."
