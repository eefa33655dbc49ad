"""Cross-cutting behaviour: CORS, health, configuration, error shapes, schema, limits."""

import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from helpers import AUTH_URL, Caller, create
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from backend import embedded_db
from backend.config import Settings
from backend.db import normalize_url
from backend.main import create_app

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = AUTH_URL  # the frontend origin of the apps these tests build themselves


@pytest.mark.spec("FR-016", "A-6", "SC-008")
def test_cors_preflight_needs_no_token_and_allows_authorization(
    client: TestClient, alice: Caller, origin: str
) -> None:
    response = client.options(
        alice.tasks,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.spec("FR-016", "A-6", "SC-008")
def test_cors_exposes_headers_frontends_read_and_refuses_other_origins(
    make_client: Callable[..., TestClient], alice: Caller
) -> None:
    client = make_client(cors_origins="https://app.example.com, https://staging.example.com/")

    allowed = client.get(
        alice.tasks, headers={**alice.headers, "Origin": "https://staging.example.com"}
    )
    refused = client.get(
        alice.tasks, headers={**alice.headers, "Origin": "https://evil.example.com"}
    )

    assert allowed.headers["Access-Control-Allow-Origin"] == "https://staging.example.com"
    assert "x-total-count" in allowed.headers["Access-Control-Expose-Headers"].lower()
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.spec("FR-020")
def test_health_needs_no_token_and_reports_the_database(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["database"] == "reachable"


@pytest.mark.spec("FR-015")
def test_missing_secret_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import backend.main as m; m.create_app()"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "Configuration error: BETTER_AUTH_SECRET missing or invalid "
        "(set it in the environment or in .env; see .env.example)"
    )


@pytest.mark.spec("FR-017", "FR-018")
def test_unknown_path_and_wrong_method_are_json_errors(client: TestClient, alice: Caller) -> None:
    missing = client.get("/nope")
    wrong_method = client.post(alice.task(1), json={}, headers=alice.headers)

    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"detail": "Method Not Allowed"}


@pytest.mark.spec("FR-018")
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api/u/tasks/1", {"GET", "PUT", "PATCH", "DELETE"}),
        ("DELETE", "/api/u/tasks", {"GET", "POST"}),
        ("GET", "/api/u/tasks/1/complete", {"PATCH"}),
        ("POST", "/health", {"GET"}),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    client: TestClient, alice: Caller, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, path, headers=alice.headers)

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == allowed


@pytest.mark.spec("FR-016", "SC-008")
def test_a_cross_origin_401_lets_the_page_read_why(
    client: TestClient, alice: Caller, origin: str
) -> None:
    """`WWW-Authenticate` is exposed, so a page tells an expired token from a missing one."""
    response = client.get(
        alice.tasks, headers={"Origin": origin, "Authorization": "Bearer not-a-jwt"}
    )

    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == origin
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"www-authenticate", "x-request-id", "retry-after"} <= exposed
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.spec("SC-008")
@pytest.mark.parametrize("suffix", ["/", ""])
def test_trailing_slash_works_without_redirect(
    client: TestClient, alice: Caller, suffix: str
) -> None:
    created = client.post(alice.tasks + suffix, json={"title": "x"}, headers=alice.headers)
    listed = client.get(alice.tasks + suffix, headers=alice.headers, follow_redirects=False)
    one = client.get(
        alice.task(created.json()["id"]) + suffix, headers=alice.headers, follow_redirects=False
    )

    assert (created.status_code, listed.status_code, one.status_code) == (201, 200, 200)


@pytest.mark.spec("FR-017")
def test_an_unhandled_error_is_a_plain_500_with_the_trace_only_in_the_log(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings())

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret-internal-state")

    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR, logger="backend"),
    ):
        response = client.get("/boom", headers={"Origin": FRONTEND, "X-Request-ID": "req-500-1"})

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "secret-internal-state" not in response.text
    assert "RuntimeError: secret-internal-state" in caplog.text
    # The 500 is made inside CORS and the request log (FR-016, FR-017).
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.headers["X-Request-ID"] == "req-500-1"
    assert "request id req-500-1" in caplog.text


@pytest.mark.spec("FR-016", "SC-008")
def test_a_500_from_a_request_racing_shutdown_carries_cors_headers(
    make_client: Callable[..., TestClient], alice: Caller
) -> None:
    """A genuine unhandled error: a request reaching the app after its database was closed
    (shutdown under way). The browser must still be allowed to read the JSON `detail`."""
    client = make_client()
    client.app.state.database.close()  # type: ignore[attr-defined]

    response = client.get(alice.tasks, headers={**alice.headers, "Origin": FRONTEND})

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.spec("A-7", "FR-018")
def test_rate_limit_is_per_user_and_answers_429_with_retry_after(
    make_client: Callable[..., TestClient], alice: Caller, bob: Caller
) -> None:
    client = make_client(rate_limit_per_minute=3)

    statuses = [client.get(alice.tasks, headers=alice.headers).status_code for _ in range(4)]
    limited = client.get(alice.tasks, headers=alice.headers)

    assert statuses == [200, 200, 200, 429]
    assert int(limited.headers["Retry-After"]) >= 1
    assert isinstance(limited.json()["detail"], str)
    assert client.get(bob.tasks, headers=bob.headers).status_code == 200


@pytest.mark.spec("A-7")
@pytest.mark.internal  # our default configuration; a deployment may switch it on
def test_rate_limit_is_off_by_default(client: TestClient, alice: Caller) -> None:
    assert all(client.get(alice.tasks, headers=alice.headers).status_code == 200 for _ in range(50))


@pytest.mark.spec("FR-018", "SC-006")
@pytest.mark.internal  # our OpenAPI document and security scheme name
def test_openapi_documents_every_status_and_the_bearer_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    assert schema["components"]["securitySchemes"]["BetterAuthJWT"]["scheme"] == "bearer"
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


@pytest.mark.spec("FR-013", "FR-014")
def test_migrations_create_exactly_the_models_schema(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()

    assert differences == []
    assert version == "0001"


@pytest.mark.spec("FR-014")
def test_user_id_is_indexed_and_used_by_the_list_and_lookup_queries(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    indexes = inspect(db_engine).get_indexes("task")
    with db_engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        plans = [
            "\n".join(connection.execute(text(f"EXPLAIN {query}"), {"u": alice.id}).scalars())
            for query in (
                "SELECT * FROM task WHERE user_id = :u ORDER BY created_at DESC, id DESC LIMIT 100",
                "SELECT * FROM task WHERE id = 1 AND user_id = :u",
            )
        ]

    assert any(index["column_names"][0] == "user_id" for index in indexes)
    assert "ix_task_user_id_created_at_id" in plans[0]
    assert "Sort" not in plans[0]  # the index gives the order
    assert "Index" in plans[1]


@pytest.mark.spec("A-9")
def test_the_backend_stores_no_user_table(
    client: TestClient, alice: Caller, db_engine: Engine
) -> None:
    create(client, alice)

    assert set(inspect(db_engine).get_table_names()) == {"task", "alembic_version"}


@pytest.mark.spec("A-1")
@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@ep-x-pooler.eu-central-1.aws.neon.tech/neondb?sslmode=require",
        "postgresql://u:p@ep-x.eu-central-1.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
    ],
)
def test_neon_urls_are_used_as_given_with_sslmode_kept(url: str) -> None:
    parsed = normalize_url(url)

    assert parsed.drivername == "postgresql+psycopg2"
    assert parsed.query["sslmode"] == "require"
    assert parsed.password == "p"


@pytest.mark.spec("FR-016", "EC-2", "SC-008")
def test_size_limit_answers_carry_cors_headers_so_the_frontend_can_read_them(
    client: TestClient, alice: Caller, origin: str
) -> None:
    response = client.post(
        alice.tasks,
        content=b"x" * 70_000,
        headers={**alice.headers, "Origin": origin, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["Access-Control-Allow-Origin"] == origin


@pytest.mark.spec("EC-2", "FR-018")
def test_too_many_headers_is_a_json_431(client: TestClient, alice: Caller) -> None:
    headers = {**alice.headers, **{f"X-Filler-{n}": "x" for n in range(101)}}

    response = client.get(alice.tasks, headers=headers)

    assert response.status_code == 431
    assert isinstance(response.json()["detail"], str)


@pytest.mark.spec("FR-013", "SC-007")
def test_without_a_database_url_the_app_starts_its_own_postgresql_and_keeps_data(
    make_settings: Callable[..., Settings], alice: Caller
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="todo-embedded-")) / "postgres"
    settings = make_settings(
        neon_database_url=None, embedded_db_dir=data_dir, migrate_on_startup=True
    )
    try:
        with TestClient(create_app(settings)) as client:
            created = client.post(alice.tasks, json={"title": "kept"}, headers=alice.headers)
        with TestClient(create_app(settings)) as client:  # a restart: same data directory
            listed = client.get(alice.tasks, headers=alice.headers)
    finally:
        embedded_db.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)

    assert created.status_code == 201
    assert [task["title"] for task in listed.json()] == ["kept"]
