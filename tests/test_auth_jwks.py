"""Better Auth JWT-plugin tokens verified against its JWKS (SPEC.md, Auth, kind 2).

Only the JWKS HTTP endpoint is mocked (respx); keys are real Ed25519 / EC / RSA keys and every
token carries a real signature. Caching and rate limits are checked on `JwksKeySource` directly
with a fake clock, and the lapse of cached proofs on an app whose verifier runs on one: no test
sleeps.
"""

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from sqlalchemy.engine import Engine

from backend.auth.jwks import JwksKeySource
from backend.auth.jwt import InvalidTokenError
from backend.config import Settings
from backend.main import jwks_config
from tests.support.helpers import Caller, FakeClock, count_tasks
from tests.support.hostile_http import json_answer, redirect, serving

AUTH_URL = "http://auth.test:3000"
JWKS_URL = f"{AUTH_URL}/api/auth/jwks"
USER = "jwks-user-0123456789abcdefghijkl"

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class SigningKey:
    """A key pair as Better Auth's JWT plugin keeps it, and the JWK its `/jwks` publishes."""

    kid: str
    algorithm: str
    private: PrivateKey
    jwk_alg: bool = True  # newer Better Auth versions publish `alg`, older ones do not
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        data["kid"] = self.kid
        if self.jwk_alg:
            data["alg"] = self.algorithm
        return data | self.extra

    def token(
        self,
        user_id: str = USER,
        *,
        lifetime: int = 900,
        headers: dict[str, Any] | None = None,
        algorithm: str | None = None,
        **claims: Any,
    ) -> str:
        """What `/api/auth/token` returns: the user row, `sub`, iss = aud = origin, 15 minutes."""
        now = int(time.time())
        payload = {
            "id": user_id,
            "email": "someone@example.com",
            "name": "Someone",
            "sub": user_id,
            "iss": AUTH_URL,
            "aud": AUTH_URL,
            "iat": now,
            "exp": now + lifetime,
        }
        payload = {k: v for k, v in (payload | claims).items() if v is not None}
        header = {"kid": self.kid} | (headers or {})
        header = {k: v for k, v in header.items() if v is not None} | {"typ": None}  # no typ
        return jwt.encode(
            payload, self.private, algorithm=algorithm or self.algorithm, headers=header
        )


_KEY_FACTORIES: dict[str, Callable[[], PrivateKey]] = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES512": lambda: ec.generate_private_key(ec.SECP521R1()),
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
_KEY_FACTORIES["PS256"] = _KEY_FACTORIES["RS256"]
_private_keys: dict[str, PrivateKey] = {}
_kids = itertools.count()


def signing_key(algorithm: str = "EdDSA", kid: str | None = None, **options: Any) -> SigningKey:
    """A key for `algorithm`; RSA keys are generated once per run (they take a while)."""
    if algorithm.startswith(("RS", "PS")):
        private = _private_keys.setdefault("RSA", _KEY_FACTORIES[algorithm]())
    else:
        private = _KEY_FACTORIES[algorithm]()
    return SigningKey(kid or f"key-{next(_kids)}", algorithm, private, **options)


def jwks(*keys: SigningKey | dict[str, Any]) -> httpx.Response:
    documents = [key.jwk if isinstance(key, SigningKey) else key for key in keys]
    return httpx.Response(200, json={"keys": documents})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def jwks_route() -> Iterator[respx.Route]:
    """The Better Auth JWKS endpoint, and nothing else, answered by respx."""
    with respx.mock(assert_all_called=False) as router:
        yield router.get(JWKS_URL)


@pytest.fixture
def api(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(better_auth_url=AUTH_URL)


user = Caller(USER)


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert isinstance(response.json()["detail"], str)


# --- accepted ------------------------------------------------------------------------------


@pytest.mark.spec("FR-002", "A-2", "SC-008", "US-1.1", "US-2.1")
@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "ES512", "PS256", "RS256"])
@pytest.mark.parametrize("jwk_alg", [True, False], ids=["jwk-alg", "no-jwk-alg"])
def test_jwt_plugin_token_is_accepted_on_the_task_endpoints(
    api: TestClient, jwks_route: respx.Route, algorithm: str, jwk_alg: bool
) -> None:
    key = signing_key(algorithm, jwk_alg=jwk_alg)
    jwks_route.mock(return_value=jwks(signing_key("ES256"), key))
    headers = bearer(key.token())

    created = api.post(user.tasks, json={"title": "from a JWKS token"}, headers=headers)
    listed = api.get(user.tasks, headers=headers)

    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == USER
    assert listed.json() == [created.json()]
    assert jwks_route.call_count == 1  # the second request used the cached set


@pytest.mark.spec("FR-002", "A-2")
def test_token_without_kid_uses_the_only_key_for_its_algorithm(
    api: TestClient, jwks_route: respx.Route
) -> None:
    key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(key, signing_key("ES256")))

    response = api.get(user.tasks, headers=bearer(key.token(headers={"kid": None})))

    assert response.status_code == 200, response.text


@pytest.mark.spec("FR-002", "EC-6")
def test_token_without_kid_is_refused_when_several_keys_fit(
    api: TestClient, jwks_route: respx.Route
) -> None:
    key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(signing_key("EdDSA"), key))

    assert_refused(api.get(user.tasks, headers=bearer(key.token(headers={"kid": None}))))


@pytest.mark.spec("FR-002")
def test_keys_that_do_not_parse_are_skipped(api: TestClient, jwks_route: respx.Route) -> None:
    key = signing_key("EdDSA")
    broken = [
        {"kty": "OKP", "crv": "Ed25519", "x": "not base64!", "kid": "broken"},
        {"kty": "EC", "crv": "P-256", "kid": "no-coordinates"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},
        "not a key",
    ]
    jwks_route.mock(return_value=jwks(*broken, key))

    assert api.get(user.tasks, headers=bearer(key.token())).status_code == 200


@pytest.mark.spec("A-2", "FR-016")
def test_issuer_is_the_whatwg_origin_of_better_auth_url(
    make_client: Callable[..., TestClient],
) -> None:
    # Better Auth sets iss = aud = `new URL(BETTER_AUTH_URL).origin`: lower case, no default port.
    api = make_client(better_auth_url="HTTPS://Auth.Example:443/")
    key = signing_key("EdDSA")
    with respx.mock() as router:
        router.get("https://auth.example/api/auth/jwks").mock(return_value=jwks(key))
        token = key.token(iss="https://auth.example", aud="https://auth.example")

        assert api.get(user.tasks, headers=bearer(token)).status_code == 200


@pytest.mark.spec("FR-002", "SC-009", "FR-017")
def test_keys_with_unhashable_kty_or_crv_are_skipped_and_logged_once(
    api: TestClient, jwks_route: respx.Route, caplog: pytest.LogCaptureFixture
) -> None:
    key = signing_key("EdDSA")
    good = key.jwk
    malformed = [
        good | {"kid": "kty-list", "kty": ["OKP"]},
        good | {"kid": "kty-object", "kty": {"OKP": True}},
        good | {"kid": "crv-list", "crv": ["Ed25519"]},
        good | {"kid": "crv-object", "crv": {"name": "Ed25519"}},
    ]
    jwks_route.mock(return_value=jwks(*malformed, key))

    with caplog.at_level(logging.WARNING, logger="backend.auth"):
        statuses = [api.get(user.tasks, headers=bearer(key.token())).status_code for _ in range(3)]
        refused = api.get(user.tasks, headers=bearer(key.token(headers={"kid": "kty-list"})))

    assert statuses == [200, 200, 200]
    assert_refused(refused)
    assert [record.getMessage() for record in caplog.records] == [
        "JWKS: 4 key(s) skipped: not valid keys for their algorithm"
    ]


@pytest.mark.spec("FR-002", "A-2")
def test_issuer_and_audience_lists_replace_the_auth_origin(
    make_client: Callable[..., TestClient], jwks_route: respx.Route
) -> None:
    """`jwt({ jwt: { audience: API_URL } })` on the frontend: aud is the API, not the origin."""
    key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(key))
    api_aud = key.token(aud="https://api.example.com")
    default = make_client(better_auth_url=AUTH_URL)
    configured = make_client(
        better_auth_url=AUTH_URL, jwt_audience=f"{AUTH_URL},https://api.example.com"
    )

    refused = default.get(user.tasks, headers=bearer(api_aud))

    assert_refused(refused)
    assert "JWT_AUDIENCE" in refused.json()["detail"]
    assert configured.get(user.tasks, headers=bearer(api_aud)).status_code == 200
    assert configured.get(user.tasks, headers=bearer(key.token())).status_code == 200


# --- refused -------------------------------------------------------------------------------


@pytest.mark.spec("FR-002", "EC-6", "A-2")
@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "http://evil.test:3000"},
        {"aud": "http://evil.test:3000"},
        {"iss": f"{AUTH_URL}/api/auth"},
        {"iss": None},
        {"aud": None},
        {"sub": None, "id": None},
    ],
    ids=["wrong-iss", "wrong-aud", "iss-with-path", "no-iss", "no-aud", "no-user"],
)
def test_wrong_or_missing_issuer_audience_or_user_is_401(
    api: TestClient, jwks_route: respx.Route, db_engine: Engine, claims: dict[str, Any]
) -> None:
    key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(key))

    response = api.post(user.tasks, json={"title": "x"}, headers=bearer(key.token(**claims)))

    assert_refused(response)
    assert count_tasks(db_engine) == 0


@pytest.mark.spec("FR-003", "EC-1")
@pytest.mark.parametrize(
    "claims",
    [
        {"lifetime": -120},
        {"exp": None},
        {"nbf": int(time.time()) + 3600},
    ],
    ids=["expired", "no-exp", "not-yet-valid"],
)
def test_expired_or_not_yet_valid_token_is_401(
    api: TestClient, jwks_route: respx.Route, claims: dict[str, Any]
) -> None:
    key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(key))

    assert_refused(api.get(user.tasks, headers=bearer(key.token(**claims))))


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    def segment(part: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")

    signing_input = segment(header) + b"." + segment(claims)
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


@pytest.mark.spec("EC-6", "FR-002")
@pytest.mark.parametrize("form", ["pem", "raw", "jwk-json", "jwk-x"])
def test_hs256_signed_with_the_jwks_public_key_is_401(
    api: TestClient, jwks_route: respx.Route, form: str
) -> None:
    """The classic key-confusion forgery: the public key used as an HMAC secret."""
    key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(key))
    public = key.private.public_key()
    secrets = {
        "pem": public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        "raw": public.public_bytes(Encoding.Raw, PublicFormat.Raw),
        "jwk-json": json.dumps(key.jwk).encode(),
        "jwk-x": key.jwk["x"].encode(),
    }
    now = int(time.time())
    claims = {"sub": USER, "iss": AUTH_URL, "aud": AUTH_URL, "iat": now, "exp": now + 900}
    forged = _hs256({"alg": "HS256", "kid": key.kid}, claims, secrets[form])

    assert_refused(api.get(user.tasks, headers=bearer(forged)))


@pytest.mark.spec("EC-6", "FR-002")
def test_key_is_used_only_for_the_algorithm_its_jwk_names(
    api: TestClient, jwks_route: respx.Route
) -> None:
    rsa_key = signing_key("RS256")  # JWK says alg RS256
    ed_key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(rsa_key, ed_key))

    # The same RSA key signs a PS256 token: a valid signature, but not what the JWK allows.
    assert api.get(user.tasks, headers=bearer(rsa_key.token())).status_code == 200
    assert_refused(api.get(user.tasks, headers=bearer(rsa_key.token(algorithm="PS256"))))
    # An Ed25519 key named by an ES256 header (signed with some EC key): refused.
    other_ec = signing_key("ES256", kid=ed_key.kid)
    assert_refused(api.get(user.tasks, headers=bearer(other_ec.token())))


@pytest.mark.spec("EC-6")
@pytest.mark.parametrize(
    "header",
    [{"alg": "none"}, {"alg": ["EdDSA"]}, {"alg": {"EdDSA": 1}}, {"alg": "ES384"}, {}],
    ids=["none", "list", "object", "unsupported", "missing"],
)
def test_odd_alg_header_is_401_never_500(
    api: TestClient, jwks_route: respx.Route, header: dict[str, Any]
) -> None:
    key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(key))
    _, payload, signature = key.token().split(".")
    encoded = base64.urlsafe_b64encode(json.dumps(header | {"kid": key.kid}).encode())
    forged = f"{encoded.rstrip(b'=').decode()}.{payload}.{signature}"

    assert_refused(api.get(user.tasks, headers=bearer(forged)))


@pytest.mark.spec("EC-6")
def test_token_signed_by_a_key_not_in_the_jwks_is_401(
    api: TestClient, jwks_route: respx.Route
) -> None:
    published = signing_key("EdDSA")
    impostor = signing_key("EdDSA", kid=published.kid)  # claims the published kid
    jwks_route.mock(return_value=jwks(published))

    assert_refused(api.get(user.tasks, headers=bearer(impostor.token())))


# --- rotation, rate limit, outages ----------------------------------------------------------


@pytest.mark.spec("FR-002")
def test_rotated_key_is_picked_up_by_a_refetch(
    make_client: Callable[..., TestClient], jwks_route: respx.Route
) -> None:
    api = make_client(better_auth_url=AUTH_URL, jwks_min_refetch_seconds=0)
    old, new = signing_key("EdDSA"), signing_key("EdDSA")
    jwks_route.mock(side_effect=[jwks(old), jwks(old, new)])

    assert api.get(user.tasks, headers=bearer(old.token())).status_code == 200
    assert api.get(user.tasks, headers=bearer(new.token())).status_code == 200
    assert api.get(user.tasks, headers=bearer(old.token())).status_code == 200
    assert jwks_route.call_count == 2


@pytest.mark.spec("FR-002", "EC-6")
def test_a_key_dropped_from_the_jwks_stops_vouching_for_tokens_it_verified(
    make_client: Callable[..., TestClient], jwks_route: respx.Route
) -> None:
    api = make_client(better_auth_url=AUTH_URL, jwks_min_refetch_seconds=0)
    leaked, new = signing_key("EdDSA"), signing_key("EdDSA")
    published = [leaked]
    jwks_route.mock(side_effect=lambda request: jwks(*published))
    seen_before = leaked.token()
    assert api.get(user.tasks, headers=bearer(seen_before)).status_code == 200

    published[:] = [new]  # the leaked key is revoked; a token by the new key makes us refetch
    assert api.get(user.tasks, headers=bearer(new.token())).status_code == 200

    assert_refused(api.get(user.tasks, headers=bearer(seen_before)))


@pytest.mark.spec("FR-002", "EC-6")
def test_a_cached_jwks_verification_lapses_with_the_jwks_cache_ttl(
    make_client: Callable[..., TestClient], jwks_route: respx.Route
) -> None:
    """With no other token to trigger a refetch, the TTL makes the proof of the key be redone."""
    clock = FakeClock()
    api = make_client(
        better_auth_url=AUTH_URL,
        jwks_cache_ttl_seconds=300,
        jwks_min_refetch_seconds=0,
        clock=clock,
    )
    leaked = signing_key("EdDSA")
    published = [leaked]
    jwks_route.mock(side_effect=lambda request: jwks(*published))
    token = leaked.token()
    assert api.get(user.tasks, headers=bearer(token)).status_code == 200

    published.clear()
    clock.now += 299
    assert api.get(user.tasks, headers=bearer(token)).status_code == 200
    clock.now += 1

    assert_refused(api.get(user.tasks, headers=bearer(token)))
    assert jwks_route.call_count == 2


@pytest.mark.spec("FR-002", "EC-6")
def test_keys_are_refused_once_the_jwks_has_been_unreachable_for_the_max_staleness(
    make_client: Callable[..., TestClient], jwks_route: respx.Route
) -> None:
    """A key Better Auth removed while its JWKS was unreachable is trusted at most
    `JWKS_MAX_STALENESS_SECONDS` after the last fetch that worked, cached proofs included."""
    clock = FakeClock()
    api = make_client(
        better_auth_url=AUTH_URL,
        jwks_cache_ttl_seconds=300,
        jwks_min_refetch_seconds=30,
        jwks_max_staleness_seconds=3600,
        clock=clock,
    )
    key = signing_key("EdDSA")
    reachable = [True]

    def answer(request: httpx.Request) -> httpx.Response:
        if not reachable[0]:
            raise httpx.ConnectError("down", request=request)
        return jwks(key)

    jwks_route.mock(side_effect=answer)
    early, late = key.token(lifetime=7200), key.token(lifetime=7200, email="late@example.com")
    assert api.get(user.tasks, headers=bearer(early)).status_code == 200

    reachable[0] = False
    clock.now += 3599  # every refetch since the first has failed; the keys are 3599 s old
    assert api.get(user.tasks, headers=bearer(early)).status_code == 200
    assert api.get(user.tasks, headers=bearer(late)).status_code == 200  # verified, cached
    clock.now += 1

    for token in (early, late):
        refused = api.get(user.tasks, headers=bearer(token))
        assert_refused(refused)
        assert refused.json()["detail"] == "Invalid token: signing keys unavailable"

    reachable[0] = True
    clock.now += 30  # the next refetch the interval allows brings them back
    assert api.get(user.tasks, headers=bearer(early)).status_code == 200


@pytest.mark.spec("FR-015")
def test_the_max_staleness_cannot_be_shorter_than_the_cache_ttl(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ValueError, match="JWKS_MAX_STALENESS_SECONDS"):
        make_settings(jwks_cache_ttl_seconds=600, jwks_max_staleness_seconds=300)


@pytest.mark.spec("EC-6", "SC-009")
def test_unknown_kids_refetch_at_most_once_per_interval(
    api: TestClient, jwks_route: respx.Route
) -> None:
    key = signing_key("EdDSA")
    jwks_route.mock(return_value=jwks(key))
    assert api.get(user.tasks, headers=bearer(key.token())).status_code == 200

    for n in range(20):
        forged = signing_key("EdDSA", kid=f"invented-{n}")
        assert_refused(api.get(user.tasks, headers=bearer(forged.token())))

    assert jwks_route.call_count == 1  # the first fetch was < 30 s ago: no refetch at all


@pytest.mark.spec("FR-002", "SC-009", "SC-001")
@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(500, text="Internal Server Error"),
        httpx.Response(404, json={"code": "NOT_FOUND"}),
        httpx.Response(200, text="<html>login</html>"),
        httpx.Response(200, content=b"\xff\xfe garbage"),
        httpx.Response(200, json={"keys": "none"}),
        httpx.Response(200, json=[1, 2, 3]),
        httpx.Response(200, content=b'{"keys":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ],
    ids=[
        "refused",
        "timeout",
        "500",
        "404",
        "html",
        "bytes",
        "keys-not-list",
        "not-object",
        "nested-100000-deep",
    ],
)
def test_jwks_unavailable_is_401_after_one_attempt(
    api: TestClient, jwks_route: respx.Route, answer: Exception | httpx.Response
) -> None:
    jwks_route.mock(side_effect=[answer])

    response = api.get(user.tasks, headers=bearer(signing_key("EdDSA").token()))

    assert_refused(response)
    assert jwks_route.call_count == 1  # no retries for the caller to wait through


@pytest.mark.spec("FR-002", "SC-001")
def test_slow_jwks_is_cut_off_by_the_timeout(
    make_client: Callable[..., TestClient], jwks_route: respx.Route
) -> None:
    api = make_client(better_auth_url=AUTH_URL, jwks_timeout_seconds=0.2)
    cut_off: list[str] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cut_off.append(str(request.url))
            raise
        return jwks()

    jwks_route.mock(side_effect=hang)

    assert_refused(api.get(user.tasks, headers=bearer(signing_key("EdDSA").token())))
    assert cut_off == [JWKS_URL]


@pytest.mark.spec("FR-002", "EC-6", "SC-009")
@pytest.mark.parametrize("status", ["302 Found", "307 Temporary Redirect", "308 Permanent"])
def test_the_jwks_fetch_follows_no_redirect(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture, status: str
) -> None:
    """Over real sockets: Better Auth's JWKS answering with a redirect to another host (a hijacked
    proxy, a stale DNS name) must not make that host's keys ours, nor even reach it."""
    attacker = signing_key("EdDSA")
    keys = {"keys": [attacker.jwk]}
    with (
        serving(json_answer("200 OK", keys), host="127.0.0.2") as elsewhere,
        serving(redirect(f"{elsewhere.url}/api/auth/jwks", status)) as auth,
    ):
        api = make_client(better_auth_url=auth.url)
        token = attacker.token(iss=auth.url, aud=auth.url)
        with caplog.at_level(logging.WARNING, logger="backend.auth"):
            response = api.get(user.tasks, headers=bearer(token))

    assert_refused(response)
    assert [request.target for request in auth.received] == ["/api/auth/jwks"]
    assert elsewhere.connections == 0
    assert "redirect" in caplog.text
    assert elsewhere.url not in caplog.text  # the log names no place a hostile answer chose


# --- the key source on its own, with a fake clock ------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def source_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        better_auth_url=AUTH_URL, jwks_cache_ttl_seconds=300, jwks_min_refetch_seconds=30
    )


async def key_for(source: JwksKeySource, key: SigningKey) -> jwt.PyJWK:
    return await source.key_for(key.kid, key.algorithm)


def run(scenario: Callable[[JwksKeySource], Any], settings: Settings, clock: FakeClock) -> None:
    """Run `scenario` with a fresh key source in one event loop (the source's lock lives there)."""

    async def main() -> None:
        source = JwksKeySource(jwks_config(settings), clock=clock)
        try:
            await scenario(source)
        finally:
            await source.aclose()

    asyncio.run(main())


@pytest.mark.spec("FR-002")
def test_cache_ttl_is_honoured(
    source_settings: Settings, clock: FakeClock, jwks_route: respx.Route
) -> None:
    old, new = signing_key("EdDSA"), signing_key("EdDSA")
    jwks_route.mock(side_effect=[jwks(old), jwks(new)])

    async def scenario(source: JwksKeySource) -> None:
        await key_for(source, old)
        clock.now += 299
        await key_for(source, old)
        assert jwks_route.call_count == 1

        clock.now += 1  # TTL over: refetched, and the old key is gone with it
        with pytest.raises(InvalidTokenError):
            await key_for(source, old)
        assert jwks_route.call_count == 2
        await key_for(source, new)

    run(scenario, source_settings, clock)


@pytest.mark.spec("FR-002")
def test_unknown_kid_waits_for_the_refetch_interval(
    source_settings: Settings, clock: FakeClock, jwks_route: respx.Route
) -> None:
    old, new = signing_key("EdDSA"), signing_key("EdDSA")
    jwks_route.mock(side_effect=[jwks(old), jwks(old, new)])

    async def scenario(source: JwksKeySource) -> None:
        await key_for(source, old)
        clock.now += 29
        with pytest.raises(InvalidTokenError, match="unknown signing key"):
            await key_for(source, new)
        assert jwks_route.call_count == 1

        clock.now += 1
        await key_for(source, new)
        assert jwks_route.call_count == 2

    run(scenario, source_settings, clock)


@pytest.mark.spec("FR-002")
def test_keys_stay_in_use_while_a_refetch_fails(
    source_settings: Settings, clock: FakeClock, jwks_route: respx.Route
) -> None:
    key = signing_key("EdDSA")
    jwks_route.mock(side_effect=[jwks(key), httpx.ConnectError("down"), jwks(key)])

    async def scenario(source: JwksKeySource) -> None:
        await key_for(source, key)
        clock.now += 300  # stale: the refetch fails, the cached key still verifies
        await key_for(source, key)
        clock.now += 10  # and the failing server is not asked again within the interval
        await key_for(source, key)
        assert jwks_route.call_count == 2

        clock.now += 20
        await key_for(source, key)
        assert jwks_route.call_count == 3

    run(scenario, source_settings, clock)


@pytest.mark.spec("FR-002", "SC-003")
def test_concurrent_requests_share_one_fetch(
    make_settings: Callable[..., Settings], clock: FakeClock, jwks_route: respx.Route
) -> None:
    # No refetch interval at all: only sharing the in-flight fetch keeps this to one request.
    settings = make_settings(better_auth_url=AUTH_URL, jwks_min_refetch_seconds=0)
    keys = [signing_key("EdDSA") for _ in range(3)]

    fetching, answer = asyncio.Event(), asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        fetching.set()
        await answer.wait()
        return jwks(*keys)

    jwks_route.mock(side_effect=slow)

    async def scenario(source: JwksKeySource) -> None:
        requests = asyncio.gather(
            *(source.key_for(key.kid, "EdDSA") for key in keys for _ in range(10))
        )
        await fetching.wait()  # woken after every other request has queued behind the fetch
        answer.set()
        assert len(await requests) == 30

    run(scenario, settings, clock)

    assert jwks_route.call_count == 1
