"""The OpenAPI document as client generators and linters read it (FR-018, SC-006, SC-008).

Generators (openapi-typescript, @hey-api/openapi-ts, orval) turn this document into the
frontend's types: names, enums, optional-vs-nullable and documented headers all end up in code.
"""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from tests.support.helpers import Caller, create

OPERATIONS = {
    ("/api/{user_id}/tasks", "get"): "listTasks",
    ("/api/{user_id}/tasks", "post"): "createTask",
    ("/api/{user_id}/tasks/{task_id}", "get"): "getTask",
    ("/api/{user_id}/tasks/{task_id}", "put"): "updateTask",
    ("/api/{user_id}/tasks/{task_id}", "patch"): "patchTask",
    ("/api/{user_id}/tasks/{task_id}/complete", "patch"): "toggleTask",
    ("/api/{user_id}/tasks/{task_id}", "delete"): "deleteTask",
    ("/health", "get"): "health",
    ("/health/live", "get"): "healthLive",
    ("/health/ready", "get"): "healthReady",
}


@pytest.fixture(scope="module")
def schema(session_client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = session_client.get("/openapi.json").json()
    return document


def walk(node: Any) -> list[dict[str, Any]]:
    """Every JSON object in the document."""
    if isinstance(node, dict):
        return [node, *(found for value in node.values() for found in walk(value))]
    if isinstance(node, list):
        return [found for value in node for found in walk(value)]
    return []


@pytest.mark.spec("FR-018", "SC-008")
def test_openapi_spec_validator_finds_no_error(schema: dict[str, Any]) -> None:
    validate(schema)  # raises on the first error


@pytest.mark.spec("FR-018", "SC-006")
def test_every_operation_has_a_readable_id_and_the_servers_are_declared(
    schema: dict[str, Any],
) -> None:
    found = {
        (path, method): operation["operationId"]
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }

    assert found == OPERATIONS
    assert schema["servers"][0]["url"] == "http://localhost:8000"


@pytest.mark.spec("FR-020", "FR-001", "SC-006")
def test_health_is_marked_public_and_the_bearer_scheme_is_a_jwt(schema: dict[str, Any]) -> None:
    for path in ("/health", "/health/live", "/health/ready"):
        assert schema["paths"][path]["get"]["security"] == []
    assert schema["components"]["securitySchemes"]["BetterAuthJWT"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["BetterAuthJWT"]["description"],
    }


@pytest.mark.spec("FR-018", "A-3", "A-7", "SC-010")
def test_response_headers_are_documented_where_they_occur(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    tasks, one = paths["/api/{user_id}/tasks"], paths["/api/{user_id}/tasks/{task_id}"]

    assert "X-Total-Count" in tasks["get"]["responses"]["200"]["headers"]
    assert "Location" in tasks["post"]["responses"]["201"]["headers"]
    assert "Retry-After" in paths["/health"]["get"]["responses"]["503"]["headers"]
    for path, item in paths.items():
        if not path.startswith("/api/"):
            continue
        for operation in item.values():
            responses = operation["responses"]
            assert "WWW-Authenticate" in responses["401"]["headers"], path
            assert "Retry-After" in responses["429"]["headers"], path
            assert "Retry-After" in responses["503"]["headers"], path
            assert "Allow" in responses["405"]["headers"], path
    assert "Allow" in one["get"]["responses"]["405"]["headers"]


@pytest.mark.spec("US-2.3")
def test_list_parameters_are_enums_not_regex_patterns(schema: dict[str, Any]) -> None:
    parameters = {
        p["name"]: p["schema"] for p in schema["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]
    }
    statuses = ["all", "pending", "completed", "incomplete", "active", "todo", "done"]
    sorts = ["created", "updated", "title", "created_at", "updated_at"]

    assert parameters["status"] == {**parameters["status"], "type": "string", "enum": statuses}
    for name in ("sort", "sort_by"):
        assert parameters[name]["enum"] == sorts
    for name in ("order", "sort_order"):
        assert parameters[name]["enum"] == ["asc", "desc"]
    assert parameters["offset"]["minimum"] == 0
    # No Python-only regex syntax anywhere, no `null` a query string cannot carry.
    assert not [node for node in walk(schema) if "(?i)" in str(node.get("pattern", ""))]
    assert "null" not in json.dumps(list(parameters.values()))


@pytest.mark.spec("US-1.1", "US-3", "EC-2")
def test_request_bodies_say_optional_not_nullable_and_carry_no_defaults(
    schema: dict[str, Any],
) -> None:
    """openapi-typescript makes a property with a `default` required; a nullable field says
    `null` is fine, and for `title` / `completed` it is a 422."""
    models = schema["components"]["schemas"]
    create, update = models["TaskCreate"], models["TaskUpdate"]

    assert create["required"] == ["title"]
    assert "required" not in update
    for model in (create, update, models["CompletionUpdate"]):
        assert all("default" not in field for field in model["properties"].values())
    for name in ("title", "completed"):
        assert "anyOf" not in update["properties"][name], name
        assert update["properties"][name]["type"] in ("string", "boolean")
    assert {"type": "null"} in update["properties"]["description"]["anyOf"]


@pytest.mark.spec("US-3", "EC-2")
def test_a_null_title_or_completed_is_still_a_422(client: TestClient) -> None:
    alice = Caller("openapi-null-0123456789abcdefg")
    task = create(client, alice)
    for body in ({"title": None}, {"completed": None}):
        response = client.put(alice.task(task["id"]), json=body, headers=alice.headers)
        assert response.status_code == 422, f"PUT {body}: {response.status_code}"
    cleared = client.put(alice.task(task["id"]), json={"description": None}, headers=alice.headers)
    assert (cleared.status_code, cleared.json()["description"]) == (200, None)


@pytest.mark.spec("FR-018", "SC-006")
@pytest.mark.internal  # our OpenAPI document and security scheme name
def test_every_task_operation_documents_its_errors_and_needs_the_bearer(
    schema: dict[str, Any],
) -> None:
    operations = [
        (path, operation)
        for path, item in schema["paths"].items()
        if path.startswith("/api/")
        for operation in item.values()
    ]
    assert len(operations) == 7
    for path, operation in operations:
        codes = set(operation["responses"])
        assert {"401", "403", "405", "413", "422", "429", "503"} <= codes, path
        assert codes & {"200", "201", "204"}, path
        assert {"BetterAuthJWT": []} in operation["security"], path


@pytest.mark.spec("FR-021", "FR-018", "SC-006", "SC-008")
def test_create_documents_its_idempotency_key_header_and_the_409_and_422_it_brings(
    schema: dict[str, Any],
) -> None:
    """Generated clients get the header as a typed optional parameter of `createTask` only."""
    create = schema["paths"]["/api/{user_id}/tasks"]["post"]
    responses = create["responses"]
    header = [p for p in create["parameters"] if p["in"] == "header"]
    others = [
        p["name"]
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if (path, method) != ("/api/{user_id}/tasks", "post")
        for p in operation.get("parameters", [])
        if p["in"] == "header"
    ]

    assert create["operationId"] == "createTask"
    assert [(p["name"], p["required"], p["schema"]) for p in header] == [
        ("Idempotency-Key", False, {"type": "string"})
    ]
    assert "24 h" in header[0]["description"]
    assert others == []
    assert responses["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert "Retry-After" in responses["409"]["headers"]
    assert responses["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationErrorResponse"
    }
    assert "Idempotency-Key" in responses["422"]["description"]
