"""Better Auth's own non-session tokens, minted by the real library, are no API credential (EC-6).

Better Auth signs its email-verification link token with `BETTER_AUTH_SECRET` (HS256), the very
secret the backend verifies frontend tokens with: `{email, userId, iat, exp}`, and for a change
of email `{email, updateTo, userId, requestType}`. The link travels in URLs (mail scanners, logs,
browser history) and anyone may ask Better Auth to mail a fresh one, so on every route it must be
401, with the `userId` fallback off (the default) and on.
"""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.support.better_auth import BetterAuth, SignedUp, better_auth  # noqa: F401 - the fixture
from tests.support.helpers import Caller, count_tasks

ROUTES = [
    ("GET", ""),
    ("POST", ""),
    ("GET", "/{id}"),
    ("PUT", "/{id}"),
    ("PATCH", "/{id}"),
    ("DELETE", "/{id}"),
    ("PATCH", "/{id}/complete"),
]
ALL_FALLBACKS = "sub,user_id,userId,id"


@pytest.fixture(scope="module")
def victim(better_auth: BetterAuth) -> SignedUp:  # noqa: F811 - the imported fixture
    return better_auth.sign_up(better_auth.default)


def verification_tokens(better_auth: BetterAuth, victim: SignedUp) -> dict[str, str]:  # noqa: F811
    """Every token kind Better Auth mints for email verification, all for `victim`."""
    return {
        "mailed on sign-up": victim.verification_token,
        "createEmailVerificationToken": better_auth.email_verification_token(
            victim.email, victim.user_id
        ),
        "change-email confirmation": better_auth.email_verification_token(
            victim.email,
            victim.user_id,
            update_to="new@example.com",
            request_type="change-email-confirmation",
        ),
        "change-email verification": better_auth.email_verification_token(
            "new@example.com",
            victim.user_id,
            update_to="new@example.com",
            request_type="change-email-verification",
        ),
    }


@pytest.mark.spec("EC-6", "A-2", "FR-001", "FR-002", "FR-004")
@pytest.mark.parametrize("fallbacks", ["sub", ALL_FALLBACKS], ids=["default", "fallbacks-on"])
def test_email_verification_tokens_are_401_on_every_route(
    make_client: Callable[..., TestClient],
    db_engine: Engine,
    better_auth: BetterAuth,  # noqa: F811
    victim: SignedUp,
    fallbacks: str,
) -> None:
    client = make_client(better_auth_url=better_auth.default, jwt_user_id_claims=fallbacks)
    owner = Caller(victim.user_id, victim.plugin_token)  # the victim's genuine session token
    task = client.post(owner.tasks, json={"title": "private"}, headers=owner.headers)
    assert task.status_code == 201, task.text

    refused = []
    for kind, token in verification_tokens(better_auth, victim).items():
        attacker = Caller(victim.user_id, token)
        for method, path in ROUTES:
            url = attacker.tasks + path.format(id=task.json()["id"])
            response = client.request(method, url, json={"title": "x"}, headers=attacker.headers)
            if response.status_code != 401 or "private" in response.text:
                refused.append(f"{kind}: {method} {path} -> {response.status_code}")

    assert refused == []
    assert count_tasks(db_engine) == 1
    assert client.get(owner.task(task.json()["id"]), headers=owner.headers).json() == task.json()


@pytest.mark.spec("EC-6", "A-2")
def test_the_mailed_token_is_refused_as_not_a_session_token(
    make_client: Callable[..., TestClient],
    better_auth: BetterAuth,  # noqa: F811
    victim: SignedUp,
) -> None:
    client = make_client(better_auth_url=better_auth.default, jwt_user_id_claims=ALL_FALLBACKS)
    attacker = Caller(victim.user_id, victim.verification_token)

    response = client.get(attacker.tasks, headers=attacker.headers)

    assert response.json() == {"detail": "Invalid token: not a session token"}
