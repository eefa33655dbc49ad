"""Configuration loading (FR-015) and the migration commands (FR-014)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Engine

from backend import migrate
from backend.config import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scratch_database(db_engine: Engine, database_url: URL) -> Iterator[URL]:
    """An empty database beside the test one, for running migrations from scratch."""
    with db_engine.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS migration_scratch"))
        connection.execute(text("CREATE DATABASE migration_scratch"))
    yield database_url.set(database="migration_scratch")
    with db_engine.connect() as connection:
        connection.execute(text("DROP DATABASE migration_scratch WITH (FORCE)"))


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
def test_a_missing_secret_is_a_clear_exit_not_a_traceback(environment: pytest.MonkeyPatch) -> None:
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
def test_migrations_run_up_down_and_up_again(scratch_database: URL) -> None:
    migrate.upgrade(scratch_database)
    assert tables(scratch_database) == {"task", "alembic_version"}

    command.downgrade(migrate.alembic_config(scratch_database), "base")
    assert tables(scratch_database) == {"alembic_version"}

    migrate.upgrade(scratch_database)
    assert "task" in tables(scratch_database)


@pytest.mark.spec("FR-014", "FR-015")
def test_nox_migrate_and_the_alembic_cli_use_the_configured_database(
    environment: pytest.MonkeyPatch, scratch_database: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("BETTER_AUTH_SECRET", "s")
    environment.setenv("NEON_DATABASE_URL", scratch_database.render_as_string(hide_password=False))

    migrate.main()
    command.downgrade(Config(str(ROOT / "alembic.ini")), "base")
    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")

    assert "newest revision" in capsys.readouterr().out
    assert "task" in tables(scratch_database)


@pytest.mark.spec("FR-015")
def test_cors_origins_accept_a_comma_separated_list() -> None:
    settings = Settings(
        _env_file=None, better_auth_secret="s", cors_origins="https://a.example/, https://b.example"
    )  # type: ignore[call-arg]

    assert settings.cors_origins == ["https://a.example", "https://b.example"]
