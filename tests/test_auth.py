"""Authentication and ownership: who may call, and on whose tasks (SPEC.md, Auth)."""

import json
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from backend.config import Settings
from tests.support.helpers import Caller, FakeClock, count_tasks, create, make_token, signing_secret

# Every task endpoint, as (method, path below /api/{user_id}/tasks) with task id 1.
ENDPOINTS = [
    ("GET", ""),
    ("POST", ""),
    ("GET", "/1"),
    ("PUT", "/1"),
    ("PATCH", "/1"),
    ("DELETE", "/1"),
    ("PATCH", "/1/complete"),
]


@pytest.mark.spec("FR-001", "SC-006")
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_without_a_token_is_401_with_a_bearer_challenge(
    client: TestClient, alice: Caller, method: str, path: str
) -> None:
    response = client.request(method, alice.tasks + path, json={"title": "x"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "Not authenticated"}


@pytest.mark.spec("FR-002", "EC-6")
@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Bearer " + make_token("alice", secret="another-secret-of-at-least-32-bytes!"),
        "Basic YWxpY2U6cGFzcw==",
        "Token abc",
        "Bearer",
        "Bearer ",
    ],
)
def test_bad_or_foreign_tokens_are_401(client: TestClient, alice: Caller, header: str) -> None:
    response = client.post(alice.tasks, json={"title": "x"}, headers={"Authorization": header})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert isinstance(response.json()["detail"], str)
    assert client.get(alice.tasks, headers=alice.headers).json() == []


@pytest.mark.spec("FR-002")
def test_scheme_is_case_insensitive(client: TestClient, alice: Caller) -> None:
    response = client.get(alice.tasks, headers={"Authorization": f"bearer {alice.token}"})

    assert response.status_code == 200


@pytest.mark.spec("EC-6", "FR-002")
def test_altered_payload_and_alg_none_are_401(client: TestClient, alice: Caller) -> None:
    header, _, signature = alice.token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        f'{{"sub":"{alice.id}","exp":9999999999}}'.encode()
    ).decode()
    unsigned = jwt.encode({"sub": alice.id, "exp": int(time.time()) + 60}, None, algorithm="none")

    for token in (f"{header}.{forged_payload}.{signature}", unsigned):
        response = client.get(alice.tasks, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.spec("FR-003", "EC-1")
def test_expired_token_is_401_and_has_no_effect(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    created = create(client, alice)
    expired = make_token(alice.id, lifetime=-31)  # past the 30 s leeway

    response = client.put(
        alice.task(created["id"]),
        json={"title": "changed"},
        headers={"Authorization": f"Bearer {expired}"},
    )

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token: token expired"
    assert client.get(alice.task(created["id"]), headers=alice.headers).json() == created


@pytest.mark.spec("FR-003")
def test_leeway_accepts_small_clock_skew_and_nbf_in_the_future_is_401(
    client: TestClient, alice: Caller
) -> None:
    skewed = make_token(alice.id, lifetime=-10)
    early = make_token(alice.id, nbf=int(time.time()) + 120)

    assert client.get(alice.tasks, headers={"Authorization": f"Bearer {skewed}"}).status_code == 200
    assert client.get(alice.tasks, headers={"Authorization": f"Bearer {early}"}).status_code == 401


@pytest.mark.spec("FR-003", "EC-6")
def test_a_token_without_exp_is_401(client: TestClient, alice: Caller) -> None:
    token = jwt.encode({"sub": alice.id}, signing_secret(), algorithm="HS256")

    response = client.get(alice.tasks, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token: token has no 'exp' claim"


@pytest.mark.spec("A-2", "FR-004")
@pytest.mark.parametrize("claim", ["user_id", "userId", "id"])
def test_fallback_user_id_claims_work_only_when_configured(
    make_client: Callable[..., TestClient], alice: Caller, claim: str
) -> None:
    default = make_client()
    opted_in = make_client(jwt_user_id_claims=f"sub,{claim}")
    token = {"Authorization": f"Bearer {make_token(None, **{claim: alice.id})}"}

    refused = default.get(alice.tasks, headers=token)

    assert refused.json() == {"detail": "Invalid token: token names no user"}
    assert opted_in.get(alice.tasks, headers=token).status_code == 200
    assert opted_in.get(alice.tasks, headers=alice.headers).status_code == 200  # sub still works


@pytest.mark.spec("A-2", "FR-004")
def test_sub_comes_first_when_fallbacks_are_on(
    make_client: Callable[..., TestClient], alice: Caller, bob: Caller
) -> None:
    client = make_client(jwt_user_id_claims="sub,userId,id")
    token = make_token(alice.id, userId=bob.id, id=bob.id)

    assert client.get(alice.tasks, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get(bob.tasks, headers={"Authorization": f"Bearer {token}"}).status_code == 403


@pytest.mark.spec("A-2", "FR-015")
@pytest.mark.parametrize("value", ["sub,email", "userid", " ", "[]"])
def test_jwt_user_id_claims_refuses_claims_no_token_uses(
    make_settings: Callable[..., Settings], value: str
) -> None:
    with pytest.raises(ValidationError, match="JWT_USER_ID_CLAIMS"):
        make_settings(jwt_user_id_claims=value)


@pytest.mark.spec("A-2", "FR-002")
def test_better_auth_cookie_cache_jwt_is_accepted(client: TestClient, alice: Caller) -> None:
    now = int(time.time())
    payload = {
        "session": {"id": "s1", "userId": alice.id, "token": "opaque"},
        "user": {"id": alice.id, "email": "alice@example.com", "name": "Alice"},
        "iat": now,
        "exp": now + 300,
    }
    token = jwt.encode(
        payload, signing_secret(), algorithm="HS256", headers={"alg": "HS256", "typ": None}
    )

    response = client.post(
        alice.tasks, json={"title": "x"}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 201
    assert response.json()["user_id"] == alice.id


@pytest.mark.spec("A-2", "EC-6")
@pytest.mark.parametrize(
    "shape",
    [
        {"user": {"id": "ALICE"}, "session": {"userId": "BOB"}},
        {"user": {"id": "ALICE"}},
        {"session": {"userId": "ALICE"}},
        {"user": {"id": "ALICE"}, "session": "ALICE"},
        {"user": "ALICE", "session": {"userId": "ALICE"}},
    ],
    ids=["ids-differ", "user-only", "session-only", "session-not-object", "user-not-object"],
)
def test_only_the_whole_cookie_cache_shape_names_a_user(
    client: TestClient, alice: Caller, bob: Caller, shape: dict[str, object]
) -> None:
    payload = json.loads(json.dumps(shape).replace("ALICE", alice.id).replace("BOB", bob.id))
    token = make_token(None, **payload)

    response = client.get(alice.tasks, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


@pytest.mark.spec("EC-6")
@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 42}, {"sub": "x" * 10_000}])
def test_missing_or_invalid_user_id_is_401(
    client: TestClient, alice: Caller, claims: dict[str, object]
) -> None:
    token = make_token(None, **claims)

    response = client.get(alice.tasks, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


@pytest.mark.spec("FR-005", "SC-002")
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_valid_token_on_another_users_url_is_403(
    client: TestClient, alice: Caller, bob: Caller, method: str, path: str
) -> None:
    bobs = create(client, bob)

    response = client.request(
        method,
        bob.tasks + path.replace("1", str(bobs["id"])),
        json={"title": "x"},
        headers=alice.headers,
    )

    assert response.status_code == 403
    assert isinstance(response.json()["detail"], str)
    assert client.get(alice.tasks, headers=alice.headers).json() == []
    assert client.get(bob.tasks, headers=bob.headers).json() == [bobs]


@pytest.mark.spec("FR-005", "FR-001")
def test_order_is_401_then_403_then_404_or_422(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    bad_json = {"Content-Type": "application/json"}

    anonymous = client.put(bob.task("abc"), content=b"{broken", headers=bad_json)
    foreign = client.put(bob.task("abc"), content=b"{broken", headers={**alice.headers, **bad_json})
    own = client.put(alice.task("abc"), content=b"{broken", headers={**alice.headers, **bad_json})
    missing = client.put(alice.task(1), json={"title": "x"}, headers=alice.headers)

    assert (anonymous.status_code, foreign.status_code) == (401, 403)
    assert (own.status_code, missing.status_code) == (422, 404)


@pytest.mark.spec("EC-7", "SC-002")
@pytest.mark.parametrize(
    "user_path", ["alice%2Fbob", "%C3%A9l%C3%A8ve-%F0%9F%99%82", "u" * 300, "..", "%2E%2E"]
)
def test_odd_path_user_ids_are_refused_never_500(
    client: TestClient, alice: Caller, bob: Caller, user_path: str
) -> None:
    create(client, bob)

    response = client.get(f"/api/{user_path}/tasks", headers=alice.headers)

    assert response.status_code in (403, 404, 422)
    assert bob.id not in response.text


@pytest.mark.spec("FR-004")
def test_identity_never_comes_from_the_query(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    create(client, bob)

    response = client.get(f"{alice.tasks}?user_id={bob.id}&userId={bob.id}", headers=alice.headers)

    assert response.json() == []


@pytest.mark.spec("FR-002")
def test_hs256_iss_and_aud_are_checked_only_when_configured(
    make_client: object, alice: Caller
) -> None:
    strict = make_client(jwt_issuer="https://app.example.com", jwt_audience="todo-api")  # type: ignore[operator]
    lenient = make_client()  # type: ignore[operator]
    right = make_token(alice.id, iss="https://app.example.com", aud="todo-api")
    wrong = make_token(alice.id, iss="https://evil.example.com", aud="todo-api")
    carries_aud = make_token(alice.id, aud="anything")

    def status(client: TestClient, token: str) -> int:
        return client.get(alice.tasks, headers={"Authorization": f"Bearer {token}"}).status_code

    assert (status(strict, right), status(strict, wrong), status(strict, alice.token)) == (
        200,
        401,
        401,
    )
    assert status(lenient, carries_aud) == 200


@pytest.mark.spec("FR-002", "FR-015")
def test_issuer_and_audience_take_lists_and_a_401_names_claim_and_setting(
    make_client: Callable[..., TestClient], alice: Caller
) -> None:
    client = make_client(
        jwt_issuer="https://app.example.com, https://staging.example.com",
        jwt_audience="todo-api,https://api.example.com",
    )

    def get(**claims: str) -> httpx.Response:
        token = make_token(alice.id, **claims)
        return client.get(alice.tasks, headers={"Authorization": f"Bearer {token}"})

    good = {"iss": "https://staging.example.com", "aud": "https://api.example.com"}
    wrong_iss = get(**(good | {"iss": "https://evil.example.com"})).json()["detail"]
    wrong_aud = get(**(good | {"aud": "https://evil.example.com"})).json()["detail"]
    no_aud = get(iss="https://app.example.com").json()["detail"]

    assert get(**good).status_code == 200
    assert get(iss="https://app.example.com", aud="todo-api").status_code == 200
    assert wrong_iss == (
        "Invalid token: token 'iss' claim is not an accepted value; "
        "set JWT_ISSUER (comma-separated) to accept it"
    )
    assert wrong_aud == (
        "Invalid token: token 'aud' claim is not an accepted value; "
        "set JWT_AUDIENCE (comma-separated) to accept it"
    )
    assert no_aud == "Invalid token: token has no 'aud' claim, which JWT_AUDIENCE requires"


@pytest.mark.spec("EC-1", "FR-003")
def test_a_token_that_expires_between_two_requests_is_refused_on_the_second(
    make_client: Callable[..., TestClient], alice: Caller, db_engine: Engine
) -> None:
    clock = FakeClock()
    client = make_client(jwt_leeway_seconds=0, clock=clock)
    expires = int(clock.now) + 60
    # Issued by the same clock: with no leeway, a real-time `iat` a second ahead would be refused.
    token = make_token(alice.id, iat=int(clock.now), exp=expires)
    headers = {"Authorization": f"Bearer {token}"}

    first = client.post(alice.tasks, json={"title": "before"}, headers=headers)
    clock.now = expires - 0.001
    last = client.post(alice.tasks, json={"title": "last moment"}, headers=headers)
    clock.now = expires
    after = client.post(alice.tasks, json={"title": "after"}, headers=headers)

    assert (first.status_code, last.status_code, after.status_code) == (201, 201, 401)
    assert after.json() == {"detail": "Invalid token: token expired"}
    assert count_tasks(db_engine) == 2


@pytest.mark.spec("FR-003", "EC-1")
@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"exp": -29}, None),
        ({"exp": -30}, "token expired"),
        ({"nbf": 30}, None),
        ({"nbf": 31}, "token not yet valid"),
        ({"iat": 30}, None),
        ({"iat": 31}, "token not yet valid"),
    ],
    ids=[
        "exp-in-leeway",
        "exp-past-leeway",
        "nbf-in-leeway",
        "nbf-past",
        "iat-in-leeway",
        "iat-past",
    ],
)
def test_time_claims_are_judged_by_the_verifiers_clock_with_its_leeway(
    make_client: Callable[..., TestClient],
    alice: Caller,
    claims: dict[str, int],
    detail: str | None,
) -> None:
    """Seconds relative to the clock, on a token seen for the first time (default 30 s leeway)."""
    clock = FakeClock()
    clock.now += 3600  # an hour from the real time: only the verifier's clock can judge this
    client = make_client(clock=clock)
    now = int(clock.now)
    times = {"iat": now, "exp": now + 900} | {name: now + at for name, at in claims.items()}
    token = make_token(alice.id, **times)

    response = client.get(alice.tasks, headers={"Authorization": f"Bearer {token}"})

    if detail is None:
        assert response.status_code == 200, response.text
    else:
        assert response.json() == {"detail": f"Invalid token: {detail}"}
