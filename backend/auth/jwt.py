"""Verify the JWTs a Better Auth frontend sends and return the user id they carry.

Three kinds are accepted (SPEC.md, Auth):
1. HS256/384/512 signed with `BETTER_AUTH_SECRET`, minted by the frontend itself (`sub`, or the
   fallbacks `user_id`, `userId`, `id`);
2. Better Auth's JWT plugin token (EdDSA and friends, with a `kid`), checked against its JWKS;
3. Better Auth's cookie-cache JWT (HS256, user id at `user.id` / `session.userId`).

With `BETTER_AUTH_SESSION_LOOKUP` on, a bearer value that is not a JWT (not three dot-separated
parts) is taken for an opaque Better Auth session token and looked up instead.

The key is chosen by the algorithm family, never by the header alone: HMAC algorithms are checked
only with the secret and asymmetric ones only with JWKS keys, so a token "signed" with the public
key as an HMAC secret, or with `alg: none`, is simply not valid.
"""

import time
from typing import Any, Protocol

import jwt

from backend.config import Settings

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES512", "PS256", "RS256"})
MAX_TOKEN_LENGTH = 8192
MAX_USER_ID_LENGTH = 255
MAX_CACHED_TOKENS = 10_000
USER_ID_CLAIMS = ("sub", "user_id", "userId", "id")


class InvalidTokenError(Exception):
    """The token proves nothing; `reason` is safe to show the caller (no token, no key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySource(Protocol):
    """Where asymmetric verification keys come from (Better Auth's JWKS endpoint)."""

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK: ...

    async def aclose(self) -> None: ...


class SessionSource(Protocol):
    """Who an opaque Better Auth session token belongs to (its `session` table)."""

    async def user_for(self, token: str) -> str: ...


class TokenVerifier:
    def __init__(
        self,
        settings: Settings,
        keys: KeySource | None = None,
        sessions: SessionSource | None = None,
    ) -> None:
        self._secret = settings.better_auth_secret.get_secret_value().encode()
        self._leeway = settings.jwt_leeway_seconds
        self._hmac_issuer = settings.jwt_issuer
        self._hmac_audience = settings.jwt_audience
        # Better Auth's JWT plugin sets iss = aud = the app's origin unless configured otherwise.
        self._jwks_issuer = settings.jwt_issuer or settings.auth_origin
        self._jwks_audience = settings.jwt_audience or settings.auth_origin
        self._keys = keys
        self._sessions = sessions
        # token -> (user id, expiry) of verified JWTs: a frontend sends the same token on every
        # call, so the signature check runs once per token. Expiry is still enforced per call.
        self._verified: dict[str, tuple[str, float]] = {}

    async def verify(self, token: str) -> str:
        """Return the user id proven by `token`, or raise `InvalidTokenError`."""
        cached = self._verified.get(token)
        if cached is not None:
            user_id, expires = cached
            if time.time() < expires:
                return user_id
            del self._verified[token]
            raise InvalidTokenError("token expired")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("token too large")
        if self._sessions is not None and token.count(".") != 2:
            return await self._sessions.user_for(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            # A list or object here would not even be hashable for the membership tests below.
            raise InvalidTokenError("unsupported signing algorithm")
        if algorithm in HMAC_ALGORITHMS:
            claims = self._decode(
                token, self._secret, algorithm, self._hmac_issuer, self._hmac_audience
            )
        elif algorithm in ASYMMETRIC_ALGORITHMS:
            if self._keys is None:
                raise InvalidTokenError("asymmetric tokens are not accepted here")
            kid = header.get("kid")
            key = await self._keys.key_for(kid if isinstance(kid, str) else None, algorithm)
            claims = self._decode(token, key, algorithm, self._jwks_issuer, self._jwks_audience)
        else:
            raise InvalidTokenError("unsupported signing algorithm")
        user_id = user_id_from(claims)
        if len(self._verified) >= MAX_CACHED_TOKENS:
            self._verified.clear()
        self._verified[token] = (user_id, float(claims["exp"]) + self._leeway)
        return user_id

    def _decode(
        self,
        token: str,
        key: bytes | jwt.PyJWK,
        algorithm: str,
        issuer: str | None,
        audience: str | None,
    ) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                leeway=self._leeway,
                issuer=issuer,
                audience=audience,
                options={"require": ["exp"], "verify_aud": audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidTokenError("token not yet valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"token has no '{exc.claim}' claim") from None
        except (jwt.InvalidIssuerError, jwt.InvalidAudienceError):
            raise InvalidTokenError("token issued for another application") from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("bad signature") from None
        except jwt.PyJWTError:
            raise InvalidTokenError("malformed token") from None

    async def aclose(self) -> None:
        if self._keys is not None:
            await self._keys.aclose()


def user_id_from(claims: dict[str, Any]) -> str:
    """The user id a verified token speaks for: `sub` and its fallbacks, then the cookie cache's."""
    for name in USER_ID_CLAIMS:
        if name in claims:
            return valid_user_id(claims[name])
    user, session = claims.get("user"), claims.get("session")
    if isinstance(user, dict) and "id" in user:
        return valid_user_id(user["id"])
    if isinstance(session, dict) and "userId" in session:
        return valid_user_id(session["userId"])
    raise InvalidTokenError("token names no user")


def valid_user_id(value: object) -> str:
    """`value` if it can be a Better Auth user id; what reaches `{user_id}` checks and the logs."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_USER_ID_LENGTH
        or not value.isprintable()
    ):
        raise InvalidTokenError("token names no valid user")
    return value
