"""Every session token the real Better Auth 1.7 hands a frontend works here (SPEC.md, Auth).

The tokens come from `better-auth` itself (tests/better_auth/server.mjs over real HTTP): the JWT
plugin's EdDSA token checked against its live JWKS, and the cookie cache's HS256 JWT.
"""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.support.better_auth import BetterAuth, better_auth  # noqa: F401 - the fixture
from tests.support.helpers import Caller


@pytest.mark.spec("FR-002", "A-2", "SC-008", "US-1.1", "US-2.1")
def test_jwt_plugin_and_cookie_cache_tokens_of_the_real_library_are_accepted(
    make_client: Callable[..., TestClient],
    better_auth: BetterAuth,  # noqa: F811
) -> None:
    client = make_client(better_auth_url=better_auth.default)
    user = better_auth.sign_up(better_auth.default)

    for token in (user.plugin_token, user.cookie_cache_token):
        caller = Caller(user.user_id, token)
        created = client.post(caller.tasks, json={"title": "mine"}, headers=caller.headers)
        assert created.status_code == 201, created.text
        assert created.json()["user_id"] == user.user_id
    listed = client.get(
        Caller(user.user_id).tasks, headers=Caller(user.user_id, user.plugin_token).headers
    )
    assert [task["title"] for task in listed.json()] == ["mine", "mine"]


@pytest.mark.spec("FR-002", "A-2", "SC-008")
def test_a_plugin_audience_naming_the_api_gets_a_401_that_names_the_fix(
    make_client: Callable[..., TestClient],
    better_auth: BetterAuth,  # noqa: F811
) -> None:
    """`jwt({ jwt: { audience: API_URL } })`: aud is the API, iss stays the auth server."""
    user = better_auth.sign_up(better_auth.audience)
    caller = Caller(user.user_id, user.plugin_token)
    unconfigured = make_client(better_auth_url=better_auth.audience)
    configured = make_client(
        better_auth_url=better_auth.audience,
        jwt_audience=f"https://other.example, {better_auth.api_audience}",
        jwt_issuer=better_auth.audience,
    )

    refused = unconfigured.get(caller.tasks, headers=caller.headers)
    accepted = configured.get(caller.tasks, headers=caller.headers)

    assert refused.status_code == 401
    assert "'aud'" in refused.json()["detail"]
    assert "JWT_AUDIENCE" in refused.json()["detail"]
    assert better_auth.api_audience not in refused.text
    assert accepted.status_code == 200, accepted.text
