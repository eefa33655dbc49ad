"""Authentication enumerated (SC-006, FR-001, FR-018): every `/api/` route, found two ways.

Routes come from `app.routes` (what is really served, including anything hidden from the docs)
and from `app.openapi()["paths"]` (what is documented); every method of every `/api/` route
must answer 401 without a token and with a garbage token, so a route added later without
authentication fails here. The schema must declare the bearer scheme on each operation and
document the error codes each can return.
"""

from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount

from backend.config import Settings
from backend.main import create_app
from tests.support.hardening import report
from tests.support.helpers import Caller

EXAMPLE_PARAMS = {"user_id": "alice-0123456789abcdefghijklmnop", "task_id": "1"}
NO_TOKEN: dict[str, str] = {}
GARBAGE = {"Authorization": "Bearer garbage.garbage.garbage"}
SECURITY_SCHEME = "BetterAuthJWT"
ERROR_CODES = {"401", "403", "405", "413", "422", "429", "503"}


def _concrete(path: str) -> str:
    for name, value in EXAMPLE_PARAMS.items():
        path = path.replace("{" + name + "}", value).replace("{" + name + ":int}", value)
    return path


def _flattened(routes: list[BaseRoute]) -> Iterator[tuple[BaseRoute, str | None, set[str]]]:
    """(route, full path, methods) of every route, through included routers and mounts.

    FastAPI >= 0.16x keeps included routers as lazy `_IncludedRouter` entries of `app.routes`;
    `iter_route_contexts` resolves them (with their prefixes) where it exists.
    """
    contexts: Any = getattr(fastapi.routing, "iter_route_contexts", None)
    entries = contexts(routes) if contexts is not None else routes
    for entry in entries:
        route = getattr(entry, "original_route", entry)
        yield route, getattr(entry, "path", None), set(getattr(entry, "methods", None) or ())


def served_endpoints(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, concrete path) of every route under `/api/` that the app serves."""
    for route, path, methods in _flattened(routes):
        full = prefix + (path or "")
        if isinstance(route, Mount):
            if full.startswith("/api"):
                # Whatever a mounted app serves, its root and a sub-path must be guarded too.
                yield "GET", _concrete(full + "/")
                yield "GET", _concrete(full + "/anything")
            yield from served_endpoints(list(route.routes or []), full)
        elif full.startswith("/api"):
            for method in sorted(methods or {"GET"}):
                if method != "HEAD":
                    yield method, _concrete(full)


def documented_endpoints(app: FastAPI) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in app.openapi()["paths"].items():
        if path.startswith("/api"):
            for method, operation in item.items():
                yield method.upper(), path, operation


def unauthenticated(client: TestClient, app: FastAPI) -> tuple[int, list[str]]:
    """(requests made, offenders): every `/api/` endpoint, without and with a garbage token."""
    endpoints = set(served_endpoints(app.routes))
    endpoints |= {(method, _concrete(path)) for method, path, _ in documented_endpoints(app)}
    offenders = []
    tried = 0
    for method, path in sorted(endpoints):
        for label, headers in (("no token", NO_TOKEN), ("garbage token", GARBAGE)):
            for suffix in ("", "/"):
                tried += 1
                response = client.request(
                    method, path + suffix, headers=headers, json={"title": "x"}
                )
                challenge = response.headers.get("www-authenticate", "")
                if response.status_code != 401 or not challenge.startswith("Bearer"):
                    offenders.append(
                        f"{method} {path}{suffix} ({label}): {response.status_code} {challenge!r}"
                    )
    return tried, offenders


@pytest.mark.spec("SC-006", "FR-001")
def test_every_api_route_needs_a_token(client: TestClient, app: FastAPI) -> None:
    served = set(served_endpoints(app.routes))
    tried, offenders = unauthenticated(client, app)

    report("Authentication enumerated", tried, len(offenders), f"{len(served)} served endpoints")
    assert len(served) >= 7  # the locked API: 7 method/path pairs
    assert not offenders, "\n".join(offenders)


@pytest.mark.spec("SC-006", "FR-001")
def test_the_enumeration_catches_a_route_added_without_auth(
    settings: Settings, clean_db: None
) -> None:
    leaky = create_app(settings)

    @leaky.get("/api/{user_id}/export")
    def export(user_id: str) -> list[str]:
        return []

    @leaky.get("/api/hidden", include_in_schema=False)
    def hidden() -> dict[str, str]:
        return {}

    with TestClient(leaky) as client:
        _, offenders = unauthenticated(client, leaky)

    assert any("/export" in offender for offender in offenders)
    assert any("/api/hidden" in offender for offender in offenders)


@pytest.mark.spec("SC-006", "FR-005")
def test_every_api_route_refuses_another_users_token(
    client: TestClient, app: FastAPI, bob: Caller
) -> None:
    for method, path in sorted(set(served_endpoints(app.routes))):
        response = client.request(method, path, headers=bob.headers, json={"title": "x"})
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        assert isinstance(response.json()["detail"], str)


@pytest.mark.spec("FR-018", "SC-006")
def test_every_api_operation_declares_bearer_auth_and_its_error_codes(app: FastAPI) -> None:
    schema = app.openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes[SECURITY_SCHEME]["type"] == "http"
    assert schemes[SECURITY_SCHEME]["scheme"].lower() == "bearer"
    problems = []
    operations = list(documented_endpoints(app))
    for method, path, operation in operations:
        where = f"{method} {path}"
        if {SECURITY_SCHEME: []} not in operation.get("security", []):
            problems.append(f"{where}: no {SECURITY_SCHEME} security requirement")
        documented = set(operation["responses"])
        expected = set(ERROR_CODES)
        if "{task_id}" in path:
            expected.add("404")
        if not expected <= documented:
            problems.append(f"{where}: undocumented {sorted(expected - documented)}")
        if not any(code.startswith("2") for code in documented):
            problems.append(f"{where}: no success response")
        for code in documented - {"200", "201", "204"}:
            content = operation["responses"][code].get("content", {})
            if "application/json" not in content:
                problems.append(f"{where}: {code} has no JSON body documented")
    assert len(operations) == 7
    assert not problems, "\n".join(problems)


@pytest.mark.spec("FR-020", "SC-006")
def test_only_health_and_docs_are_public(app: FastAPI, client: TestClient) -> None:
    public = sorted(path for path in app.openapi()["paths"] if not path.startswith("/api"))
    assert public == ["/health", "/health/live", "/health/ready"]
    assert all(client.get(path).status_code == 200 for path in public)
