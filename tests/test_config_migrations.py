"""Configuration loading (FR-015), the embedded database when no URL is set (FR-013), and the
migration commands (FR-014)."""

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from pydantic_core import PydanticUndefined
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL

from backend import embedded_db, migrate
from backend.config import Settings, get_settings
from backend.main import create_app
from tests.support.helpers import Caller

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """A process environment of our own, no `.env` in sight, and a fresh settings cache."""
    monkeypatch.chdir(tmp_path)
    for name in ("BETTER_AUTH_SECRET", "NEON_DATABASE_URL", "CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def tables(url: URL) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.spec("FR-015")
def test_a_missing_secret_is_a_clear_exit_not_a_traceback(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started = subprocess.run(
        [sys.executable, "-c", "import backend.main as m; m.create_app()"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        check=False,
    )

    assert started.returncode != 0
    assert started.stderr.strip().splitlines()[-1] == (
        "Configuration error: BETTER_AUTH_SECRET missing or invalid "
        "(set it in the environment or in .env; see .env.example)"
    )
    with pytest.raises(SystemExit, match=r"^Configuration error: BETTER_AUTH_SECRET missing"):
        get_settings()


@pytest.mark.spec("FR-015", "A-6")
def test_settings_come_from_the_environment_and_dot_env(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        'BETTER_AUTH_SECRET=from-dot-env\nCORS_ORIGINS=["https://a.example"]\n'
    )
    environment.setenv("BETTER_AUTH_URL", "https://app.example.com/auth")

    settings = get_settings()

    assert settings.better_auth_secret.get_secret_value() == "from-dot-env"
    assert settings.allowed_origins == ["https://app.example.com", "https://a.example"]
    assert settings.jwks_url == "https://app.example.com/auth/api/auth/jwks"
    assert "from-dot-env" not in repr(settings)


@pytest.mark.spec("FR-014", "FR-013")
def test_migrations_run_up_down_and_up_again(empty_database: URL) -> None:
    migrate.upgrade(empty_database)
    assert tables(empty_database) == {"task", "idempotency_key", "alembic_version"}

    command.downgrade(migrate.alembic_config(empty_database), "base")
    assert tables(empty_database) == {"alembic_version"}

    migrate.upgrade(empty_database)
    assert "task" in tables(empty_database)


@pytest.mark.spec("FR-014", "FR-021", "SC-012")
def test_later_migrations_arrive_on_a_populated_database_leaving_its_tasks_as_they_were(
    empty_database: URL,
) -> None:
    migrate.upgrade(empty_database, "0001")
    engine = create_engine(empty_database, isolation_level="AUTOCOMMIT")
    fingerprint = text("SELECT count(*), md5(string_agg(task::text, ',' ORDER BY id)) FROM task")
    try:
        with engine.connect() as connection:
            connection.execute(
                text(
                    "INSERT INTO task (user_id, title, completed) SELECT 'u' || n % 100, "
                    "'task ' || n, n % 2 = 0 FROM generate_series(1, 20000) AS n"
                )
            )
            before = connection.execute(fingerprint).one()

        migrate.upgrade(empty_database)

        with engine.connect() as connection:
            after = connection.execute(fingerprint).one()
            keys = connection.execute(text("SELECT count(*) FROM idempotency_key")).scalar_one()
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            valid = connection.execute(
                text(
                    "SELECT count(*) FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid"
                    " WHERE relname LIKE '%trgm' AND indisvalid"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert after == before
    assert before[0] == 20000
    assert (keys, version) == (0, "0003")
    assert valid == 2  # both search indexes, built concurrently beside the rows


@pytest.mark.spec("FR-014", "FR-015")
def test_nox_migrate_and_the_alembic_cli_use_the_configured_database(
    environment: pytest.MonkeyPatch, empty_database: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("BETTER_AUTH_SECRET", "s")
    environment.setenv("NEON_DATABASE_URL", empty_database.render_as_string(hide_password=False))

    migrate.main()
    command.downgrade(Config(str(ROOT / "alembic.ini")), "base")
    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")

    assert "newest revision" in capsys.readouterr().out
    assert "task" in tables(empty_database)


@pytest.mark.spec("FR-015")
def test_cors_origins_accept_a_comma_separated_list() -> None:
    settings = Settings(
        _env_file=None, better_auth_secret="s", cors_origins="https://a.example/, https://b.example"
    )  # type: ignore[call-arg]

    assert settings.cors_origins == ["https://a.example", "https://b.example"]


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


def as_env(value: object) -> str:
    """A default as `.env.example` writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


@pytest.mark.spec("FR-015")
def test_every_setting_is_documented_in_env_example_with_its_default() -> None:
    """A new knob is a `Settings` field and a documented line in `.env.example` (same default)."""
    example = (ROOT / ".env.example").read_text()
    documented = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", example, re.MULTILINE))
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in documented]
    wrong = [
        f"{name.upper()}={documented[name.upper()]} (default {field.default})"
        for name, field in Settings.model_fields.items()
        if name.upper() in documented
        and field.default not in (None, [], PydanticUndefined)
        and documented[name.upper()] != as_env(field.default)
    ]

    assert missing == []
    assert wrong == []
