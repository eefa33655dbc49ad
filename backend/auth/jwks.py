"""Better Auth's JWKS: the public keys that verify JWT-plugin tokens, fetched and cached.

The set is fetched lazily (on the first asymmetric token), kept for `JWKS_CACHE_TTL_SECONDS`, and
fetched again early when a token names a `kid` the cached set lacks (key rotation). The auth
server is asked at most once per `JWKS_MIN_REFETCH_SECONDS` whatever the reason, so tokens with
invented kids cannot become a stream of requests to it; concurrent requests that need a fetch
share the one in flight.

Redirects are not followed (a 3xx is a failed fetch): the keys come from the configured URL only.
A fetch that fails (unreachable, slow, not JSON, nested too deep to parse, not a JWKS) never
becomes a 500 or a hang: the token is refused with 401 when no keys are at hand, and keys from an
earlier fetch stay in use while fetches fail, so a blip of the auth server signs nobody out, but
only for `JWKS_MAX_STALENESS_SECONDS` after the last fetch that worked: a key Better Auth removed
meanwhile (leaked, rotated out) must not stay trusted for as long as the outage lasts.
A malformed key is skipped; each fetch logs one line for what it could not use.

`is_current` tells the token cache whether a key it relied on is still in the set last fetched:
a key dropped from the JWKS (leaked, rotated out) stops vouching for tokens already verified.

A key is used only for the algorithm its JWK allows: its `alg` when present, and always its key
type and curve, so an RSA key cannot verify an ES256 token and an `alg: RS256` key not a PS256 one.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from backend.auth.jwt import InvalidTokenError

logger = logging.getLogger("backend.auth")

# (kty, crv) of the keys each algorithm accepted for JWKS tokens can be verified with.
KEY_SHAPES: dict[str, frozenset[tuple[str, str | None]]] = {
    "EdDSA": frozenset({("OKP", "Ed25519"), ("OKP", "Ed448")}),
    "ES256": frozenset({("EC", "P-256")}),
    "ES512": frozenset({("EC", "P-521")}),
    "PS256": frozenset({("RSA", None)}),
    "RS256": frozenset({("RSA", None)}),
}


class JwksUnavailableError(Exception):
    """The JWKS could not be fetched or is not a JWKS; the message names no key or token."""


@dataclass(frozen=True)
class VerificationKey:
    """One JWK bound to one algorithm it may verify (an RSA JWK without `alg` yields two)."""

    kid: str | None
    algorithm: str
    jwk: jwt.PyJWK


def algorithms_for(jwk: dict[str, Any]) -> list[str]:
    declared = jwk.get("alg")
    shape = (jwk.get("kty"), jwk.get("crv"))
    return [
        algorithm
        for algorithm, shapes in KEY_SHAPES.items()
        if (declared is None or declared == algorithm) and shape in shapes
    ]


def parse_jwks(document: object) -> list[VerificationKey]:
    """The usable keys of a JWKS document; a key that does not parse is skipped, not fatal."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailableError("response is not a JWKS")
    keys: list[VerificationKey] = []
    skipped = 0
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if not isinstance(entry.get("kty"), str) or not isinstance(entry.get("crv"), str | None):
            skipped += 1  # a list or object here is no key type, and not even hashable
            continue
        kid = entry.get("kid")
        kid = kid if isinstance(kid, str) else None
        for algorithm in algorithms_for(entry):
            try:
                keys.append(VerificationKey(kid, algorithm, jwt.PyJWK(entry, algorithm)))
            except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
                skipped += 1
    if skipped:
        logger.warning("JWKS: %d key(s) skipped: not valid keys for their algorithm", skipped)
    return keys


@dataclass(frozen=True, slots=True)
class JwksConfig:
    """Where the keys are and how long a copy lasts (`Settings` fields `jwks_*`)."""

    url: str
    timeout: float
    ttl: float
    min_refetch: float
    max_staleness: float


class JwksKeySource:
    """`KeySource` backed by the JWKS at `JwksConfig.url`."""

    def __init__(self, config: JwksConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = config.url
        self._timeout = config.timeout
        self._ttl = config.ttl
        self._min_refetch = config.min_refetch
        self._max_staleness = config.max_staleness
        # No redirect is followed: the keys must come from the configured URL itself, and the
        # auth server's answer must not send us (and its keys' trust) to a host of its choosing.
        self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: list[VerificationKey] | None = None
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._fetches_completed = 0

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        fetched = False
        if self._keys is None or self._clock() - self._fetched_at >= self._ttl:
            fetched = await self._refresh()
        if self._too_stale():
            raise InvalidTokenError("signing keys unavailable")
        key = self._select(kid, algorithm)
        if key is None and not fetched:
            # Perhaps a key newer than our copy (rotation); `_refresh` rate-limits this.
            await self._refresh()
            key = self._select(kid, algorithm)
        if key is not None:
            return key
        if self._keys is None:
            raise InvalidTokenError("signing keys unavailable")
        raise InvalidTokenError("unknown signing key")

    def is_current(self, key: jwt.PyJWK) -> bool:
        """Whether the last successful fetch still lists `key`; every fetch makes new key objects,
        so a token the cache holds is verified again once per fetch, and never by a dropped key
        (nor by one past the staleness bound)."""
        return not self._too_stale() and any(held.jwk is key for held in self._keys or ())

    def _too_stale(self) -> bool:
        return self._clock() - self._fetched_at >= self._max_staleness

    def _select(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        """The key for the token, or None when the set lacks it (it may not have it *yet*)."""
        keys = self._keys or []
        if kid is None:
            usable = [key for key in keys if key.algorithm == algorithm]
            if len(usable) > 1:
                raise InvalidTokenError("token names no key (kid) and several keys fit")
            return usable[0].jwk if usable else None
        named = [key for key in keys if key.kid == kid]
        for key in named:
            if key.algorithm == algorithm:
                return key.jwk
        if named:
            raise InvalidTokenError("signing key does not allow this algorithm")
        return None

    async def _refresh(self) -> bool:
        """Fetch unless the last attempt was too recent; True if a fetch ended since the call."""
        completed_before = self._fetches_completed
        async with self._lock:
            if self._fetches_completed != completed_before:
                return True  # a fetch ran while this request waited: share its result
            if self._clock() - self._attempted_at < self._min_refetch:
                return False
            self._attempted_at = self._clock()
            try:
                self._keys = await self._fetch()
            except JwksUnavailableError as exc:
                logger.warning("JWKS fetch from %s failed: %s", self._url, exc)
            else:
                self._fetched_at = self._attempted_at
            finally:
                self._fetches_completed += 1
            return True

    async def _fetch(self) -> list[VerificationKey]:
        try:
            # httpx's timeout is per phase; this one bounds the whole exchange.
            async with asyncio.timeout(self._timeout):
                response = await self._client.get(self._url, headers={"Accept": "application/json"})
            if response.is_redirect:
                raise JwksUnavailableError(
                    f"HTTP {response.status_code} redirect, not followed "
                    "(set BETTER_AUTH_JWKS_URL to where the JWKS is served)"
                )
            response.raise_for_status()
            document = response.json()
        except TimeoutError:
            raise JwksUnavailableError("timed out") from None
        except httpx.HTTPStatusError as exc:
            raise JwksUnavailableError(f"HTTP {exc.response.status_code}") from None
        except httpx.HTTPError as exc:
            raise JwksUnavailableError(type(exc).__name__) from None
        except (ValueError, RecursionError):
            raise JwksUnavailableError("response is not JSON") from None
        return parse_jwks(document)

    async def aclose(self) -> None:
        await self._client.aclose()
