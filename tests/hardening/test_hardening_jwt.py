"""JWT attack catalogue (EC-6, FR-001, FR-002, FR-003): hostile tokens and headers, all 401.

Every case sends `POST /api/{alice}/tasks` with a valid body and a hostile `Authorization`:
the answer must be 401 with a `WWW-Authenticate: Bearer…` challenge and a string `detail` (never
a 500), nothing may be written, and no outbound request may be made except to the configured
JWKS URL (a `jku` / `x5u` / `jwk` header is never followed).
"""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.support.hardening import report
from tests.support.helpers import SECRET, Caller, count_tasks, make_token

USER = "alice-0123456789abcdefghijklmnop"
ATTACKER_JWKS = "https://attacker.example/jwks.json"
ATTACKER_CERT = "https://attacker.example/cert.pem"
CONFIGURED_JWKS = "http://localhost:3000/api/auth/jwks"

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_ED = ed25519.Ed25519PrivateKey.generate()
_PUBLIC_PEMS = {
    name: key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for name, key in (("rsa", _RSA), ("ed25519", _ED))
}
# The "server's" JWKS (what the configured URL serves) and an attacker's own key set.
SERVER_JWKS = {
    "keys": [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_RSA.public_key())), "kid": "server-rsa"},
        {**json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(_ED.public_key())), "kid": "server-ed"},
    ]
}
_ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_JWK = {
    **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_ATTACKER_RSA.public_key())),
    "kid": "attacker",
}


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header))}.{b64(json.dumps(payload))}"


def hs256(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """A token HMAC-signed with `key`, built by hand (PyJWT refuses PEM keys as HMAC secrets)."""
    signing_input = segments(header, payload)
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"sub": USER, "iat": now, "exp": now + 900}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not ...}


def without(name: str) -> dict[str, Any]:
    return claims(**{name: ...})


def signed_raw_payload(payload: str) -> str:
    """An HS256 token, validly signed with the secret, whose payload is `payload` verbatim."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256'}))}.{b64(payload)}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def signed_raw(values: dict[str, Any], name: str, raw: str) -> str:
    """`values` with claim `name` written as the raw JSON `raw` (numbers JSON has, Python not)."""
    text = json.dumps({key: value for key, value in values.items() if key != name})
    return signed_raw_payload(f'{text[:-1]}, "{name}": {raw}}}')


TIME_CLAIMS = ("exp", "nbf", "iat")
# Values of exp / nbf / iat that are no JSON number of a representable date.
TIME_ATTACKS = {
    "1 followed by 400 zeros": "1" + "0" * 400,
    "a numeric string": '"9999999999"',
    "true": "true",
    "1e400 (infinite)": "1e400",
    "NaN literal": "NaN",
    "negative": "-1",
    "an array": "[9999999999]",
}


def not_session_tokens() -> dict[str, dict[str, Any]]:
    """HS256 tokens Better Auth signs with the secret that are no session credential, and shapes
    that only look like its cookie cache. (The real library mints the first ones in
    test_hardening_better_auth.py; these are the same claims, for the catalogue.)"""
    now = int(time.time())
    times = {"iat": now, "exp": now + 3600}
    return {
        "email-verification token {email, userId}": {
            "email": "alice@example.com",
            "userId": USER,
            **times,
        },
        "change-email token {email, updateTo, userId, requestType}": {
            "email": "alice@example.com",
            "updateTo": "new@example.com",
            "userId": USER,
            "requestType": "change-email-verification",
            **times,
        },
        "sub plus a requestType marker": {"sub": USER, "requestType": "x", **times},
        "sub plus an updateTo marker": {"sub": USER, "updateTo": "new@example.com", **times},
        "user_id fallback (not configured)": {"user_id": USER, **times},
        "userId fallback (not configured)": {"userId": USER, **times},
        "id fallback (not configured)": {"id": USER, **times},
        "cookie cache: user.id and session.userId differ": {
            "user": {"id": USER},
            "session": {"userId": "bob"},
            **times,
        },
        "cookie cache: user object only": {"user": {"id": USER}, **times},
        "cookie cache: session object only": {"session": {"userId": USER}, **times},
    }


NOT_SESSION_TOKENS = not_session_tokens()


@dataclass(frozen=True)
class Attack:
    name: str
    headers: list[tuple[str, str]]


def bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


def attacks() -> list[Attack]:
    valid = make_token(USER)
    header, payload, signature = valid.split(".")
    cases: dict[str, list[tuple[str, str]]] = {}
    for alg in ("none", "None", "NONE", "nOnE"):
        cases[f"alg {alg}, empty signature"] = bearer(
            segments({"alg": alg, "typ": "JWT"}, claims()) + "."
        )
    cases["alg none, valid HS256 signature kept"] = bearer(
        f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}))}.{payload}.{signature}"
    )
    cases["alg none, no signature segment"] = bearer(segments({"alg": "none"}, claims()))
    for name, pem in _PUBLIC_PEMS.items():
        cases[f"HS256 signed with the {name} public key PEM"] = bearer(
            hs256({"alg": "HS256", "typ": "JWT"}, claims(), pem)
        )
        cases[f"HS256 with kid of the server {name} key, signed with its PEM"] = bearer(
            hs256({"alg": "HS256", "kid": f"server-{name[:3]}"}, claims(), pem)
        )
    cases["RS256 header, HMAC signature with the secret"] = bearer(
        hs256({"alg": "RS256", "kid": "server-rsa"}, claims(), SECRET.encode())
    )
    cases["EdDSA header, HMAC signature with the secret"] = bearer(
        hs256({"alg": "EdDSA", "kid": "server-ed"}, claims(), SECRET.encode())
    )
    cases["wrong secret"] = bearer(make_token(USER, secret="not-the-secret-" * 3))
    cases["empty secret"] = bearer(hs256({"alg": "HS256"}, claims(), b""))
    cases["altered payload, original signature"] = bearer(
        f"{header}.{b64(json.dumps(claims(sub='bob')))}.{signature}"
    )
    cases["HS384 header over an HS256 signature"] = bearer(
        f"{b64(json.dumps({'alg': 'HS384', 'typ': 'JWT'}))}.{payload}.{signature}"
    )
    cases["truncated: two segments"] = bearer(f"{header}.{payload}")
    cases["truncated: one segment"] = bearer(header)
    cases["truncated signature"] = bearer(f"{header}.{payload}.{signature[:-5]}")
    cases["empty signature"] = bearer(f"{header}.{payload}.")
    cases["extra segment"] = bearer(f"{valid}.{signature}")
    cases["five segments (JWE shape)"] = bearer(f"{header}.{payload}.{signature}.x.y")
    cases["non-base64 segments"] = bearer("!!!.@@@.###")
    cases["non-base64 character in the signature"] = bearer(f"{valid}!")
    cases["header is not JSON"] = bearer(f"{b64('not json')}.{payload}.{signature}")
    cases["header is a JSON array"] = bearer(f"{b64('[1,2]')}.{payload}.{signature}")
    not_json = f"{header}.{b64('not json')}"
    forged = hmac.new(SECRET.encode(), not_json.encode(), hashlib.sha256).digest()
    cases["payload is not JSON, validly signed"] = bearer(f"{not_json}.{b64(forged)}")
    cases["huge token (> 8 KiB), validly signed"] = bearer(make_token(USER, padding="x" * 9000))
    cases["exp in the past (beyond leeway)"] = bearer(make_token(USER, lifetime=-120))
    cases["exp missing"] = bearer(jwt.encode(without("exp"), SECRET, algorithm="HS256"))
    cases["exp not numeric"] = bearer(
        hs256({"alg": "HS256"}, claims(exp="tomorrow"), SECRET.encode())
    )
    cases["exp null"] = bearer(hs256({"alg": "HS256"}, claims(exp=None), SECRET.encode()))
    cases["nbf in the future"] = bearer(make_token(USER, nbf=int(time.time()) + 3600))
    cases["iat in the future, exp in the past"] = bearer(
        make_token(USER, iat=int(time.time()) + 3600, lifetime=-3600)
    )
    for name in TIME_CLAIMS:
        for label, value in TIME_ATTACKS.items():
            cases[f"{name} {label}"] = bearer(signed_raw(claims(), name, value))
    cases["sub missing, no fallback"] = bearer(jwt.encode(without("sub"), SECRET, "HS256"))
    cases["sub empty"] = bearer(make_token(""))
    cases["sub a number"] = bearer(hs256({"alg": "HS256"}, claims(sub=12345), SECRET.encode()))
    cases["sub a list"] = bearer(hs256({"alg": "HS256"}, claims(sub=[USER]), SECRET.encode()))
    cases["sub an object"] = bearer(
        hs256({"alg": "HS256"}, claims(sub={"id": USER}), SECRET.encode())
    )
    cases["sub null"] = bearer(hs256({"alg": "HS256"}, claims(sub=None), SECRET.encode()))
    cases["sub 300 characters"] = bearer(make_token("a" * 300))
    cases["sub 10 000 characters"] = bearer(make_token("a" * 10_000))
    cases["sub with a control character"] = bearer(make_token(USER + "\n"))
    cases["kid path traversal, HMAC with empty key (/dev/null)"] = bearer(
        hs256({"alg": "HS256", "kid": "../../../../../../dev/null"}, claims(), b"")
    )
    cases["kid path traversal, RS256 by an unknown key"] = bearer(
        jwt.encode(claims(), _ATTACKER_RSA, "RS256", headers={"kid": "../../../etc/passwd"})
    )
    cases["kid SQL injection, RS256 by an unknown key"] = bearer(
        jwt.encode(claims(), _ATTACKER_RSA, "RS256", headers={"kid": "x' OR '1'='1"})
    )
    cases["jku to an attacker JWKS"] = bearer(
        jwt.encode(
            claims(), _ATTACKER_RSA, "RS256", headers={"kid": "attacker", "jku": ATTACKER_JWKS}
        )
    )
    cases["x5u to an attacker certificate"] = bearer(
        jwt.encode(
            claims(), _ATTACKER_RSA, "RS256", headers={"kid": "attacker", "x5u": ATTACKER_CERT}
        )
    )
    cases["embedded jwk header (CVE-2018-0114)"] = bearer(
        jwt.encode(claims(), _ATTACKER_RSA, "RS256", headers={"jwk": ATTACKER_JWK})
    )
    for label, token_claims in NOT_SESSION_TOKENS.items():
        cases[label] = bearer(jwt.encode(token_claims, SECRET, "HS256"))
    nested = f"{b64('[' * 3000 + ']' * 3000)}.{b64(json.dumps(claims()))}"
    nested_signature = hmac.new(SECRET.encode(), nested.encode(), hashlib.sha256).digest()
    cases["header nested 3000 deep, validly signed"] = bearer(f"{nested}.{b64(nested_signature)}")
    cases["payload nested 3000 deep, validly signed"] = bearer(
        signed_raw_payload("[" * 3000 + "]" * 3000)
    )
    cases["duplicate Authorization headers (both valid)"] = [
        ("Authorization", f"Bearer {valid}"),
        ("Authorization", f"Bearer {valid}"),
    ]
    cases["duplicate Authorization headers (valid, garbage)"] = [
        ("Authorization", f"Bearer {valid}"),
        ("Authorization", "Bearer garbage"),
    ]
    cases["scheme Basic"] = [("Authorization", f"Basic {b64(USER + ':password')}")]
    cases["scheme Basic carrying the JWT"] = [("Authorization", f"Basic {valid}")]
    cases["scheme Token"] = [("Authorization", f"Token {valid}")]
    cases["scheme JWT"] = [("Authorization", f"JWT {valid}")]
    cases["no scheme"] = [("Authorization", valid)]
    cases["scheme only"] = [("Authorization", "Bearer")]
    cases["scheme and a space only"] = [("Authorization", "Bearer ")]
    cases["tab instead of the space"] = [("Authorization", f"Bearer\t{valid}")]
    cases["scheme glued to the token"] = [("Authorization", f"Bearer{valid}")]
    cases["space inside the token"] = [("Authorization", f"Bearer {header}.{payload} .{signature}")]
    cases["tab inside the token"] = [("Authorization", f"Bearer {header}.{payload}\t.{signature}")]
    cases["two tokens"] = [("Authorization", f"Bearer {valid} {valid}")]
    cases["token in another header"] = [("X-Authorization", f"Bearer {valid}")]
    cases["token in a cookie"] = [("Cookie", f"better-auth.session_token={valid}")]
    return [Attack(name, headers) for name, headers in cases.items()]


ATTACKS = attacks()


@pytest.mark.spec("EC-6", "FR-001", "FR-002", "FR-003", "FR-017")
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_every_hostile_token_is_401_with_a_challenge_and_writes_nothing(
    make_client: Callable[..., TestClient], db_engine: Engine
) -> None:
    client = make_client()  # an app of its own: whatever JWKS it caches here stays here
    failures: list[str] = []
    with respx.mock(assert_all_called=False, assert_all_mocked=False) as outbound:
        attacker = outbound.route(host="attacker.example").mock(
            return_value=httpx.Response(200, json={"keys": [ATTACKER_JWK]})
        )
        configured = outbound.get(CONFIGURED_JWKS).mock(
            return_value=httpx.Response(200, json=SERVER_JWKS)
        )
        for attack in ATTACKS:
            response = client.post(
                f"/api/{USER}/tasks",
                json={"title": "should never be stored"},
                headers=attack.headers,
            )
            problems = []
            if response.status_code != 401:
                problems.append(f"status {response.status_code}")
            if not response.headers.get("www-authenticate", "").startswith("Bearer"):
                problems.append(f"WWW-Authenticate {response.headers.get('www-authenticate')!r}")
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
            if not isinstance(body.get("detail"), str):
                problems.append(f"detail {body!r}")
            elif SECRET in response.text or any(
                len(value) > 40 and value.split()[-1] in response.text
                for _, value in attack.headers
            ):
                problems.append("secret or token echoed")
            if count_tasks(db_engine):
                problems.append("a task was stored")
            if problems:
                failures.append(f"{attack.name}: {', '.join(problems)}")
        others = [
            str(call.request.url) for call in outbound.calls if call.request.url != CONFIGURED_JWKS
        ]
        if attacker.called or others:
            failures.append(f"outbound requests beyond the configured JWKS: {others}")
    report(
        "JWT attack catalogue",
        len(ATTACKS),
        len(failures),
        f"configured JWKS fetched {configured.call_count}x, attacker URLs {attacker.call_count}x",
    )
    assert len(ATTACKS) >= 20
    assert not failures, "\n".join(failures)


@pytest.mark.spec("EC-6", "FR-001")
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH"])
def test_hostile_tokens_are_refused_on_item_routes_too(
    client: TestClient, db_engine: Engine, alice: Caller, method: str
) -> None:
    created = client.post(alice.tasks, json={"title": "keep me"}, headers=alice.headers).json()
    url = alice.task(created["id"])
    for attack in ATTACKS:
        response = client.request(method, url, json={"title": "x"}, headers=attack.headers)
        assert response.status_code == 401, attack.name
        assert response.headers["www-authenticate"].startswith("Bearer"), attack.name
    after = client.get(url, headers=alice.headers).json()
    assert after == created
    assert count_tasks(db_engine) == 1


@pytest.mark.spec("FR-001", "FR-002")
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(client: TestClient, scheme: str) -> None:
    token = make_token(USER)
    response = client.post(
        f"/api/{USER}/tasks", json={"title": "ok"}, headers={"Authorization": f"{scheme} {token}"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.spec("FR-001", "FR-002")
def test_a_valid_token_is_accepted_after_the_catalogue(client: TestClient) -> None:
    """The catalogue's 401s come from the attacks, not from a broken baseline."""
    response = client.get(f"/api/{USER}/tasks", headers=dict(bearer(make_token(USER))))
    assert response.status_code == 200


@pytest.mark.spec("EC-6", "A-2", "FR-004")
def test_verification_markers_are_refused_even_with_every_fallback_on(
    make_client: Callable[..., TestClient], db_engine: Engine
) -> None:
    client = make_client(jwt_user_id_claims="sub,user_id,userId,id")
    marked = {
        label: token_claims
        for label, token_claims in NOT_SESSION_TOKENS.items()
        if "fallback" not in label and "cookie cache" not in label
    }
    answers = {
        label: client.post(
            f"/api/{USER}/tasks",
            json={"title": "x"},
            headers=dict(bearer(jwt.encode(token_claims, SECRET, "HS256"))),
        ).json()
        for label, token_claims in marked.items()
    }

    assert answers == {key: {"detail": "Invalid token: not a session token"} for key in marked}
    assert count_tasks(db_engine) == 0
