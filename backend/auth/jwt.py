"""Verify the JWTs a Better Auth frontend sends and return the user id they carry.

Three kinds are accepted (SPEC.md, Auth):
1. HS256/384/512 signed with `BETTER_AUTH_SECRET`, minted by the frontend itself (`sub`, or the
   fallbacks `user_id`, `userId`, `id`);
2. Better Auth's JWT plugin token (EdDSA and friends, with a `kid`), checked against its JWKS;
3. Better Auth's cookie-cache JWT (HS256, user id at `user.id` / `session.userId`).

The key is chosen by the algorithm family, never by the header alone: HMAC algorithms are checked
only with the secret and asymmetric ones only with JWKS keys, so a token "signed" with the public
key as an HMAC secret, or with `alg: none`, is simply not valid.
"""

from typing import Any, Protocol

import jwt

from backend.config import Settings

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES512", "PS256", "RS256"})
MAX_TOKEN_LENGTH = 8192
MAX_USER_ID_LENGTH = 255
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


class TokenVerifier:
    def __init__(self, settings: Settings, keys: KeySource | None = None) -> None:
        self._secret = settings.better_auth_secret.get_secret_value().encode()
        self._leeway = settings.jwt_leeway_seconds
        self._hmac_issuer = settings.jwt_issuer
        self._hmac_audience = settings.jwt_audience
        # Better Auth's JWT plugin sets iss = aud = the app's origin unless configured otherwise.
        self._jwks_issuer = settings.jwt_issuer or settings.auth_origin
        self._jwks_audience = settings.jwt_audience or settings.auth_origin
        self._keys = keys

    async def verify(self, token: str) -> str:
        """Return the user id proven by `token`, or raise `InvalidTokenError`."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("malformed token") from None
        algorithm = header.get("alg")
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
        return user_id_from(claims)

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
            return _valid_user_id(claims[name])
    user, session = claims.get("user"), claims.get("session")
    if isinstance(user, dict) and "id" in user:
        return _valid_user_id(user["id"])
    if isinstance(session, dict) and "userId" in session:
        return _valid_user_id(session["userId"])
    raise InvalidTokenError("token names no user")


def _valid_user_id(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_USER_ID_LENGTH
        or not value.isprintable()
    ):
        raise InvalidTokenError("token names no valid user")
    return value
