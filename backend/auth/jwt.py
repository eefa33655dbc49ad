"""Verify the JWTs a Better Auth frontend sends and return the user id they carry.

Three kinds are accepted (SPEC.md, Auth):
1. HS256/384/512 signed with `BETTER_AUTH_SECRET`, minted by the frontend itself, naming its
   user in `sub` (or in a fallback claim the deployment opted into with `JWT_USER_ID_CLAIMS`);
2. Better Auth's JWT plugin token (EdDSA and friends, with a `kid` and a `sub`), checked against
   its JWKS;
3. Better Auth's cookie-cache JWT (HS256), recognised by its whole shape: a `session` object whose
   `userId` equals the `id` of a `user` object.

Better Auth signs other tokens with the same secret: its email-verification link token
(`{email, userId}` or `{email, updateTo, requestType}`, no `sub`) travels in URLs and mailboxes,
so it must never work as an API credential. That is why `sub` is the only claim read by default
and why a token with those markers is refused whatever `JWT_USER_ID_CLAIMS` says.

With `BETTER_AUTH_SESSION_LOOKUP` on, a bearer value that is not a JWT (not three dot-separated
parts) is taken for an opaque Better Auth session token and looked up instead.

The key is chosen by the algorithm family, never by the header alone: HMAC algorithms are checked
only with the secret and asymmetric ones only with JWKS keys, so a token "signed" with the public
key as an HMAC secret, or with `alg: none`, is simply not valid.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES512", "PS256", "RS256"})
MAX_TOKEN_LENGTH = 8192
MAX_USER_ID_LENGTH = 255
MAX_CACHED_TOKENS = 10_000
TIME_CLAIMS = ("exp", "nbf", "iat")
# 9999-12-31T23:59:59Z: the last second a date library can represent; beyond it is an attack.
MAX_TIMESTAMP = 253_402_300_799
# Better Auth's email-verification / change-email tokens: signed with the session secret, never
# a session credential (`updateTo`, `requestType` appear in no session token).
VERIFICATION_MARKERS = ("updateTo", "requestType")
# The settings that fix a mismatched `iss` / `aud`, named in the 401 so the fix is obvious.
CLAIM_SETTINGS = {"iss": "JWT_ISSUER", "aud": "JWT_AUDIENCE"}


class InvalidTokenError(Exception):
    """The token proves nothing; `reason` is safe to show the caller (no token, no key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySource(Protocol):
    """Where asymmetric verification keys come from (Better Auth's JWKS endpoint)."""

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK: ...

    def is_current(self, key: jwt.PyJWK) -> bool:
        """Whether the key set last fetched still holds `key` (the very object `key_for` gave)."""
        ...

    async def aclose(self) -> None: ...


class SessionSource(Protocol):
    """Who an opaque Better Auth session token belongs to (its `session` table)."""

    async def user_for(self, token: str) -> str: ...


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token already proven: who it speaks for, and until when that proof may be reused."""

    user_id: str
    expires: float  # wall clock: `exp` plus the leeway
    key: jwt.PyJWK | None  # the JWKS key that proved it; None for the shared secret
    recheck: float  # wall clock: verify again from scratch after this (JWKS tokens only)


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What a token must be to prove a user (`Settings` fields `better_auth_*`, `jwt_*`).

    `issuer` / `audience` empty: HMAC tokens are not checked for them, and JWKS tokens must name
    `origin` (Better Auth's JWT plugin sets iss = aud = the app's origin unless configured)."""

    secret: bytes
    leeway: float
    user_id_claims: tuple[str, ...]
    issuer: tuple[str, ...]
    audience: tuple[str, ...]
    origin: str
    jwks_ttl: float  # a JWKS-proven token is verified again after this


class TokenVerifier:
    """Verifies tokens against one clock: `exp`, `nbf` and `iat` are wall-clock seconds, so
    `clock` is the wall clock (`time.time`) unless a test moves time itself."""

    def __init__(
        self,
        policy: TokenPolicy,
        keys: KeySource | None = None,
        sessions: SessionSource | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = policy.secret
        self._leeway = policy.leeway
        self._user_id_claims = policy.user_id_claims
        self._hmac_issuer = list(policy.issuer) or None
        self._hmac_audience = list(policy.audience) or None
        self._jwks_issuer = list(policy.issuer) or [policy.origin]
        self._jwks_audience = list(policy.audience) or [policy.origin]
        self._jwks_ttl = policy.jwks_ttl
        self._keys = keys
        self._sessions = sessions
        self._clock = clock
        # token -> proof of verified JWTs: a frontend sends the same token on every call, so the
        # signature check runs once per token. Expiry is still enforced per call, and a proof by
        # a JWKS key lapses when a JWKS fetch no longer lists that key, or after the JWKS cache
        # TTL (which makes the next check fetch the JWKS again), so it never outlives its key.
        self._verified: dict[str, _Verified] = {}

    async def verify(self, token: str) -> str:
        """Return the user id proven by `token`, or raise `InvalidTokenError`."""
        now = self._clock()
        cached = self._verified.get(token)
        if cached is not None:
            if now >= cached.expires:
                del self._verified[token]
                raise InvalidTokenError("token expired")
            if now < cached.recheck and (cached.key is None or self._key_is_current(cached.key)):
                return cached.user_id
            del self._verified[token]
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
        key: jwt.PyJWK | None = None
        if algorithm in HMAC_ALGORITHMS:
            claims = self._decode(
                token, self._secret, algorithm, self._hmac_issuer, self._hmac_audience, now
            )
        elif algorithm in ASYMMETRIC_ALGORITHMS:
            if self._keys is None:
                raise InvalidTokenError("asymmetric tokens are not accepted here")
            kid = header.get("kid")
            key = await self._keys.key_for(kid if isinstance(kid, str) else None, algorithm)
            claims = self._decode(
                token, key, algorithm, self._jwks_issuer, self._jwks_audience, now
            )
        else:
            raise InvalidTokenError("unsupported signing algorithm")
        user_id = user_id_from(claims, self._user_id_claims)
        if len(self._verified) >= MAX_CACHED_TOKENS:
            self._verified.clear()
        self._verified[token] = _Verified(
            user_id,
            claims["exp"] + self._leeway,
            key,
            math.inf if key is None else now + self._jwks_ttl,
        )
        return user_id

    def _key_is_current(self, key: jwt.PyJWK) -> bool:
        return self._keys is not None and self._keys.is_current(key)

    def _decode(
        self,
        token: str,
        key: bytes | jwt.PyJWK,
        algorithm: str,
        issuer: list[str] | None,
        audience: list[str] | None,
        now: float,
    ) -> dict[str, Any]:
        """The claims, once signature, `exp` presence, `iss`, `aud` and the times are checked.

        PyJWT reads its own clock, so the times are checked here against the verifier's (with
        the same rules: `iat`/`nbf` not after now + leeway, `exp` after now - leeway)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=issuer,
                audience=audience,
                options={
                    "require": ["exp"],
                    "verify_aud": audience is not None,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            setting = CLAIM_SETTINGS.get(exc.claim)
            required = f", which {setting} requires" if setting else ""
            raise InvalidTokenError(f"token has no '{exc.claim}' claim{required}") from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError(mismatch("iss")) from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError(mismatch("aud")) from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("bad signature") from None
        except jwt.PyJWTError:
            raise InvalidTokenError("malformed token") from None
        check_time_claims(claims)
        if any(claims.get(name, -math.inf) > now + self._leeway for name in ("iat", "nbf")):
            raise InvalidTokenError("token not yet valid")
        if now >= claims["exp"] + self._leeway:
            raise InvalidTokenError("token expired")
        return claims

    async def aclose(self) -> None:
        if self._keys is not None:
            await self._keys.aclose()


def mismatch(claim: str) -> str:
    """Which claim did not match and which setting accepts it, without echoing either value."""
    return (
        f"token '{claim}' claim is not an accepted value; "
        f"set {CLAIM_SETTINGS[claim]} (comma-separated) to accept it"
    )


def check_time_claims(claims: dict[str, Any]) -> None:
    """`exp`/`nbf`/`iat` are JSON numbers (RFC 7519 NumericDate) of a representable date.

    Refused: strings such as `"9999999999"` and `true`, which `int()` would take, and numbers of
    400 digits, which would overflow the float arithmetic of the time checks and the cache.
    """
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_TIMESTAMP
        ):
            raise InvalidTokenError(f"token '{name}' claim is not a valid date")


def user_id_from(claims: dict[str, Any], fallbacks: tuple[str, ...] = ("sub",)) -> str:
    """The user id a verified token speaks for, if it is a session credential at all.

    `sub` (or a configured fallback) names the user; without one, only the cookie cache's whole
    shape does. Better Auth's verification tokens are refused whatever the configuration.
    """
    if any(marker in claims for marker in VERIFICATION_MARKERS) or (
        "sub" not in claims and "email" in claims and "userId" in claims
    ):
        raise InvalidTokenError("not a session token")
    for name in fallbacks:
        if name in claims:
            return valid_user_id(claims[name])
    user, session = claims.get("user"), claims.get("session")
    if isinstance(user, dict) and isinstance(session, dict):
        user_id = valid_user_id(user.get("id"))
        if session.get("userId") == user_id:
            return user_id
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
