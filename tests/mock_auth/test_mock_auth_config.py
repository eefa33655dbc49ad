"""Settings come from the environment under Better Auth's names plus `MOCK_AUTH_*`."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mock_auth import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BETTER_AUTH_URL", raising=False)
    monkeypatch.delenv("MOCK_AUTH_MODE", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.spec("A-2")
def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "BETTER_AUTH_SECRET=from-dotenv\nNEON_DATABASE_URL=postgresql://ignored\n"
    )
    monkeypatch.setenv("MOCK_AUTH_CORS_ORIGINS", "http://localhost:3000, http://127.0.0.1:3000")
    monkeypatch.setenv("MOCK_AUTH_MODE", "eddsa")

    settings = Settings()

    assert settings.secret == "from-dotenv"
    assert settings.mock_auth_mode == "eddsa"
    assert settings.mock_auth_cors_origins == ["http://localhost:3000", "http://127.0.0.1:3000"]
    assert (settings.origin, settings.port) == ("http://localhost:3000", 3000)
    assert "from-dotenv" not in repr(settings)


@pytest.mark.spec("A-2")
@pytest.mark.parametrize(
    "overrides",
    [
        {"better_auth_secret": "  "},
        {"better_auth_secret": "s", "better_auth_url": "localhost:3000"},
        {"better_auth_secret": "s", "mock_auth_mode": "rs256"},
        {"better_auth_secret": "s", "mock_auth_jwt_lifetime_seconds": 0},
    ],
)
def test_bad_settings_are_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **overrides)
