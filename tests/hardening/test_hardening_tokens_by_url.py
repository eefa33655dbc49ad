"""The attack catalogue's hostile tokens, black-box: also run by URL in conformance mode (EC-6).

Each token targets a fresh user: `POST` with it must be a 401 with a `Bearer` challenge and a
`detail` string, and the user's list must stay empty. Tokens are built from what the run has: the
caller's real token (tampered), the secret (expired, no user id, asymmetric header over an HMAC),
and the JWKS public keys of `--auth-url` (HS256 signed with the public key: key confusion).
Without the secret or the JWKS a case is not applicable, never silently passed.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from tests.plugins.conformance import Target
from tests.support.helpers import Caller, signing_secret

pytestmark = pytest.mark.blackbox


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """Built by hand: PyJWT refuses PEM keys as HMAC secrets, which is the attack here."""
    signing_input = f"{b64(json.dumps(header))}.{b64(json.dumps(payload))}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(user_id: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user_id, "iat": now, "exp": now + 900, **extra}


def public_pems(target: Target) -> list[bytes]:
    """The verifier's public keys as PEM: `--auth-url`'s JWKS, or in-process a stand-in key."""
    if not target.conformance:
        key = ed25519.Ed25519PrivateKey.generate().public_key()
        return [
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ]
    if not target.auth_url:
        pytest.skip("needs --auth-url (the JWKS public key to confuse with the HMAC secret)")
    keys = httpx.get(f"{target.auth_url}/api/auth/jwks", timeout=10).json()["keys"]
    pems = []
    for jwk in keys:
        public = jwt.PyJWK(jwk).key
        pems.append(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return pems


def tampered(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{b64(json.dumps({**decoded, **changes}))}.{signature}"


Build = Callable[[Caller, Caller, Target], list[str]]
CASES: dict[str, Build] = {
    "alg none, any casing": lambda a, b, t: [
        f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}))}.{b64(json.dumps(claims(a.id)))}."
        for alg in ("none", "None", "NONE")
    ],
    "alg none over the real signature": lambda a, b, t: [
        f"{b64(json.dumps({'alg': 'none'}))}.{a.token.split('.', 1)[1]}"
    ],
    "wrong key": lambda a, b, t: [
        jwt.encode(claims(a.id), secrets.token_urlsafe(32), algorithm="HS256")
    ],
    "tampered payload (exp, sub)": lambda a, b, t: [
        tampered(a.token, exp=int(time.time()) + 10**6),
        tampered(b.token, sub=a.id),
    ],
    "truncated signature": lambda a, b, t: [a.token[:-6]],
    "expired beyond the leeway": lambda a, b, t: [
        jwt.encode(claims(a.id, exp=int(time.time()) - 300), signing_secret(), "HS256")
    ],
    "no user id": lambda a, b, t: [
        jwt.encode({"iat": int(time.time()), "exp": int(time.time()) + 900}, signing_secret())
    ],
    "asymmetric alg header over an HMAC with the secret": lambda a, b, t: [
        hmac_signed({"alg": alg}, claims(a.id), signing_secret().encode())
        for alg in ("RS256", "EdDSA", "ES256")
    ],
    "key confusion: HS256 signed with the JWKS public key": lambda a, b, t: [
        hmac_signed({"alg": "HS256", "typ": "JWT"}, claims(a.id), pem) for pem in public_pems(t)
    ],
}


@pytest.mark.spec("EC-6", "FR-002", "FR-001", "FR-003")
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_token_is_401_and_writes_nothing(
    client: TestClient, alice: Caller, bob: Caller, target: Target, case: str
) -> None:
    for token in CASES[case](alice, bob, target):
        response = client.post(
            alice.tasks,
            json={"title": "never stored"},
            headers={"Authorization": f"Bearer {token}"},
        )

        assert response.status_code == 401, response.text
        assert response.headers.get("www-authenticate", "").startswith("Bearer")
        assert isinstance(response.json()["detail"], str)
    assert client.get(alice.tasks, headers=alice.headers).json() == []
